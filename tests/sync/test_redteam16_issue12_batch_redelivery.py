"""Red team 16 on issue 12, item 1 and commit a02709e ("Sync counts a dead letter the
broker sends again once"): device dead letters are keyed by the MQTT session's epoch,
the packet id and the message's bytes, and a message that comes with DUP set is not
counted again when a row with that key is already there.

The key names the MQTT message, but one message can make several dead letters: a
signed "acks" batch sets aside each of its items that names a record the device does
not hold (unknown_record) or other bytes than the device's (wrong_hash), one
put_dead_letter per item, all with the same key. When that message comes with DUP
set before it was ever handled (sync killed -9, or the link cut, after the broker
sent it and before sync read it: mosquitto sends it again with DUP at the next
connection of the kept session), the first item's dead letter is written and every
later item's is taken for a redelivery of it and left out: 3 items, 1 counted. The
same message delivered without DUP counts 3. (Also when sync is killed between two
items' commits of a first delivery, the items not yet written are never counted.)

Here the "earlier incarnation of sync that died before its PUBACK" is a paho client
with the device's own client id and persistent session that receives the message and
closes its socket without acknowledging it; then sync's own run function connects to
that session. Real mosquitto throughout.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.store.db import connect
from appliance.sync import acksig, wire
from appliance.sync.publisher import run_publisher
from tests.helpers.sync_rig import (
    Attacker,
    ack_keys,
    device_dead_letters,
    device_state,
    make_config,
    wait_for,
)

pytestmark = pytest.mark.timeout(30)

GHOSTS = 3


def _signed_batch(tmp_path, device_id: str) -> bytes:
    """A genuine "acks" message (signed with the key this device believes) for
    GHOSTS records the device does not hold."""
    private, _public = ack_keys(tmp_path / "keys")
    key = acksig.load_private_key(private)
    items = tuple(wire.AckItem(f"ghost-{i}", f"{i:x}" * 64, wire.AckStatus.STORED)
                  for i in range(1, GHOSTS + 1))
    return wire.encode_batch_ack(acksig.sign(key, wire.BatchAck(device_id, time.time(),
                                                                items)))


class EarlierSync:
    """The device's persistent session, held by a client that receives one message on
    the ack topic and dies before acknowledging it (as sync killed -9 would)."""

    def __init__(self, port: int, client_id: str, topic: str) -> None:
        self.got = threading.Event()
        self.subscribed = threading.Event()
        self.dup_seen: list[bool] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(10), "no SUBACK"

    def _on_message(self, client, userdata, message) -> None:
        self.dup_seen.append(bool(message.dup))
        self.got.set()  # no client.ack(): the PUBACK never leaves

    def die(self) -> None:
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()  # no DISCONNECT: the broker keeps the session and the message


def _rows(config, kind: str) -> int:
    conn = connect(config.paths.database)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM sync_dead_letters WHERE kind=?",
                                (kind,)).fetchone()[0])
    finally:
        conn.close()


def test_a_fresh_batch_with_three_unknown_records_counts_three(tmp_path, broker, services):
    """Holds: delivered once, without DUP, each item is a dead letter of its own."""
    config = make_config(tmp_path, broker.port)
    acks = wire.acks_topic("bhxh", config.device.id)
    services(run_publisher, config)
    wait_for(lambda: device_state(config, "sync.state") == "connected", 20, "sync up")
    time.sleep(0.5)  # its subscription is in place
    attacker = Attacker(broker.port)
    try:
        attacker.publish(acks, _signed_batch(tmp_path, config.device.id))
        wait_for(lambda: device_dead_letters(config).get("unknown_record", 0) >= GHOSTS,
                 10, "the batch's items set aside")
        time.sleep(0.5)
    finally:
        attacker.close()
    assert device_dead_letters(config).get("unknown_record", 0) == GHOSTS
    assert _rows(config, "unknown_record") == GHOSTS


def test_a_batch_first_handled_after_a_kill_counts_every_item(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)
    acks = wire.acks_topic("bhxh", config.device.id)
    earlier = EarlierSync(broker.port, config.device.id, acks)
    attacker = Attacker(broker.port)
    try:
        attacker.publish(acks, _signed_batch(tmp_path, config.device.id))
        assert earlier.got.wait(10), "the earlier session never got the batch"
        assert earlier.dup_seen == [False]
    finally:
        earlier.die()
        attacker.close()

    publisher = services(run_publisher, config)  # the same session, session present
    wait_for(lambda: device_dead_letters(config).get("total", 0) >= 1, 20,
             "the batch sent again and handled")
    time.sleep(1.0)  # every item handled
    assert publisher.running()
    counts = device_dead_letters(config)
    assert set(counts) == {"total", "unknown_record"}, counts
    # As the same message delivered without DUP (the test above): one per item.
    assert counts["unknown_record"] == GHOSTS, counts
    assert _rows(config, "unknown_record") == GHOSTS
