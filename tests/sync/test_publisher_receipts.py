"""The sync service's ack handling without a broker: signed batch and single acks go
through handle_ack (signature checked) into one Receipt per message, and are written by
mark_received_many. What it keeps is what it kept when it passed each wire.Ack's
as_dict() to mark_delivered_many: the same ack_json byte for byte, one chained audit
line per record; a full disk keeps the acks for the next loop; unknown, forged and
wrong-hash acks are still set aside."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from appliance.store import audit, outbox
from appliance.store.db import connect
from appliance.store.outbox import OutboxState
from appliance.sync import acksig, publisher, wire
from tests.helpers.sync_rig import enqueue, make_config


@pytest.fixture
def rig(tmp_path):
    config = make_config(tmp_path, 1)
    recs = enqueue(config, 4)
    conn = connect(config.paths.database)
    pub = publisher._Publisher(config, conn, threading.Event(), lambda _m: None, 16)
    pub.claim()
    assert set(pub.flights) == {r.record_id for r in recs}
    key = acksig.load_private_key(tmp_path / "keys" / "central-ack.key")
    yield config, conn, pub, recs, key
    conn.close()


def _batch(key, device_id, items, at=1764180000.25):
    return wire.encode_batch_ack(acksig.sign(key, wire.BatchAck(device_id, at, tuple(items))))


def _kept(conn: sqlite3.Connection, record_id: str) -> tuple[str, str]:
    row = conn.execute("SELECT state, ack_json FROM outbox WHERE record_id=?",
                       (record_id,)).fetchone()
    return row["state"], row["ack_json"]


def test_signed_acks_are_kept_as_before_and_survive_a_full_disk(rig, monkeypatch):
    config, conn, pub, recs, key = rig
    device = config.device.id
    batch = acksig.sign(key, wire.BatchAck(device, 1764180000.25, tuple(
        wire.AckItem(r.record_id, r.sha256) for r in recs[:3])))
    pub.handle_ack(pub.ack_topic, wire.encode_batch_ack(batch), False)
    single = acksig.sign(key, wire.Ack(recs[3].record_id, recs[3].sha256, 1764180001.5,
                                       device, wire.AckStatus.CONTESTED))
    pub.handle_ack(pub.ack_topic, wire.encode_ack(single), False)
    assert not pub.flights and len(pub.acked) == 4

    def full(*_args, **_kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as m:
        m.setattr(outbox, "mark_received_many", full)
        with pytest.raises(sqlite3.OperationalError):
            pub.mark_acked()
    assert len(pub.acked) == 4  # kept for the next loop
    pub.mark_acked()
    assert pub.acked == []
    expected = [*batch.acks(), single]
    for rec, ack in zip(recs, expected, strict=True):
        state, kept = _kept(conn, rec.record_id)
        assert state == OutboxState.DELIVERED.value
        assert kept == json.dumps(ack.as_dict(), ensure_ascii=False, sort_keys=True)
    sent = audit.entries(conn)[-4:]
    assert [(e.action, e.actor, e.detail) for e in sent] == [
        ("send", "central", {"record_id": a.record_id, "sha256": a.sha256,
                             "ack_received_at": a.received_at, "ack_status": a.status.value})
        for a in expected]
    assert audit.verify(conn).ok
    # The same acks again change nothing and write nothing.
    pub.handle_ack(pub.ack_topic, wire.encode_batch_ack(batch), False)
    pub.mark_acked()
    assert len(audit.entries(conn)) == sent[-1].seq


def test_unknown_forged_wrong_hash_and_conflict_acks(rig):
    config, conn, pub, recs, key = rig
    device = config.device.id
    pub.handle_ack(pub.ack_topic, _batch(key, device, [
        wire.AckItem("no-such-record", "0" * 64),
        wire.AckItem(recs[0].record_id, "1" * 64),
        wire.AckItem(recs[1].record_id, recs[1].sha256, wire.AckStatus.CONFLICT),
        wire.AckItem(recs[2].record_id, recs[2].sha256),
    ]), False)
    forged = wire.encode_batch_ack(wire.BatchAck(device, 5.0, (
        wire.AckItem(recs[3].record_id, recs[3].sha256),), b"\0" * 64))
    pub.handle_ack(pub.ack_topic, forged, False)
    pub.mark_acked()
    counts = outbox.dead_letter_counts(conn)
    assert counts["unknown_record"] == 1 and counts["wrong_hash"] == 1
    assert counts["forged"] == 1
    assert recs[1].record_id in pub.claims
    states = {r.record_id: _kept(conn, r.record_id)[0] for r in recs}
    assert states == {recs[0].record_id: "pending", recs[1].record_id: "pending",
                      recs[2].record_id: "delivered", recs[3].record_id: "sending"}
    assert set(pub.flights) == {recs[3].record_id}


def test_a_signed_answer_for_another_record_under_our_nonce_does_not_cost_the_real_one(rig):
    """The receiver signs a "have" for whoever asks on a device's topic, so an attacker
    who saw our resume query's nonce can get an answer under it for another record.
    That answer is set aside; our query stays open and its real answer still resumes
    the transfer (the query used to be forgotten first, and the real answer then
    counted as stale: a wait for nothing, and the file sent again from its start)."""
    config, conn, pub, recs, key = rig
    mine, other = recs[0], recs[1]
    nonce = "a1b2c3d4e5f60718"
    flight = pub.flights[mine.record_id]
    (sha, size), = flight.files
    flight.resume_nonce = nonce
    pub.asking[nonce] = mine.record_id
    count = pub.chunk_count(size, False)

    def have(record_id: str) -> bytes:
        return wire.encode_have(acksig.sign(key, wire.Have(
            config.device.id, record_id, nonce, ((sha, count, 1),))))

    pub.handle_ack(pub.ack_topic, have(other.record_id), False)
    assert flight.resume_nonce == nonce and pub.asking == {nonce: mine.record_id}
    assert outbox.dead_letter_counts(conn).get("stale") == 1
    pub.handle_ack(pub.ack_topic, have(mine.record_id), False)
    assert flight.resume_nonce is None and not pub.asking
    assert flight.skip == {sha: 1}
