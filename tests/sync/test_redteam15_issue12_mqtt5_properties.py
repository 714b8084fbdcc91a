"""Red team 15 on issue 12, item 1: "neither process ever exits because of a message"
and "a message that cannot be processed is moved aside ... and acknowledged to the
broker, so it is never redelivered".

Until now every hostile message was hostile in its payload. Here it is hostile in the
MQTT v5 envelope the broker forwards as is: user properties, content type, response
topic, correlation data, payload format indicator, QoS 2, an empty payload.

The finding: U+FEFF (ZERO WIDTH NO-BREAK SPACE) is valid UTF-8 and MQTT 5.0 1.5.4
says a receiver must keep it, so mosquitto accepts it in a string property and
forwards it. paho-mqtt's properties.readUTF refuses it ("[MQTT-1.5.4-3] U+FEFF in
UTF-8 data"), raises MalformedPacket before any on_message, and drops the connection
as a protocol error. Neither service ever sees the message, so it is neither set aside
nor PUBACKed: with the persistent session (clean_start false) the broker sends it
again at every reconnect, first, and the connection drops again. One publish by
anyone who may publish on a topic the service reads cuts it off for good (the
session expires after 7 days; it is renewed at every reconnect).

Every test uses a real mosquitto and the services' own run functions.
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
from tests.helpers.sync_rig import (
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_counters,
    device_dead_letters,
    enqueue,
    make_config,
    probe,
    wait_for,
)

pytestmark = pytest.mark.timeout(40)

BOM = "\ufeff"
# How long genuine records get to be delivered after the hostile message: they take
# well under 2 s on this machine without it (the third test).
DELIVERY_SECONDS = 8.0


class V5Publisher:
    """A bare MQTT v5 client that publishes with whatever properties a test gives."""

    def __init__(self, port: int, client_id: str = "rt15-attacker") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                retain: bool = False, **props: object) -> None:
        properties = Properties(PacketTypes.PUBLISH)
        for name, value in props.items():
            setattr(properties, name, value)
        info = self.client.publish(topic, payload, qos=qos, retain=retain,
                                   properties=properties if props else None)
        info.wait_for_publish(10)
        assert info.is_published(), f"the broker did not take a message on {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_once(port: int, topic: str, payload: bytes, qos: int,
                 props: dict[str, object]) -> bool:
    """One publish on a connection of its own, pumped here: True when the broker took
    it, False when it refused it (mosquitto drops a publisher that breaks a rule)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    try:
        properties = Properties(PacketTypes.PUBLISH)
        for name, value in props.items():
            setattr(properties, name, value)
        info = client.publish(topic, payload, qos=qos,
                              properties=properties if props else None)
        deadline = time.monotonic() + 3
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                return False
        return info.is_published()
    finally:
        client.disconnect()
        client.socket() and client.socket().close()


def _central_dead_letters(config) -> int:
    return central_counters(config).get("dead_letters", 0)


