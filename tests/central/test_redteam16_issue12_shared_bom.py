"""Red team 16 on issue 12, items 1 and 7, and commit 2df85cb (U+FEFF kept in MQTT v5
string properties): receivers sharing one subscription ($share/<group>/...) each get
some of the hostile messages; every one of them must set its share aside and keep
receiving, so genuine records still reach the office exactly once.

Holds: two receivers (their own run function, one SQLite file) in one share group,
eight messages with U+FEFF in a user property, the content type or the response
topic on a device's records topic (mosquitto hands them out in turn), then genuine
records. Real mosquitto.
"""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.central.receiver import run_receiver
from appliance.sync import wire
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_dead_letters,
    enqueue,
    make_config,
    probe_receiver,
    wait_for,
)

pytestmark = pytest.mark.timeout(40)

BOM = "\ufeff"
GROUP = "rt16-5e0b9c1d7a3f2468"


def _publish_v5(port: int, topic: str, payload: bytes, **props: object) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rt16-bom",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        properties = Properties(PacketTypes.PUBLISH)
        for name, value in props.items():
            setattr(properties, name, value)
        info = client.publish(topic, payload, qos=1, properties=properties)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_every_receiver_of_a_share_group_survives_bom_properties(
        tmp_path, broker, services):
    base = make_config(tmp_path, broker.port, central={"share_group": GROUP})
    receivers = [services(run_receiver, config_mod.with_overrides(
        base, central={"client_id": f"central-rt16-{i}"})) for i in range(2)]
    attacker = Attacker(broker.port)
    try:
        probe_receiver(attacker, base, "the share group")
        time.sleep(0.5)  # the second member subscribed too
        before = central_dead_letters(base)
        ghost = wire.records_topic("bhxh", "ghost-16")
        envelopes = [{"UserProperty": ("note", BOM)},
                     {"ContentType": f"application/json{BOM}"},
                     {"ResponseTopic": f"bhxh/{BOM}"},
                     {"UserProperty": (BOM, BOM * 100)}] * 2
        for props in envelopes:
            _publish_v5(broker.port, ghost, b"[", **props)
        wait_for(lambda: central_dead_letters(base) >= before + len(envelopes), 15,
                 "every BOM message set aside")
        records = enqueue(base, 4, pdf_sizes=(3_000,))
        publisher = services(run_publisher, base)
        wait_for(lambda: all_delivered(base, records), 20, "the genuine records")
        # Junk after them still reaches the group (both members still subscribed).
        for i in range(4):
            attacker.publish(ghost, b"after %d" % i)
        wait_for(lambda: central_dead_letters(base) >= before + len(envelopes) + 4, 15,
                 "junk after the BOM messages set aside")
        assert all(r.running() for r in receivers)
        assert publisher.running()
        assert central_dead_letters(base) == before + len(envelopes) + 4
        assert_exactly_once(base, records)
        assert_no_false_delivery(base)
    finally:
        attacker.close()
