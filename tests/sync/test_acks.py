"""Only the central's signed acks for a record's exact bytes mark it delivered.

An attacker on an open broker sniffs the device's traffic, learns every record's id
and sha256, and publishes acks: unsigned, signed with its own key, replayed from
another device, or a genuine ack moved onto another record. None marks anything
delivered; each is counted. A correctly signed ack for other bytes (the receiver
holds something else under the id) makes the record due again at once. A record
squatted under a pending id still gets through and is what the receiver serves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.store.db import connect
from appliance.store.outbox import OutboxState
from appliance.sync import acksig, wire
from appliance.sync.publisher import run_publisher
from tests.helpers.sync_rig import (
    Attacker,
    ack_keys,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    subscribed_receiver,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)


def attempts(config, record_id: str) -> int:
    conn = connect(config.paths.database)
    try:
        return conn.execute("SELECT attempts FROM outbox WHERE record_id=?",
                            (record_id,)).fetchone()[0]
    finally:
        conn.close()


def sniffed_records(attacker: Attacker) -> dict[str, str]:
    """record_id -> sha256, read from the device's record messages as anyone could."""
    found = {}
    for _topic, payload in attacker.seen:
        try:
            msg = wire.decode(payload)
        except Exception:  # noqa: BLE001 - chunks and junk alike
            continue
        if isinstance(msg, wire.RecordMessage):
            found[msg.record_id] = msg.sha256
        if isinstance(msg, wire.RecordPack):
            found.update((r.record_id, r.sha256) for r in msg.records)
    return found


def test_forged_and_replayed_acks_are_ignored_and_counted(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=30.0)
    other = dataclasses.replace(
        config, device=dataclasses.replace(config.device, id="kiosk-02"),
        paths=dataclasses.replace(config.paths, data_dir=str(tmp_path / "other")))
    acks = wire.acks_topic("bhxh", config.device.id)
    attacker = Attacker(broker.port)
    attacker.sniff("bhxh/#")

    # First, genuine acks the attacker can replay: one for kiosk-01, one for kiosk-02.
    receiver = subscribed_receiver(services, config, attacker)
    first = enqueue(config, 1)
    theirs = enqueue(other, 1)
    pub = services(run_publisher, config)
    services(run_publisher, other)
    wait_for(lambda: all_delivered(config, first) and all_delivered(other, theirs), 20, "acks")
    genuine: dict[str, bytes] = {}
    moved: dict[str, wire.BatchAck] = {}
    for topic, payload in attacker.seen:
        if topic.endswith("/acks"):
            ack = wire.decode_ack_message(payload)
            assert isinstance(ack, wire.BatchAck)  # the device asked for signed batches
            genuine[ack.device_id] = payload
            moved[ack.device_id] = ack
    assert set(genuine) == {"kiosk-01", "kiosk-02"}
    receiver.stop()

    # Now the receiver is away; the device's next records wait for their acks.
    pending = enqueue(config, 3)
    wait_for(lambda: set(sniffed_records(attacker)) >= {r.record_id for r in pending}, 20,
             "the attacker to see the record messages")
    learned = sniffed_records(attacker)
    mallory = acksig.generate_key(tmp_path / "mallory.key")
    forged = 0
    for rec in pending:
        sha = learned[rec.record_id]
        base = wire.Ack(rec.record_id, sha, time.time(), config.device.id)
        batch = wire.BatchAck(config.device.id, time.time(), (wire.AckItem(rec.record_id, sha),))
        for forgery in (
            wire.encode_ack(dataclasses.replace(base, signature=bytes(64))),  # no signature
            wire.encode_ack(acksig.sign(mallory, base)),                      # attacker's key
            wire.encode_batch_ack(acksig.sign(mallory, batch)),               # same, batched
            wire.encode_batch_ack(dataclasses.replace(
                moved["kiosk-01"], items=batch.items)),          # genuine signature, moved
        ):
            attacker.publish(acks, forgery)
            forged += 1
    attacker.publish(acks, genuine["kiosk-02"])      # another device's
    attacker.publish(acks, genuine["kiosk-01"])      # replay, already done
    wait_for(lambda: device_dead_letters(config).get("forged", 0) >= forged, 10, "forgeries")
    wait_for(lambda: device_dead_letters(config).get("other_device", 0) >= 1, 10, "replay")
    time.sleep(0.5)
    assert not any(outbox_state(config, r.record_id) is OutboxState.DELIVERED for r in pending)
    counts = device_dead_letters(config)
    assert counts["forged"] == forged and counts["other_device"] == 1

    services(run_receiver, config)
    wait_for(lambda: all_delivered(config, pending), 60, "the genuine acks")
    assert_exactly_once(config, first + pending)
    assert_no_false_delivery(config)
    assert pub.running()
    attacker.close()