def _delivered_within(config, recs, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all_delivered(config, recs):
            return True
        time.sleep(0.1)
    return False


def test_a_bom_in_a_user_property_on_a_records_topic_does_not_cut_the_receiver_off(
        tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)
    attacker = V5Publisher(broker.port)
    try:
        receiver = services(run_receiver, config)
        ghost = wire.records_topic("bhxh", "ghost-15")
        before = probe(lambda: attacker.publish(ghost, b"["),
                       lambda: _central_dead_letters(config), "the receiver")
        # Junk in the payload too, so a fixed receiver has something to set aside.
        attacker.publish(ghost, b"[", UserProperty=("note", BOM))
        recs = enqueue(config, 2, pdf_sizes=(3_000,))
        publisher = services(run_publisher, config)
        delivered = _delivered_within(config, recs, DELIVERY_SECONDS)
        assert receiver.running() and publisher.running()
        assert delivered, "no genuine record was delivered after one hostile publish"
        assert _central_dead_letters(config) == before + 1, "the message was not set aside"
        assert_exactly_once(config, recs)
        assert_no_false_delivery(config)
    finally:
        attacker.close()


def test_a_bom_in_the_content_type_on_the_ack_topic_does_not_cut_sync_off(
        tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)
    acks = wire.acks_topic("bhxh", config.device.id)
    attacker = V5Publisher(broker.port)
    try:
        services(run_receiver, config)
        publisher = services(run_publisher, config)
        before = probe(lambda: attacker.publish(acks, b"\xff"),
                       lambda: device_dead_letters(config).get("total", 0), "sync")
        attacker.publish(acks, b"\xff", ContentType=f"application/json{BOM}")
        time.sleep(0.5)  # the device's connection has it (and drops) before records come
        recs = enqueue(config, 2, pdf_sizes=(3_000,))
        delivered = _delivered_within(config, recs, DELIVERY_SECONDS)
        assert publisher.running()
        assert delivered, "no record was marked delivered after one hostile publish"
        assert device_dead_letters(config).get("total", 0) == before + 1
        assert_exactly_once(config, recs)
    finally:
        attacker.close()


def test_other_mqtt5_envelopes_are_set_aside_and_records_pass(tmp_path, broker, services):
    """What holds: QoS 2, an empty payload, PFI=1 over bytes that are not UTF-8, binary
    correlation data, a response topic, a message expiry and 2,000 user properties
    (about 40 KB of them) reach both services (or are refused by mosquitto) and are
    set aside; genuine records still pass exactly once, both services keep running."""
    config = make_config(tmp_path, broker.port)
    records = wire.records_topic("bhxh", config.device.id)
    ghost = wire.records_topic("bhxh", "ghost-15")
    acks = wire.acks_topic("bhxh", config.device.id)
    attacker = V5Publisher(broker.port)
    many = [(f"k{i}", "v" * 16) for i in range(2000)]
    envelopes: list[tuple[bytes, int, dict[str, object]]] = [
        (b"[", 2, {}),
        (b"", 1, {}),
        (b"", 2, {}),
        (b"\xff\xfe{", 1, {"PayloadFormatIndicator": 1}),
        (b"[", 1, {"CorrelationData": bytes(range(256)) * 4,
                   "ResponseTopic": "bhxh/devices/kiosk-01/acks"}),
        (b"[", 1, {"MessageExpiryInterval": 1, "ContentType": "\uffff/\U0010fffd"}),
        (b"[", 1, {"UserProperty": many}),
    ]
    try:
        receiver = services(run_receiver, config)
        publisher = services(run_publisher, config)
        at_central = probe(lambda: attacker.publish(ghost, b"["),
                           lambda: _central_dead_letters(config), "the receiver")
        at_device = probe(lambda: attacker.publish(acks, b"\xff"),
                          lambda: device_dead_letters(config).get("total", 0), "sync")
        taken = {"central": 0, "device": 0}
        for payload, qos, props in envelopes:
            for topic in (records, ghost, acks):
                if publish_once(broker.port, topic, payload, qos, props):
                    taken["device" if topic == acks else "central"] += 1
        assert taken["central"] >= 2 * (len(envelopes) - 1), taken  # mostly forwarded
        # A plain sentinel after them on each side: once it is set aside, everything
        # before it was handled (one connection, in order).
        attacker.publish(ghost, b"sentinel")
        attacker.publish(acks, b"sentinel")
        wait_for(lambda: any(bytes(d["head"]) == b"sentinel" for d in _central_letters(config)),
                 20, "the receiver's sentinel")
        wait_for(lambda: device_dead_letters(config).get("total", 0) > at_device, 20,
                 "sync's sentinel")
        recs = enqueue(config, 3, pdf_sizes=(3_000,))
        wait_for(lambda: all_delivered(config, recs), 20, "every genuine record")
        assert receiver.running() and publisher.running()
        assert_exactly_once(config, recs)
        assert_no_false_delivery(config)
        # Every envelope the broker forwarded was counted at most once per topic.
        assert _central_dead_letters(config) == at_central + taken["central"] + 1
        assert device_dead_letters(config)["total"] == at_device + taken["device"] + 1
    finally:
        attacker.close()


def _central_letters(config) -> list[dict]:
    from appliance.central import store as central_store

    try:
        return central_store.list_dead_letters(config.central.database)
    except Exception:  # noqa: BLE001 - polled while it is created
        return []
