"""Red team 17 on issue 12 and commit d59db12: sync now tells the broker it takes no
packet over a limit (now publisher.MAX_PACKET_BYTES), and the broker silently
discards a larger one for it. A genuine message of the office over that limit would
be lost without a trace, again at every resend, and its records never marked
delivered. Checked here (holds): the largest "acks" batch the receiver can sign (256
items, record ids of 128 characters, CONTESTED, the longest device id, a long topic
prefix) and the largest "have" answer (512 groups of the largest counts, the longest
record id and nonce) fit, and a real mosquitto hands both to sync's own run function,
which reads them (each unknown item set aside and counted, the answer to no query
set aside as stale).
"""

from __future__ import annotations

import time

import pytest

from appliance.sync import acksig, publisher, wire
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.sync_rig import (
    Attacker,
    ack_keys,
    device_dead_letters,
    make_config,
    wait_for,
)

pytestmark = pytest.mark.timeout(40)

DEVICE = "k" + "9" * 62  # the longest device.id
PREFIX = "bhxh/" + "p" * 1000  # topic_prefix has no length limit of its own


def _packet_bytes(topic: str, payload: bytes) -> int:
    """A QoS 1 PUBLISH without properties, as mosquitto sends it."""
    remaining = 2 + len(topic.encode("utf-8")) + 2 + 1 + len(payload)
    varint = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2**21 else 4
    return 1 + varint + remaining


def test_the_largest_acks_and_have_reach_sync(tmp_path, broker, services):
    config = config_mod.with_overrides(make_config(tmp_path, broker.port),
                                       device={"id": DEVICE},
                                       mqtt={"topic_prefix": PREFIX})
    private, _public = ack_keys(tmp_path / "keys")
    key = acksig.load_private_key(private)
    topic = wire.acks_topic(PREFIX, DEVICE)
    limit = publisher.MAX_PACKET_BYTES

    ids = [f"{i:03d}" + "r" * (wire.MAX_RECORD_ID_CHARS - 3)
           for i in range(wire.MAX_BATCH_ACK_ITEMS)]
    batch = acksig.sign(key, wire.BatchAck(DEVICE, time.time() + 0.123456789, tuple(
        wire.AckItem(rid, f"{i:064x}", wire.AckStatus.CONTESTED)
        for i, rid in enumerate(ids))))
    acks = wire.encode_batch_ack(batch)
    have = wire.encode_have(acksig.sign(key, wire.Have(
        DEVICE, ids[0], "n" * wire.MAX_NONCE_CHARS, tuple(
            (f"{i:064x}", wire.MAX_CHUNKS, wire.MAX_CHUNKS - 1)
            for i in range(wire.MAX_RESUME_GROUPS)))))
    for payload in (acks, have):
        assert len(payload) <= wire.MAX_BATCH_ACK_BYTES, len(payload)
        assert _packet_bytes(topic, payload) <= limit
        wire.decode_ack_message(payload)  # what sync's reader takes

    device = services(run_publisher, config)
    attacker = Attacker(broker.port, "central-stand-in")
    try:
        deadline = time.monotonic() + 15
        while device_dead_letters(config).get("malformed", 0) < 1:  # until subscribed
            assert time.monotonic() < deadline, "sync never subscribed"
            attacker.publish(topic, b"[")
            time.sleep(0.3)
        attacker.publish(topic, acks)
        attacker.publish(topic, have)
        wait_for(lambda: device_dead_letters(config).get("unknown_record", 0)
                 == wire.MAX_BATCH_ACK_ITEMS
                 and device_dead_letters(config).get("stale", 0) == 1, 15,
                 "the largest acks and have read by sync")
    finally:
        attacker.close()
    assert device.running()
    assert "Dropping too large" not in broker.log()
