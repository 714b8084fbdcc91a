"""The outbox's promises, on a real SQLite file: atomic enqueue, order, claims, back-off."""

from __future__ import annotations

import sqlite3

import pytest

from appliance.records import dossiers
from appliance.store import outbox
from appliance.store.db import connect
from appliance.store.errors import StoreError
from appliance.store.outbox import OutboxState
from tests.helpers.device_records import add_record, device_config, submitted_dossier


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "device.sqlite3")
    yield c
    c.close()


def test_enqueue_refuses_to_run_outside_the_record_transaction(conn, tmp_path):
    rec = add_record(conn, tmp_path / "files")
    with pytest.raises(StoreError):
        outbox.enqueue(conn, rec.record_id)


def test_enqueue_rolls_back_with_the_record(conn, tmp_path):
    dossier_id = submitted_dossier(conn, device_config(), tmp_path / "files")
    # The last write of sign-off fails after the record and its outbox row were written.
    conn.execute("CREATE TEMP TRIGGER crash BEFORE UPDATE OF status ON dossiers "
                 "WHEN NEW.status = 'signed' BEGIN SELECT RAISE(ABORT, 'crash'); END")
    with pytest.raises(sqlite3.DatabaseError):
        dossiers.sign_off(conn, device_config(), dossier_id, "Nguyễn Thị Lan",
                          sign_results=False)  # stand-in PDF, pages outside config's store
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0


def test_claims_oldest_first_and_each_row_once(conn, tmp_path):
    recs = [add_record(conn, tmp_path / "files") for _ in range(3)]
    claimed = [outbox.claim_next(conn) for _ in range(3)]
    assert [c.record_id for c in claimed] == [r.record_id for r in recs]
    assert claimed[0].body_json == recs[0].body_json and claimed[0].sha256 == recs[0].sha256
    assert all(c.attempts == 1 for c in claimed)
    assert outbox.claim_next(conn) is None
    assert outbox.stats(conn)["sending"] == 3


def test_stale_claims_are_reset_at_start(conn, tmp_path):
    rec = add_record(conn, tmp_path / "files")
    assert outbox.claim_next(conn) is not None
    assert outbox.claim_next(conn) is None
    assert outbox.reset_stale(conn) == 1
    again = outbox.claim_next(conn)
    assert again is not None and again.record_id == rec.record_id and again.attempts == 2


def test_backoff_keeps_a_failing_row_from_blocking_younger_ones(conn, tmp_path):
    first = add_record(conn, tmp_path / "files")
    second = add_record(conn, tmp_path / "files")
    t = 1000.0
    assert outbox.claim_next(conn, now=t).record_id == first.record_id
    outbox.retry_later(conn, first.record_id, now=t)
    assert outbox.claim_next(conn, now=t + 0.5).record_id == second.record_id
    assert outbox.claim_next(conn, now=t + 0.5) is None
    due = outbox.claim_next(conn, now=t + outbox.backoff_seconds(1))
    assert due.record_id == first.record_id and due.attempts == 2


def test_backoff_grows_and_is_capped():
    delays = [outbox.backoff_seconds(n) for n in range(1, 30)]
    assert delays == sorted(delays)
    assert delays[0] == outbox.BACKOFF_BASE_SECONDS
    assert delays[-1] == outbox.BACKOFF_CAP_SECONDS


def test_delivery_needs_the_records_own_hash_and_keeps_the_row(conn, tmp_path):
    rec = add_record(conn, tmp_path / "files")
    outbox.claim_next(conn)
    assert not outbox.mark_delivered(conn, rec.record_id, {"sha256": "0" * 64})
    assert outbox.state_of(conn, rec.record_id) is OutboxState.SENDING
    ack = {"record_id": rec.record_id, "sha256": rec.sha256, "received_at": 5.0}
    assert outbox.mark_delivered(conn, rec.record_id, ack, now=2000.0)
    assert not outbox.mark_delivered(conn, rec.record_id, ack)  # a duplicate ack
    assert outbox.state_of(conn, rec.record_id) is OutboxState.DELIVERED
    outbox.retry_later(conn, rec.record_id)  # a late timeout must not resurrect it
    assert outbox.state_of(conn, rec.record_id) is OutboxState.DELIVERED
    assert outbox.claim_next(conn) is None
    assert outbox.reset_stale(conn) == 0
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1