def test_wrong_hash_ack_makes_the_record_due_at_once(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=60.0)
    attacker = Attacker(broker.port)
    # The receiver's persistent session exists, so the broker queues what comes next.
    subscribed_receiver(services, config, attacker).stop()
    [rec] = enqueue(config, 1)
    pub = services(run_publisher, config)
    wait_for(lambda: attempts(config, rec.record_id) == 1
             and outbox_state(config, rec.record_id) is OutboxState.SENDING, 10, "sending")
    time.sleep(0.5)  # the record message has left
    central_key = acksig.load_private_key(ack_keys(tmp_path / "keys")[0])
    wrong = acksig.sign(central_key, wire.Ack(rec.record_id, "f" * 64, time.time(),
                                              config.device.id))
    attacker.publish(wire.acks_topic("bhxh", config.device.id), wire.encode_ack(wrong))
    # Due again at once, not after the 60 s ack timeout.
    wait_for(lambda: attempts(config, rec.record_id) >= 2, 5, "an immediate re-send")
    assert device_dead_letters(config).get("wrong_hash") == 1
    assert outbox_state(config, rec.record_id) is not OutboxState.DELIVERED
    services(run_receiver, config)
    wait_for(lambda: all_delivered(config, [rec]), 30, "delivery")
    assert_exactly_once(config, [rec])
    assert_no_false_delivery(config)
    assert pub.running()
    attacker.close()


def forged_record(record_id: str, device_id: str) -> tuple[bytes, str, str]:
    body = json.dumps({"record_id": record_id, "device_id": device_id,
                       "dossier_code": "FORGED", "papers": []})
    sha = hashlib.sha256(body.encode()).hexdigest()
    return wire.encode_record(wire.RecordMessage(record_id, sha, body)), sha, body


def test_squatted_record_id_still_delivers_the_genuine_record(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)
    [rec, other] = enqueue(config, 2, pdf_sizes=(7_000,))
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    # The forged record takes the pending id first, before the device says anything.
    payload, forged_sha, forged_body = forged_record(rec.record_id, config.device.id)
    attacker.publish(wire.records_topic("bhxh", config.device.id), payload)
    wait_for(lambda: central_store.list_records(config.central.database), 10, "the squat")
    assert central_store.list_records(config.central.database)[0]["sha256"] == forged_sha

    pub = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, [rec, other]), 30, "the genuine records")
    assert_exactly_once(config, [rec, other])
    assert_no_false_delivery(config)
    [held] = central_store.list_held(config.central.database)
    assert held["sha256"] == forged_sha and held["body_json"] == forged_body
    [conflict] = central_store.list_conflicts(config.central.database)
    assert (conflict["record_id"], conflict["state"]) == (rec.record_id, "resolved")
    # Publishing the forgery again changes nothing that is served.
    attacker.publish(wire.records_topic("bhxh", config.device.id), payload)
    time.sleep(1.0)
    assert_exactly_once(config, [rec, other])
    assert receiver.running() and pub.running()
    attacker.close()


def test_record_naming_another_device_is_refused(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    attacker.sniff(wire.acks_topic("bhxh", "kiosk-02"))
    payload, _sha, _body = forged_record("stolen-1", "kiosk-01")
    attacker.publish(wire.records_topic("bhxh", "kiosk-02"), payload)
    wait_for(lambda: central_store.list_rejections(config.central.database), 10, "refusal")
    [rejection] = central_store.list_rejections(config.central.database)
    assert "from device 'kiosk-01', sent on the topic of 'kiosk-02'" in rejection["reason"]
    assert central_store.list_records(config.central.database) == []
    assert attacker.seen == [] and receiver.running()
    attacker.close()
