"""Poison messages on every topic either side reads: set aside, counted, never a crash.

Each payload of tests/sync/hostile.py goes through a real mosquitto: on a device's
topic, on the topic of a device that does not exist, as a retained message, and while
the consumer is offline (its persistent session makes the broker redeliver on
reconnect, which is how one bad message used to become a crash loop). Genuine records
flow at the same time; afterwards every one is at the receiver exactly once and
byte-identical, none is delivered that the receiver lacks, and both services run.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from appliance.system.process import stop_process
from tests.helpers.sync_rig import (
    CENTRAL,
    SYNC,
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_counters,
    device_dead_letters,
    device_state,
    enqueue,
    make_config,
    probe,
    service_process,
    wait_for,
    write_config_file,
)
from tests.sync.hostile import HOSTILE

pytestmark = pytest.mark.timeout(120)
POISON = list(HOSTILE.values())


def dead_letters_at_central(config: config_mod.Config) -> int:
    return central_counters(config).get("dead_letters", 0)


def test_poison_on_records_topics_is_set_aside_and_genuine_records_pass(
        tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)
    mine = wire.records_topic("bhxh", config.device.id)
    ghost = wire.records_topic("bhxh", "ghost-99")
    attacker = Attacker(broker.port)
    receiver = services(run_receiver, config)
    sent = probe(lambda: attacker.publish(ghost, b"\xff"),
                 lambda: dead_letters_at_central(config), "the receiver")
    recs = enqueue(config, 3, pdf_sizes=(9_000,))
    publisher = services(run_publisher, config)
    for payload in POISON:
        attacker.publish(mine, payload)
        attacker.publish(ghost, payload)
        attacker.publish(mine, payload, retain=True)
    sent += 3 * len(POISON)
    wait_for(lambda: dead_letters_at_central(config) >= sent, 30, "every poison set aside")
    assert receiver.running() and publisher.running()

    # Offline: the broker queues poison for the receiver's persistent session.
    receiver.stop()
    for payload in POISON:
        attacker.publish(mine, payload)
        attacker.publish(ghost, payload)
    sent += 2 * len(POISON)
    later = enqueue(config, 2, pdf_sizes=(9_000,))
    receiver = services(run_receiver, config)
    wait_for(lambda: dead_letters_at_central(config) >= sent, 30, "the queued poison")
    wait_for(lambda: all_delivered(config, recs + later), 30, "every genuine record")

    # Nothing comes back: not the queued messages (acknowledged to the broker), not
    # the retained ones (never sent on subscribe).
    receiver.stop()
    receiver = services(run_receiver, config)
    time.sleep(2.0)
    assert dead_letters_at_central(config) == sent
    assert receiver.running() and publisher.running()
    assert_exactly_once(config, recs + later)
    assert_no_false_delivery(config)
    attacker.close()
    letters = central_store.list_dead_letters(config.central.database)
    reasons = " | ".join(d["reason"] for d in letters)
    for why in ("nested deeper", "integer with 4301", "'count' = 18446744073709551616",
                "not UTF-8", "over the 1048576-byte limit", "duplicate key", "not finite",
                "ack message on a records topic", "missing or not int"):
        assert why in reasons, why
    assert {d["device_id"] for d in letters} == {config.device.id, "ghost-99"}
    assert max(d["size"] for d in letters) > 5_000_000
    assert max(len(d["head"]) for d in letters) <= 256


def _stop(proc: subprocess.Popen[bytes]) -> int:
    stop_process(proc, timeout=15, group=False)
    return proc.returncode


def test_poison_on_the_ack_topic_never_stops_sync_processes(tmp_path, broker):
    """Both services as real processes; poison on the ack topic, live, retained and
    queued while `appliance sync` is down, and on the records topics while
    `appliance central` is down."""
    config = make_config(tmp_path, broker.port)
    config_file = write_config_file(tmp_path, config)
    acks = wire.acks_topic("bhxh", config.device.id)
    records = wire.records_topic("bhxh", config.device.id)
    attacker = Attacker(broker.port)
    procs: list[subprocess.Popen[bytes]] = []
    sync_log, central_log = tmp_path / "sync.log", tmp_path / "central.log"
    try:
        sync = service_process(SYNC, config_file, sync_log)
        procs.append(sync)
        wait_for(lambda: device_state(config, "sync.state") == "connected", 20, "sync up")
        sent = probe(lambda: attacker.publish(acks, b"\xff"),
                     lambda: device_dead_letters(config).get("total", 0), "sync")
        for payload in POISON:
            attacker.publish(acks, payload)
            attacker.publish(acks, payload, retain=True)
        sent += 2 * len(POISON)
        wait_for(lambda: device_dead_letters(config).get("total", 0) >= sent, 30, "poison aside")
        assert sync.poll() is None, sync_log.read_text()

        central = service_process(CENTRAL, config_file, central_log)
        procs.append(central)
        probe(lambda: attacker.publish(records, b"["),
              lambda: dead_letters_at_central(config), "central")
        assert _stop(sync) == 0, sync_log.read_text()
        assert _stop(central) == 0, central_log.read_text()
        central_sent = dead_letters_at_central(config)

        # Both down: the broker queues poison in their persistent sessions.
        for payload in POISON:
            attacker.publish(acks, payload)
            attacker.publish(records, payload)
        sent += len(POISON)
        central_sent += len(POISON)
        recs = enqueue(config, 4, pdf_sizes=(6_000, 3_000))
        sync = service_process(SYNC, config_file, sync_log)
        central = service_process(CENTRAL, config_file, central_log)
        procs += [sync, central]
        wait_for(lambda: all_delivered(config, recs), 40, "every genuine record")
        wait_for(lambda: device_dead_letters(config).get("total", 0) >= sent, 20, "ack poison")
        wait_for(lambda: dead_letters_at_central(config) >= central_sent, 20, "records poison")
        time.sleep(1.0)
        assert device_dead_letters(config)["total"] == sent
        assert dead_letters_at_central(config) == central_sent
        assert sync.poll() is None, sync_log.read_text()
        assert central.poll() is None, central_log.read_text()
        assert_exactly_once(config, recs)
        assert_no_false_delivery(config)
        counts = device_dead_letters(config)
        assert counts.get("malformed", 0) >= len(POISON)
    finally:
        for proc in procs:
            _stop(proc)
        attacker.close()
    assert "Traceback" not in sync_log.read_text()
    assert "Traceback" not in central_log.read_text()
