"""Sync's status heartbeat carries `appliance doctor`'s checks, seen by a real
subscriber on a real mosquitto: name, verdict, summary and next step per check, the
broker line as sync knows it, the scanner line as the last doctor round found it.
"""

from __future__ import annotations

import json
import time

from appliance.sync.heartbeat import status_topic
from appliance.sync.publisher import run_publisher
from appliance.system import doctor
from appliance.system.doctor import Check, Verdict
from tests.helpers.sync_rig import Attacker, broker, brokers, make_config, services, wait_for

__all__ = ["broker", "brokers", "services"]  # the fixtures this module uses


def test_status_heartbeat_carries_the_doctors_checks(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port, signed=False)
    data = tmp_path / "device"
    data.mkdir(parents=True)
    # The hourly `appliance doctor` found the scanner missing an hour ago.
    scanner = Check("scanner", Verdict.FAIL, "chosen scanner Fujitsu fi-8170 not found",
                    "check the cable and power")
    doctor.save_report(config, [Check("config", Verdict.OK, "valid"), scanner],
                       now=time.time() - 3600)
    topic = status_topic(config.mqtt.topic_prefix, config.device.id)

    sync = services(run_publisher, config)
    # Subscribed after sync started: the status is retained, so a monitor that comes
    # late still gets the last one.
    time.sleep(1.0)
    monitor = Attacker(broker.port, client_id="monitor")
    try:
        monitor.sniff(topic)
        wait_for(lambda: monitor.seen, 15, "a status message")
    finally:
        monitor.close()
    assert sync.running()
    got_topic, payload = monitor.seen[0]
    assert got_topic == topic == f"{config.mqtt.topic_prefix}/devices/{config.device.id}/status"
    message = json.loads(payload)
    assert message["device_id"] == config.device.id
    assert abs(message["at"] - time.time()) < 60
    checks = {c["name"]: Check.from_dict(c) for c in message["checks"]}
    assert {"config", "disk", "key", "queue", "clock", "certificate", "broker",
            "scanner", "database"} <= set(checks)
    assert checks["broker"].verdict is Verdict.OK
    assert "connected" in checks["broker"].summary
    assert checks["disk"].verdict is Verdict.OK and checks["disk"].as_of is None
    assert checks["queue"].summary == "every signed record delivered"
    # The scanner is never listed by sync: the last doctor round's line, with its time.
    assert checks["scanner"].verdict is Verdict.FAIL
    assert checks["scanner"].summary == scanner.summary
    assert checks["scanner"].next_step == scanner.next_step
    assert checks["scanner"].as_of is not None and time.time() - checks["scanner"].as_of > 3000
    assert checks["database"].summary == "not checked here"
    assert message["verdict"] == "fail"
    # And the rest is what the panel and the CLI compute from the same function.
    assert [c["name"] for c in message["checks"]] == [
        c.name for c in doctor.local_checks(config, known={"broker": checks["broker"]})]
