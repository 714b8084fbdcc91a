"""Red team 3 on issue 12, item 1: a message that cannot be processed is moved aside
"(dead-letter table with the reason, counted in the status heartbeat)".

The device's status heartbeat is what the central office watches for an appliance it
cannot walk up to ({prefix}/devices/{id}/status, retained). Here sync sets bad acks
aside (counted in sync_dead_letters and device_state), then restarts so a fresh
heartbeat is computed after the letters exist; a real subscriber on a real mosquitto
reads it and looks for that count.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from appliance.sync import wire
from appliance.sync.heartbeat import status_topic
from appliance.sync.publisher import run_publisher
from tests.helpers.sync_rig import (
    Attacker,
    broker,
    brokers,
    device_dead_letters,
    make_config,
    probe,
    services,
    wait_for,
)

__all__ = ["broker", "brokers", "services"]  # the fixtures this module uses

pytestmark = pytest.mark.timeout(60)


def _dead_letter_counts_in(message: Any) -> list[Any]:
    """Every value the heartbeat gives under a key, or in a check, about dead letters."""
    found: list[Any] = []
    if isinstance(message, dict):
        name = str(message.get("name", ""))
        if "dead" in name.lower() or "letter" in name.lower():
            found.append(message)
        for key, value in message.items():
            if "dead" in str(key).lower():
                found.append(value)
            found.extend(_dead_letter_counts_in(value))
    elif isinstance(message, list):
        for value in message:
            found.extend(_dead_letter_counts_in(value))
    return found


def test_the_status_heartbeat_counts_the_dead_letters_sync_set_aside(
        tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)  # signed acks: forged ones are set aside
    acks = wire.acks_topic(config.mqtt.topic_prefix, config.device.id)
    attacker = Attacker(broker.port)
    try:
        sync = services(run_publisher, config)
        sent = probe(lambda: attacker.publish(acks, b"\xff"),
                     lambda: device_dead_letters(config).get("total", 0), "sync")
        for payload in (b"[", b"{}", b'{"v":1,"kind":"ack"}', b"\x00" * 10):
            attacker.publish(acks, payload)
        sent += 4
        wait_for(lambda: device_dead_letters(config).get("total", 0) >= sent, 15,
                 "the bad acks set aside")
        sync.stop()
        total = device_dead_letters(config)["total"]
        assert total == sent

        # A fresh sync: its first heartbeat is computed after every letter exists.
        restarted = time.time()
        sync = services(run_publisher, config)
        monitor = Attacker(broker.port, client_id="monitor")
        topic = status_topic(config.mqtt.topic_prefix, config.device.id)
        try:
            monitor.sniff(topic)
            wait_for(lambda: any(json.loads(p).get("at", 0) >= restarted
                                 for _, p in monitor.seen), 20, "a fresh heartbeat")
        finally:
            monitor.close()
        assert sync.running()
        beat = next(json.loads(p) for _, p in monitor.seen
                    if json.loads(p).get("at", 0) >= restarted)
        counts = _dead_letter_counts_in(beat)
        assert counts, f"no dead-letter count in the status heartbeat: {sorted(beat)} / " \
            f"{[c['name'] for c in beat['checks']]}"
        assert str(total) in json.dumps(counts), counts
    finally:
        attacker.close()
