"""Red team on the device's ack topic: the receiver as a signing oracle, and batch acks
decoded inline that name a record more than once.

Why: anyone who can publish on a device's records topic can make the central sign a
"have" answer for that device, with a nonce and a record of the attacker's choosing
(a resume query costs nothing); the device must see such answers as answers to no
query of its own. And a signed "acks" batch may name one record many times (a record
re-sent and redelivered within one group commit): outbox.mark_received_many and the
batched audit chain must mark it delivered once, write one chained "send" line, and
keep the chain verifiable, whatever received_at the batch carries. tests/sync/
test_acks.py covers forged, replayed and moved acks; this covers what it does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.store import audit
from appliance.store.db import connect
from appliance.store.outbox import OutboxState
from appliance.sync import acksig, wire
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    Attacker,
    Service,
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

Start = Callable[[Callable[..., None], config_mod.Config], Service]
SHA = "a" * 64
# Just under wire.MAX_TIMESTAMP: the float the audit line must write exactly as json does.
LATE = 99999999999.99998


def resume_query(record_id: str, nonce: str) -> bytes:
    return wire.encode_resume(wire.ResumeQuery(record_id, nonce, ((SHA, 2),)))


def send_lines(config: config_mod.Config, record_id: str) -> tuple[int, bool]:
    """The device's audit 'send' lines for a record, and whether the chain verifies."""
    conn = connect(config.paths.database)
    try:
        lines = [e for e in audit.entries(conn)
                 if e.action == "send" and e.detail.get("record_id") == record_id]
        return len(lines), audit.verify(conn).ok
    finally:
        conn.close()


def sniffed_ids(attacker: Attacker) -> set[str]:
    found: set[str] = set()
    for _topic, payload in attacker.seen:
        try:
            msg = wire.decode_device_message(payload)
        except Exception:  # noqa: BLE001 - chunks, acks and junk alike
            continue
        if isinstance(msg, wire.RecordMessage):
            found.add(msg.record_id)
        if isinstance(msg, wire.RecordPack):
            found.update(r.record_id for r in msg.records)
    return found


def test_resume_answers_made_on_demand_and_a_batch_naming_a_record_twice(
        tmp_path: Path, broker: MosquittoProcess, services: Start) -> None:
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=30.0)
    me = config.device.id
    acks = wire.acks_topic("bhxh", me)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    first = enqueue(config, 1)
    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, first), 20, "a first delivery")

    # The receiver signs a "have" for whoever asks on a device's topic.
    attacker.sniff(wire.acks_topic("bhxh", "kiosk-02"))
    attacker.publish(wire.records_topic("bhxh", me), resume_query(first[0].record_id,
                                                                  "n" * 32))
    attacker.publish(wire.records_topic("bhxh", "kiosk-02"), resume_query("theirs-1",
                                                                          "m" * 32))
    theirs = wait_for(lambda: [p for t, p in attacker.seen if t.endswith("kiosk-02/acks")],
                      10, "the receiver's answer to the attacker's query")
    assert isinstance(wire.decode_ack_message(theirs[0]), wire.Have)
    attacker.publish(acks, theirs[0])  # a genuine signature, for another device
    mallory = acksig.generate_key(tmp_path / "mallory.key")
    attacker.publish(acks, wire.encode_have(acksig.sign(mallory, wire.Have(
        me, first[0].record_id, "o" * 32, ((SHA, 2, 2),)))))
    wait_for(lambda: all(device_dead_letters(config).get(k, 0) >= 1
                         for k in ("stale", "other_device", "forged")), 10, "the answers")
    time.sleep(0.3)
    counts = device_dead_letters(config)
    assert (counts.get("stale"), counts.get("other_device"), counts.get("forged")) == (1, 1, 1)

    # The receiver away, two records sent and waiting; a batch signed with the central's
    # key names one of them 200 times, an unknown id, and the other with other bytes.
    receiver.stop()
    attacker.sniff(wire.records_topic("bhxh", me))
    rec, other = enqueue(config, 2)
    wait_for(lambda: {rec.record_id, other.record_id} <= sniffed_ids(attacker), 20,
             "both records sent")
    key = acksig.load_private_key(ack_keys(tmp_path / "keys")[0])
    items = ((wire.AckItem(rec.record_id, rec.sha256),) * 200
             + (wire.AckItem("rt-nobody", SHA), wire.AckItem(other.record_id, "f" * 64)))
    batch = acksig.sign(key, wire.BatchAck(me, LATE, items))
    attacker.publish(acks, wire.encode_batch_ack(batch))
    wait_for(lambda: outbox_state(config, rec.record_id) is OutboxState.DELIVERED, 10,
             "the batch")
    wait_for(lambda: device_dead_letters(config).get("wrong_hash", 0) >= 1, 10, "wrong hash")
    assert device_dead_letters(config).get("unknown_record") == 1
    assert outbox_state(config, other.record_id) is not OutboxState.DELIVERED
    assert send_lines(config, rec.record_id) == (1, True)

    # The receiver back: what the batch said is now true, and the other record arrives.
    services(run_receiver, config)
    wait_for(lambda: all_delivered(config, first + [rec, other]), 30, "every record")
    assert_exactly_once(config, first + [rec, other])
    assert_no_false_delivery(config)
    assert send_lines(config, rec.record_id) == (1, True)
    assert send_lines(config, other.record_id) == (1, True)
    assert publisher.running()
    attacker.close()
