"""mark_received_many (the sync service's path: acks as tuples sharing one Receipt per
message) against mark_delivered_many with the dict the sync service passed before
(wire.Ack.as_dict()): the same records completed, and byte for byte the same outbox
rows and audit lines, for fresh, duplicate, unknown, wrong-hash, already delivered and
unclaimed acks."""

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
    outbox.claim_next(a)
    outbox.claim_next(a)
    b = connect(tmp_path / "b.sqlite3")
    a.backup(b)
    yield a, b, recs
    a.close()
    b.close()


def _as_dict(record_id: str, sha: str, status: str, receipt: outbox.Receipt) -> dict[str, Any]:
    """What the sync service handed mark_delivered_many before: the wire Ack's dict."""
    return wire.Ack(record_id, sha, receipt.received_at, receipt.device_id,
                    wire.AckStatus(status), base64.b64decode(receipt.sig)).as_dict()


def test_the_same_rows_as_the_dict_path_for_every_kind_of_ack(pair):
    a, b, recs = pair
    rng = random.Random(3)
    first = outbox.Receipt(1764179999.25, "kiosk-01",
                           base64.b64encode(rng.randbytes(64)).decode("ascii"))
    second = outbox.Receipt(1764180001.0, "kiosk-01", base64.b64encode(b"").decode("ascii"))
    acks = [
        (recs[0].record_id, recs[0].sha256, "stored", first),
        (recs[1].record_id, "0" * 64, "stored", first),           # other bytes
        ("no-such-record", recs[2].sha256, "stored", first),      # not on this device
        (recs[2].record_id, recs[2].sha256, "contested", first),  # pending, not claimed
        (recs[0].record_id, recs[0].sha256, "stored", second),    # a duplicate
        (recs[3].record_id, recs[3].sha256, "stored", second),
    ]
    dicts = [(r, _as_dict(r, s, st, rc)) for r, s, st, rc in acks]
    assert all(d == rc.ack(r, s, st) for (r, s, st, rc), (_, d) in zip(acks, dicts, strict=True))
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
    a, b, recs = pair
    rng = random.Random(11)
    ids = [r.record_id for r in recs] + ["gone-1", "x" * 128]
    shas = {r.record_id: r.sha256 for r in recs}
    for _ in range(20):
        receipt = outbox.Receipt(rng.uniform(0, 2e9), rng.choice(["kiosk-01", "other-02"]),
                                 base64.b64encode(rng.randbytes(64)).decode("ascii"))
        acks = []
        for _ in range(rng.randint(0, 8)):
            rid = rng.choice(ids)
            sha = shas.get(rid, "f" * 64) if rng.random() < 0.8 else "e" * 64
            acks.append((rid, sha, rng.choice([s.value for s in wire.AckStatus]), receipt))
        dicts = [(r, _as_dict(r, s, st, rc)) for r, s, st, rc in acks]
        assert outbox.mark_received_many(a, acks, now=NOW) == outbox.mark_delivered_many(
            b, dicts, now=NOW)
        assert _state(a) == _state(b)
    assert audit.verify(a).ok and audit.verify(b).ok
