"""Delivered-marking writes its audit lines per ack batch: one 'send' line per record,
chained exactly as single appends would be, verified by the existing verifier, and
nothing written for an ack that changes nothing."""

from __future__ import annotations

from appliance.records import dossiers
from appliance.store import audit, outbox
from tests.helpers import device_db
from tests.records.test_audit import signed_dossier

config = device_db.config  # fixture
conn = device_db.conn  # fixture


def test_a_batch_of_acks_writes_one_chained_send_line_per_record(conn, config):
    made = [signed_dossier(conn, config) for _ in range(3)]
    before = audit.entries(conn)
    acks = [(rid, {"sha256": dossiers.record_of(conn, rid).sha256, "received_at": 1.5 + n,
                   "status": "stored"}) for n, (_, rid) in enumerate(made)]
    acks.insert(1, ("no-such-record", {"sha256": "0" * 64}))
    assert outbox.mark_delivered_many(conn, acks) == [rid for _, rid in made]
    after = audit.entries(conn)
    sent = after[len(before):]
    assert [(e.action, e.actor, e.dossier_id, e.detail["record_id"]) for e in sent] == [
        ("send", "central", did, rid) for did, rid in made]
    shas = [a[1]["sha256"] for a in acks if a[0] != "no-such-record"]
    assert [e.detail["sha256"] for e in sent] == shas
    assert [(e.detail["ack_received_at"], e.detail["ack_status"]) for e in sent] == [
        (1.5, "stored"), (2.5, "stored"), (3.5, "stored")]
    assert [e.seq for e in sent] == list(range(before[-1].seq + 1, before[-1].seq + 4))
    assert sent[0].prev_sha256 == before[-1].sha256
    assert all(b.prev_sha256 == a.sha256 for a, b in zip(sent, sent[1:], strict=False))
    head = conn.execute("SELECT seq, sha256 FROM audit_head").fetchone()
    assert (head["seq"], head["sha256"]) == (sent[-1].seq, sent[-1].sha256)
    assert audit.verify(conn).ok
    # Acks again: nothing is delivered a second time, so nothing is written.
    assert outbox.mark_delivered_many(conn, acks) == []
    assert len(audit.entries(conn)) == len(after)


def test_an_empty_batch_writes_nothing(conn, config):
    signed_dossier(conn, config)
    count = len(audit.entries(conn))
    assert audit.append_many(conn, audit.AuditAction.SEND, "central", []) == []
    assert len(audit.entries(conn)) == count and audit.verify(conn).ok


def test_a_batch_line_edited_afterwards_breaks_the_chain(conn, config):
    _, rid = signed_dossier(conn, config)
    other = signed_dossier(conn, config)[1]
    outbox.mark_delivered_many(conn, [(r, {"sha256": dossiers.record_of(conn, r).sha256})
                                      for r in (rid, other)])
    seq = audit.entries(conn)[-2].seq
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger' "
                                "AND tbl_name='audit_log'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE audit_log SET detail_json=? WHERE seq=?",
                 ('{"record_id":"forged","sha256":"x"}', seq))
    assert not audit.verify(conn).ok