def test_late_ack_after_retry_still_delivers(conn, tmp_path):
    rec = add_record(conn, tmp_path / "files")
    outbox.claim_next(conn)
    outbox.retry_later(conn, rec.record_id)
    assert outbox.mark_delivered(conn, rec.record_id, {"sha256": rec.sha256})
    assert outbox.state_of(conn, rec.record_id) is OutboxState.DELIVERED


def test_stats(conn, tmp_path):
    empty = outbox.stats(conn)
    assert empty["queue_depth"] == 0
    assert empty["oldest_undelivered_age_seconds"] is None
    assert empty["last_delivery_at"] is None and empty["delivered_count"] == 0
    recs = [add_record(conn, tmp_path / "files") for _ in range(3)]
    conn.execute("UPDATE outbox SET created_at=100.0 WHERE record_id=?", (recs[0].record_id,))
    outbox.claim_next(conn)
    outbox.mark_delivered(conn, recs[0].record_id, {"sha256": recs[0].sha256}, now=150.0)
    outbox.claim_next(conn)
    s = outbox.stats(conn, now=conn.execute("SELECT MAX(created_at) FROM outbox")
                     .fetchone()[0] + 10)
    assert s["queue_depth"] == 2 and s["pending"] == 1 and s["sending"] == 1
    assert s["delivered_count"] == 1 and s["last_delivery_at"] == 150.0
    assert 9.9 < s["oldest_undelivered_age_seconds"] < 12


def test_a_clock_that_went_backwards_does_not_strand_rows(conn, tmp_path):
    rec = add_record(conn, tmp_path / "files")
    outbox.claim_next(conn, now=1_000_000.0)
    outbox.retry_later(conn, rec.record_id, now=1_000_000.0)
    assert outbox.claim_next(conn, now=1_000_000.5) is None
    again = outbox.claim_next(conn, now=5_000.0)  # rebooted with an old clock
    assert again is not None and again.record_id == rec.record_id


def test_a_dead_letter_keeps_what_no_database_text_can_hold_as_escapes(conn):
    """A reason or topic quoting a lone surrogate or U+0000 (what a WireError may quote
    of a message) is stored with those written as escapes, not raised at the INSERT."""
    count = outbox.put_dead_letter(conn, "bhxh/devices/kiosk-01/acks\x00x",
                                   outbox.DeadLetterKind.MALFORMED,
                                   "length '\ud800' outside the payload", b"\xff\x00")
    assert count == 1
    topic, reason, head = conn.execute(
        "SELECT topic, reason, head FROM sync_dead_letters").fetchone()
    assert topic == "bhxh/devices/kiosk-01/acks\\0x"
    assert reason == "length '\\ud800' outside the payload"
    assert bytes(head) == b"\xff\x00"


def test_a_dead_letter_the_broker_sends_again_is_counted_once(conn):
    """Keyed by how it came (session epoch and packet id) and its bytes: the same message
    sent again with DUP set is not counted; a new message that reuses a packet id later,
    or the same packet id in a session the broker started afresh, is."""
    kind = outbox.DeadLetterKind.FORGED
    junk = b'{"v":1,"type":"acks"}'
    assert outbox.put_dead_letter(conn, "t", kind, "bad", junk, delivery="1/7") == 1
    assert outbox.put_dead_letter(conn, "t", kind, "bad", junk, delivery="1/7",
                                  redelivered=True) is None
    assert outbox.put_dead_letter(conn, "t", kind, "bad", junk, delivery="1/7") == 2
    assert outbox.put_dead_letter(conn, "t", kind, "bad", junk, delivery="2/7",
                                  redelivered=True) == 3
    assert outbox.put_dead_letter(conn, "t", kind, "bad", junk + b" ", delivery="1/7",
                                  redelivered=True) == 4
    assert outbox.put_dead_letter(conn, "t", kind, "bad", junk, redelivered=True) == 5
    assert outbox.dead_letter_counts(conn) == {"total": 5, "forged": 5}
    assert conn.execute("SELECT COUNT(*) FROM sync_dead_letters").fetchone()[0] == 5
