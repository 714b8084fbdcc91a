"""mark_received_many (the sync service's path: acks as tuples sharing one Receipt per
message, with the record as claimed when it is in flight) against mark_delivered_many
with the dict the sync service passed before (wire.Ack.as_dict()): the same records
completed, and byte for byte the same outbox rows and audit lines, for fresh,
duplicate, unknown, wrong-hash, already delivered and unclaimed acks, with and without
the claimed record."""

from __future__ import annotations

import base64
import json
import random
import sqlite3
from typing import Any

import pytest

from appliance.store import audit, outbox
from appliance.store.db import connect
from appliance.sync import wire
from tests.helpers.device_records import add_record

NOW = 1764180000.5


def _state(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return ([tuple(r) for r in conn.execute(
        "SELECT record_id, state, attempts, delivered_at, ack_json FROM outbox ORDER BY id")]
        + [tuple(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY seq")]
        + [tuple(r) for r in conn.execute("SELECT * FROM audit_head")])


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """Two copies of one device database holding five signed records, two of them
    claimed, and an audit clock that stands still."""
    monkeypatch.setattr(audit, "now", lambda: NOW)
    a = connect(tmp_path / "a.sqlite3")
    recs = [add_record(a, tmp_path / "files") for _ in range(5)]
    claimed = {item.record_id: item for item in (outbox.claim_next(a), outbox.claim_next(a))}
    b = connect(tmp_path / "b.sqlite3")
    a.backup(b)
    yield a, b, recs, claimed
    a.close()
    b.close()


def _as_dict(record_id: str, sha: str, status: str, receipt: outbox.Receipt) -> dict[str, Any]:
    """What the sync service handed mark_delivered_many before: the wire Ack's dict."""
    return wire.Ack(record_id, sha, receipt.received_at, receipt.device_id,
                    wire.AckStatus(status), base64.b64decode(receipt.sig),
                    receipt.kid).as_dict()


def test_the_same_rows_as_the_dict_path_for_every_kind_of_ack(pair):
    a, b, recs, claimed = pair
    assert set(claimed) == {recs[0].record_id, recs[1].record_id}
    rng = random.Random(3)
    first = outbox.Receipt(1764179999.25, "kiosk-01",
                           base64.b64encode(rng.randbytes(64)).decode("ascii"))
    second = outbox.Receipt(1764180001.0, "kiosk-01", base64.b64encode(b"").decode("ascii"),
                            "0123456789abcdef")   # names the key that verified it
    item = claimed.get
    acks = [
        (recs[0].record_id, recs[0].sha256, "stored", first, item(recs[0].record_id)),
        (recs[1].record_id, "0" * 64, "stored", first, item(recs[1].record_id)),  # other bytes
        ("no-such-record", recs[2].sha256, "stored", first, None),  # not on this device
        (recs[2].record_id, recs[2].sha256, "contested", first, None),  # pending
        (recs[0].record_id, recs[0].sha256, "stored", second, None),  # a duplicate
        (recs[3].record_id, recs[3].sha256, "stored", second, None),
    ]
    dicts = [(r, _as_dict(r, s, st, rc)) for r, s, st, rc, _item in acks]
    assert all(d == rc.ack(r, s, st)
               for (r, s, st, rc, _item), (_, d) in zip(acks, dicts, strict=True))
    got = outbox.mark_received_many(a, acks, now=NOW)
    assert got == outbox.mark_delivered_many(b, dicts, now=NOW)
    assert got == [recs[0].record_id, recs[2].record_id, recs[3].record_id]
    assert _state(a) == _state(b)
    # Byte for byte the JSON of the wire Ack, as the outbox row always kept it.
    kept = a.execute("SELECT ack_json FROM outbox WHERE record_id=?",
                     (recs[0].record_id,)).fetchone()[0]
    assert kept == json.dumps(dicts[0][1], ensure_ascii=False, sort_keys=True)
    assert audit.verify(a).ok
    # Again: all delivered before (or still unknown), so nothing changes, nothing is written.
    assert outbox.mark_received_many(a, acks, now=NOW + 1) == []
    assert outbox.mark_delivered_many(b, dicts, now=NOW + 1) == []
    assert _state(a) == _state(b)
    assert outbox.mark_received_many(a, [], now=NOW) == []
    assert _state(a) == _state(b)


def test_random_batches_match_the_dict_path(pair):
    a, b, recs, claimed = pair
    # Items as the sync service holds them: claimed here, and a stale one whose outbox
    # row was erased meanwhile (a pending row may be), and one read without its dossier.
    outbox.retry_later(a, recs[1].record_id, delay=0)
    outbox.retry_later(b, recs[1].record_id, delay=0)
    for conn in (a, b):
        conn.execute("DELETE FROM outbox WHERE record_id=? AND state='pending'",
                     (recs[1].record_id,))
    claimed[recs[4].record_id] = outbox.OutboxItem(recs[4].record_id, "", recs[4].sha256, 1,
                                                   0.0)
    rng = random.Random(11)
    ids = [r.record_id for r in recs] + ["gone-1", "x" * 128]
    shas = {r.record_id: r.sha256 for r in recs}
    for _ in range(20):
        receipt = outbox.Receipt(rng.uniform(0, 2e9), rng.choice(["kiosk-01", "other-02"]),
                                 base64.b64encode(rng.randbytes(64)).decode("ascii"),
                                 rng.choice(["", rng.randbytes(8).hex()]))
        acks = []
        for _ in range(rng.randint(0, 8)):
            rid = rng.choice(ids)
            sha = shas.get(rid, "f" * 64) if rng.random() < 0.8 else "e" * 64
            acks.append((rid, sha, rng.choice([s.value for s in wire.AckStatus]), receipt,
                         claimed.get(rid) if rng.random() < 0.7 else None))
        dicts = [(r, _as_dict(r, s, st, rc)) for r, s, st, rc, _item in acks]
        assert outbox.mark_received_many(a, acks, now=NOW) == outbox.mark_delivered_many(
            b, dicts, now=NOW)
        assert _state(a) == _state(b)
    assert audit.verify(a).ok and audit.verify(b).ok
