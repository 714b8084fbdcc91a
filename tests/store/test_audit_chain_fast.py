"""The audit chain's batch writer composes each entry's hashed text itself instead of
json.dumps of the entry: these tests hold it to byte-identity with `entry_hash` and
`_canonical` (the reference the verifier uses) over many random details, and check that
append_canonical_many writes exactly the rows append_many writes."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from typing import Any

import pytest

from appliance.store import audit
from appliance.store.db import connect

WORDS = ["Nguyễn Thị Lan", "Tờ khai", "đã ký", "bảo hiểm xã hội", "", "a\"b\\c", "\n\t\x00\x1f",
         "\u2028\u2029", "emoji 🙂", "中文", "plain", "record-01.x:y", "0" * 64]


def _value(rng: random.Random) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice(WORDS) + rng.choice(WORDS)
    if kind == 1:
        return rng.randint(-10**20, 10**20)
    if kind == 2:
        return rng.choice([0.0, -0.0, 1.5, 1e300, 5e-324, 1764180000.123456, math.inf,
                           -math.inf, math.nan, rng.random() * 10**rng.randint(-5, 12)])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.randint(0, 10)
    if kind == 5:  # not scalars: json.dumps itself writes these
        return rng.choice([[1, "á"], {"z": 1, "a": [None]}, (2, 3)])
    return rng.choice(WORDS)


def _detail(rng: random.Random) -> dict[Any, Any]:
    keys = ["record_id", "sha256", "ack_received_at", "ack_status", "Tờ", "a", "A", "é",
            "", "z\"", "ký hiệu", "10", "9"]
    detail: dict[Any, Any] = {k: _value(rng) for k in rng.sample(keys, rng.randint(0, 6))}
    if rng.random() < 0.05:
        detail[rng.randint(0, 20)] = "a key that is not a string"
    return detail


def test_values_are_written_as_json_dumps_writes_them_byte_for_byte():
    """The chain writes the entry's time and dossier id itself (_value): each as
    json.dumps writes it in the canonical form, over 20,000 random values."""
    rng = random.Random(20251126)
    for _ in range(20_000):
        value = _value(rng)
        assert audit._value(value) == json.dumps(  # noqa: SLF001
            value, ensure_ascii=False, sort_keys=True, separators=(",", ":")), value


def _rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY seq")] + [
        tuple(r) for r in conn.execute("SELECT * FROM audit_head")]


@pytest.fixture
def two(tmp_path, monkeypatch):
    """Two fresh device databases, and an audit clock that stands still."""
    monkeypatch.setattr(audit, "now", lambda: 1764180000.123456)
    a, b = connect(tmp_path / "a.sqlite3"), connect(tmp_path / "b.sqlite3")
    yield a, b
    a.close()
    b.close()


def test_canonical_batches_write_what_append_many_writes(two):
    a, b = two
    rng = random.Random(7)
    for batch in range(30):
        items = []
        for _ in range(rng.randint(0, 40)):
            detail = {k: v for k, v in _detail(rng).items() if isinstance(k, str)}
            items.append((rng.choice([None, 0, 1, rng.randint(2, 10**9)]), detail))
        actor = rng.choice(["central", " Nguyễn Thị Lan ", "", "x" * 300, "a\"b"])
        action = rng.choice(list(audit.AuditAction))
        made = audit.append_many(a, action, actor, items)
        assert audit.append_canonical_many(
            b, action, actor, [(d, audit._canonical(x)) for d, x in items]) == len(items)
        assert _rows(a) == _rows(b), batch
        for entry in made:  # the reference hash, as the verifier computes it
            assert entry.sha256 == audit.entry_hash(
                entry.seq, entry.at, entry.actor, entry.action, entry.dossier_id,
                entry.detail, entry.prev_sha256)
    assert audit.verify(a).ok and audit.verify(b).ok
    assert audit.verify(b).entries > 300


def test_batch_entries_chain_onto_single_appends_and_back(two):
    a, _ = two
    audit.append(a, audit.AuditAction.VIEW, "officer:Lan", 3, {"what": "dossier"})
    audit.append_canonical_many(a, audit.AuditAction.SEND, "central", [
        (3, audit._canonical({"record_id": "r-1", "sha256": "a" * 64,
                              "ack_received_at": 1.25, "ack_status": "stored"})),
        (None, "{}")])
    audit.append(a, audit.AuditAction.PURGE, "system", 3, {"n": 1})
    entries = audit.entries(a)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[1].detail == {"record_id": "r-1", "sha256": "a" * 64,
                                 "ack_received_at": 1.25, "ack_status": "stored"}
    assert audit.verify(a).ok


def test_a_detail_with_number_keys_still_verifies(two):
    """json sorts 9 before 10, then "10" before "9" once stored as text: the hash must be
    over the text the verifier re-encodes, as entry_hash always was."""
    a, _ = two
    entry, = audit.append_many(a, audit.AuditAction.CORRECTION, "officer", [
        (1, {10: "a", 9: "b"})])
    stored = a.execute("SELECT detail_json FROM audit_log").fetchone()[0]
    assert stored == '{"9":"b","10":"a"}'
    assert entry.detail == {"9": "b", "10": "a"}
    assert entry.sha256 == audit.entry_hash(entry.seq, entry.at, entry.actor, entry.action,
                                            entry.dossier_id, json.loads(stored),
                                            entry.prev_sha256)
    assert audit.verify(a).ok


def test_a_text_that_is_not_canonical_is_caught_by_verify(two):
    a, _ = two
    audit.append_canonical_many(a, audit.AuditAction.SEND, "central",
                                [(1, '{"b": 1, "a": 2}')])
    assert not audit.verify(a).ok


def test_odd_times_and_dossier_ids_hash_as_entry_hash_writes_them(tmp_path, monkeypatch):
    """Values SQLite's columns would not give (an int time, a bool or float dossier id)
    still hash as json.dumps writes them, as entry_hash always did."""
    monkeypatch.setattr(audit, "now", lambda: 1764180000)
    conn = connect(tmp_path / "odd.sqlite3")
    try:
        made = audit.append_many(conn, "send", "central", [
            (True, {"a": 1}), (2.5, {}), (None, {"b": None}), (7, {"c": [1, {"d": 2}]})])
        for entry in made:
            assert entry.sha256 == audit.entry_hash(
                entry.seq, entry.at, entry.actor, entry.action, entry.dossier_id,
                entry.detail, entry.prev_sha256)
    finally:
        conn.close()
