"""Red team 15 on issue 12, item 3 ("the receiver takes the device from ... the topic"):
device ids at the edges of the device-id pattern ([a-z0-9][a-z0-9-]{1,62}), and topics
just outside it or absurdly long, through a real mosquitto to the receiver.

Holds: a device whose id is 63 characters, or 2 characters ending in '-', or all
digits and hyphens, has its records stored exactly once and acknowledged; a 64-
character id, an upper-case one, one with U+FFFF's neighbour U+FFFD, a '$share'-
looking level and a 60,000-character level are set aside as dead letters with no
device, their topic kept at most 300 characters, and the receiver keeps running.
"""

from __future__ import annotations

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_counters,
    enqueue,
    make_config,
    probe,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

EDGE_IDS = ["a" * 63, "0-", "9" + "-" * 61 + "9"]


def _dead_letters(config) -> int:
    return central_counters(config).get("dead_letters", 0)


def test_device_ids_at_the_edges_pass_and_topics_outside_them_are_set_aside(
        tmp_path, broker, services):
    base = make_config(tmp_path, broker.port)
    attacker = Attacker(broker.port)
    try:
        receiver = services(run_receiver, base)
        sent = probe(lambda: attacker.publish("bhxh/devices/probe-1/records", b"["),
                     lambda: _dead_letters(base), "the receiver")
        outside = ["a" * 64, "Kiosk-01", "kiosk\ufffd01", "-kiosk", "$share",
                   "x" * 60_000]
        for device in outside:
            attacker.publish(f"bhxh/devices/{device}/records", b"[")
        attacker.publish("bhxh/devices/kiosk-01/records/extra", b"[")  # no subscriber
        sent += len(outside)
        wait_for(lambda: _dead_letters(base) >= sent, 15, "the odd topics set aside")

        everyone = []
        for device_id in EDGE_IDS:
            config = config_mod.with_overrides(
                make_config(tmp_path / device_id[:8], broker.port),
                device={"id": device_id}, central={"database": base.central.database,
                                                   "signing_key": base.central.signing_key},
                mqtt={"central_public_key": base.mqtt.central_public_key})
            recs = enqueue(config, 2, pdf_sizes=(3_000,))
            services(run_publisher, config)
            everyone.append((config, recs))
        for config, recs in everyone:
            wait_for(lambda c=config, r=recs: all_delivered(c, r), 30,
                     f"the records of {config.device.id[:10]}")
        for config, recs in everyone:
            assert_exactly_once(config, recs)
            assert_no_false_delivery(config)
        assert receiver.running()
        assert _dead_letters(base) == sent
        letters = central_store.list_dead_letters(base.central.database)[-len(outside):]
        assert all(d["device_id"] is None for d in letters), letters
        assert max(len(d["topic"]) for d in letters) <= 300
        served = {r["device_id"] for r in central_store.list_records(base.central.database)}
        assert served == set(EDGE_IDS)
        assert wire.device_from_topic("bhxh", wire.records_topic("bhxh", "a" * 64)) is None
    finally:
        attacker.close()
