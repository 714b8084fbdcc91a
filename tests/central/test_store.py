"""The central store on a real SQLite file: identity per device, claims, chunk limits,
expiry, dead letters, and a schema of its own (nothing imported from the device)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.central import store
from appliance.central.db import MIGRATIONS, PAGE_SIZE, connect
from appliance.central.errors import ChunkRefused
from appliance.sync import wire
from tests.helpers.sync_rig import NO_CHUNK_STATE

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "central.sqlite3"
    conn = connect(path)
    yield conn, path
    conn.close()


def record(record_id: str, device_id: str = "kiosk-01", code: str = "D-1",
           files: list[bytes] = (), claim: bool = False) -> wire.RecordMessage:
    papers = [{"result_code": f"{code}.{i:02d}",
               "file": {"sha256": hashlib.sha256(f).hexdigest(), "size": len(f)}}
              for i, f in enumerate(files, start=1)]
    body = json.dumps({"record_id": record_id, "device_id": device_id, "dossier_code": code,
                       "papers": papers})
    return wire.RecordMessage(record_id, hashlib.sha256(body.encode()).hexdigest(), body,
                              claim)


def served(path: Path) -> dict[tuple[str, str], str]:
    return {(r["device_id"], r["record_id"]): r["sha256"] for r in store.list_records(path)}


def test_record_ids_are_per_device(db):
    conn, path = db
    a, b = record("r-1", "kiosk-01"), record("r-1", "kiosk-02")
    assert store.put_record(conn, "kiosk-01", a).status is wire.AckStatus.STORED
    assert store.put_record(conn, "kiosk-02", b).status is wire.AckStatus.STORED
    assert served(path) == {("kiosk-01", "r-1"): a.sha256, ("kiosk-02", "r-1"): b.sha256}
    assert store.list_conflicts(path) == []


def test_first_claim_wins_and_a_second_claim_contests(db):
    conn, path = db
    squat = record("r-1", code="FORGED")
    genuine = record("r-1", code="GENUINE")
    assert store.put_record(conn, "kiosk-01", squat).status is wire.AckStatus.STORED
    # The genuine bytes arrive: held aside, never overwriting, acked as CONFLICT.
    result = store.put_record(conn, "kiosk-01", genuine)
    assert (result.outcome, result.status) == (store.Outcome.STORED, wire.AckStatus.CONFLICT)
    assert served(path) == {("kiosk-01", "r-1"): squat.sha256}
    # The device claims its bytes: they are served, the squat is held aside.
    claimed = wire.RecordMessage(genuine.record_id, genuine.sha256, genuine.body_json, True)
    assert store.put_record(conn, "kiosk-01", claimed).status is wire.AckStatus.STORED
    assert served(path) == {("kiosk-01", "r-1"): genuine.sha256}
    assert [h["sha256"] for h in store.list_held(path)] == [squat.sha256]
    # A copy of the squat (no claim) changes nothing.
    assert store.put_record(conn, "kiosk-01", squat).status is wire.AckStatus.CONFLICT
    assert served(path) == {("kiosk-01", "r-1"): genuine.sha256}
    # The squatter claims too: contested, nothing is served, an operator decides.
    counter = wire.RecordMessage(squat.record_id, squat.sha256, squat.body_json, True)
    assert store.put_record(conn, "kiosk-01", counter).status is wire.AckStatus.CONTESTED
    assert served(path) == {}
    assert {h["sha256"] for h in store.list_held(path)} == {squat.sha256, genuine.sha256}
    assert store.put_record(conn, "kiosk-01", genuine).status is wire.AckStatus.CONTESTED
    [conflict] = store.list_conflicts(path)
    assert conflict["state"] == "contested"
    assert store.counters(conn)["conflicts"] == 1


def test_a_contest_is_counted_once_however_often_its_claims_come_again(db):
    """A device whose CONTESTED ack was lost sends its claim again, and a broker may
    redeliver one: the same contest, so conflicts_contested stays at 1."""
    conn, _path = db
    squat, genuine = record("r-1", code="FORGED"), record("r-1", code="GENUINE")
    store.put_record(conn, "kiosk-01", squat)
    store.put_record(conn, "kiosk-01", genuine)
    claims = [wire.RecordMessage(m.record_id, m.sha256, m.body_json, True)
              for m in (genuine, squat)]
    for claim in claims + claims + claims[::-1]:
        assert store.put_record(conn, "kiosk-01", claim).status is wire.AckStatus.CONTESTED \
            or claim is claims[0]
    counts = store.counters(conn)
    assert counts["conflicts_contested"] == 1
    assert counts["conflicts"] == 1
    # Another id contested is another count.
    other = [record("r-2", code=c) for c in ("A", "B")]
    for m in other:
        store.put_record(conn, "kiosk-01", m)
    for m in other[::-1]:  # each claimed while held aside
        store.put_record(conn, "kiosk-01",
                         wire.RecordMessage(m.record_id, m.sha256, m.body_json, True))
    assert store.counters(conn)["conflicts_contested"] == 2


def test_a_claim_sent_with_the_first_copy_counts_for_nothing(db):
    """A squatter who claims up front gains nothing: claims count only while held."""
    conn, path = db
    squat = record("r-1", code="FORGED", claim=True)
    genuine = record("r-1", code="GENUINE")
    store.put_record(conn, "kiosk-01", squat)
    store.put_record(conn, "kiosk-01", genuine)
    claimed = wire.RecordMessage(genuine.record_id, genuine.sha256, genuine.body_json, True)
    assert store.put_record(conn, "kiosk-01", claimed).status is wire.AckStatus.STORED
    assert served(path) == {("kiosk-01", "r-1"): genuine.sha256}


def chunks_of(record_id: str, data: bytes, chunk_bytes: int = 1024) -> list[wire.Chunk]:
    return list(wire.iter_chunks(record_id, hashlib.sha256(data).hexdigest(), data,
                                 chunk_bytes))


def test_chunks_are_per_device_and_cannot_poison_another_devices_file(db):
    conn, path = db
    data = os.urandom(3000)
    good = chunks_of("r-1", data)
    bad = chunks_of("r-1", os.urandom(3000))
    bad = [wire.Chunk(c.record_id, good[0].file_sha256, c.index, c.count, c.size, c.data)
           for c in bad]
    for c in bad:  # another device sends junk under the same file hash
        store.put_chunk(conn, "kiosk-66", c)
    for c in good:
        store.put_chunk(conn, "kiosk-01", c)
    result = store.put_record(conn, "kiosk-01", record("r-1", files=[data]))
    assert result.ack
    assert store.get_file(path, good[0].file_sha256) == data
    assert store.chunk_state(path)["transfers"] == 1  # kiosk-66's junk, until it expires


def test_chunk_limits(db):
    conn, path = db
    limits = store.Limits(max_transfers_per_device=2, max_chunk_store_bytes=10_000)
    files = [os.urandom(3000) for _ in range(4)]
    for f in files[:2]:
        store.put_chunk(conn, "ghost-01", chunks_of("x", f)[0], limits)
    with pytest.raises(ChunkRefused, match="2 transfers open"):
        store.put_chunk(conn, "ghost-01", chunks_of("x", files[2])[0], limits)
    # Another device is not blocked by ghost-01's transfers, but by the byte budget.
    for c in chunks_of("y", files[3])[:3]:
        store.put_chunk(conn, "kiosk-01", c, limits)
    big = chunks_of("y", os.urandom(9000))
    with pytest.raises(ChunkRefused, match="chunk store full"):
        for c in big:
            store.put_chunk(conn, "kiosk-02", c, limits)
    # A chunk that cannot fit beside those held (more data than the file announces)
    # restarts the transfer: the latest sender wins, never a wait for the expiry.
    c = chunks_of("z", os.urandom(3000))[0]
    store.put_chunk(conn, "kiosk-03", c)
    store.put_chunk(conn, "kiosk-03", c)  # a redelivery changes nothing
    whole = wire.Chunk("z", c.file_sha256, 1, c.count, c.size, os.urandom(3000))
    store.put_chunk(conn, "kiosk-03", whole)
    held = conn.execute("SELECT have, bytes FROM transfers WHERE device_id='kiosk-03'")
    assert [tuple(r) for r in held] == [(1, 3000)]
    store.put_chunk(conn, "kiosk-03", whole)  # a redelivery of the latest one neither
    store.put_chunk(conn, "kiosk-03", c)  # and the first cut back: restarted again
    held = conn.execute("SELECT have, bytes FROM transfers WHERE device_id='kiosk-03'")
    assert [tuple(r) for r in held] == [(1, len(c.data))]


def test_incomplete_transfers_expire_with_a_log_line(db, caplog):
    caplog.set_level(logging.WARNING, logger="appliance.central.store")
    conn, path = db
    for n in range(20):
        store.put_chunk(conn, f"ghost-{n:02d}", chunks_of("r", os.urandom(5000))[0])
    assert store.chunk_state(path)["transfers"] == 20
    assert store.purge_expired(conn, 3600) == 0
    import time
    assert store.purge_expired(conn, 3600, now=time.time() + 3601) == 20
    assert store.chunk_state(path) == NO_CHUNK_STATE
    assert store.counters(conn)["chunk_bytes_held"] == 0
    assert any("purged 20 incomplete transfer(s)" in r.getMessage() for r in caplog.records)


def test_dead_letters_keep_the_head_and_count(db):
    conn, path = db
    for _ in range(3):
        store.put_dead_letter(conn, "bhxh/devices/x/records", "x", "junk", b"A" * 5_000_000)
    letters = store.list_dead_letters(path)
    assert len(letters) == 3 and all(len(d["head"]) == 256 for d in letters)
    assert letters[0]["size"] == 5_000_000
    assert store.counters(conn)["dead_letters"] == 3


def _pack_scenario(conn, device: str) -> list[wire.RecordMessage]:
    """What a pack can hold besides plainly new records, with what came before it: a
    copy of a stored record, another content under a stored id, a bad hash, a body of
    another device, a file held and a file still missing, an id twice, a claim."""
    held_file, missing_file = f"PDF of {device}".encode(), f"lost {device}".encode()
    store.put_chunk(conn, device, wire.Chunk("r-file", hashlib.sha256(held_file).hexdigest(),
                                             0, 1, len(held_file), held_file))
    before = record("r-dup", device)
    store.put_record(conn, device, before)
    store.put_record(conn, device, record("r-squat", device, code="FIRST"))
    bad = record("r-bad", device)
    return [
        record("r-new", device), record("r-file", device, files=[held_file]),
        record("r-missing", device, files=[missing_file]), before,
        record("r-squat", device, code="SECOND"),
        wire.RecordMessage(bad.record_id, "0" * 64, bad.body_json),
        record("r-other", "kiosk-99"), record("r-twice", device, code="A"),
        record("r-twice", device, code="B"), record("r-claim", device, claim=True),
        record("r-new-2", device),
    ]


def _outcome(conn, path, device: str) -> tuple[object, ...]:
    rows = sorted((r["record_id"], r["dossier_code"], r["status"], r["copies"])
                  for r in (*store.list_records(path), *store.list_held(path))
                  if r["device_id"] == device)
    conflicts = sorted((c["record_id"], c["state"]) for c in store.list_conflicts(path)
                       if c["device_id"] == device)
    rejected = sorted((r["record_id"], r["reason"]) for r in store.list_rejections(path)
                      if r["device_id"] == device)
    return rows, conflicts, rejected


def test_a_pack_stored_at_once_ends_as_its_records_stored_one_by_one(db):
    """put_records takes the plainly new records of a pack in one INSERT and everything
    else through put_record: the results, rows, conflicts, rejections and counters are
    those of put_record called for each record in order (run here under two devices of
    one database, so that it also holds on PostgreSQL)."""
    conn, path = db
    seen: dict[str, object] = {}
    for device, at_once in (("kiosk-a", True), ("kiosk-b", False)):
        pack = _pack_scenario(conn, device)
        before = store.counters(conn)
        conn.execute("BEGIN IMMEDIATE")
        results = (store.put_records(conn, device, pack) if at_once
                   else [store.put_record(conn, device, m) for m in pack])
        conn.execute("COMMIT")
        after = store.counters(conn)
        seen[device] = ([(r.outcome, r.status,
                          re.sub("[0-9a-f]{64}", "H", r.reason.replace(device, "D")))
                         for r in results],
                        {k: after.get(k, 0) - before.get(k, 0) for k in after},
                        _outcome(conn, path, device))
    assert seen["kiosk-a"][0] == seen["kiosk-b"][0]
    assert seen["kiosk-a"][1] == seen["kiosk-b"][1]
    (rows_a, conflicts_a, rejected_a), (rows_b, conflicts_b, rejected_b) = (
        seen["kiosk-a"][2], seen["kiosk-b"][2])
    assert rows_a == rows_b
    assert ("r-twice", "A", "served", 1) in rows_a and ("r-twice", "B", "held", 1) in rows_a
    assert conflicts_a == conflicts_b and len(conflicts_a) == 2
    assert [rid for rid, _r in rejected_a] == [rid for rid, _r in rejected_b] == [
        "r-bad", "r-other"]
    outcomes = [o for o, _s, _r in seen["kiosk-a"][0]]
    assert outcomes.count(store.Outcome.STORED) == 7
    assert store.Outcome.INCOMPLETE in outcomes and store.Outcome.DUPLICATE in outcomes


def test_a_new_central_database_has_large_pages_and_an_old_one_keeps_its_own(tmp_path):
    """Large pages for a new file (fewer WAL frames per scan and per group commit); a
    file made before keeps its pages: SQLite cannot change them in WAL mode."""
    conn = connect(tmp_path / "new.sqlite3")
    assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    conn.close()
    old = sqlite3.connect(tmp_path / "old.sqlite3")
    old.execute("CREATE TABLE t(x)")
    old.commit()
    old.close()
    conn = connect(tmp_path / "old.sqlite3")
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert store.put_record(conn, "kiosk-01", record("r-1")).outcome is store.Outcome.STORED
    conn.close()


def test_old_central_database_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";\n"):
        old.execute(statement)
    old.execute("INSERT INTO records(record_id, device_id, sha256, body_json, received_at, "
                "last_copy_at) VALUES ('r-1', 'kiosk-01', ?, '{}', 1, 1)", ("a" * 64,))
    old.execute("PRAGMA user_version=1")
    old.commit()
    old.close()
    conn = connect(path)
    conn.close()
    assert served(path) == {("kiosk-01", "r-1"): "a" * 64}


def test_central_imports_nothing_of_the_device():
    code = ("import sys, appliance.central.receiver, appliance.central.store, "
            "appliance.central.db; "
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in ("
            "['appliance','store'], ['appliance','records'], ['appliance','scanner'], "
            "['appliance','ocr'], ['appliance','imaging'], ['appliance','worker'], "
            "['appliance','web'])); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_body_that_is_not_unicode_text_is_that_records_rejection(db):
    """A JSON envelope may carry a body with a lone surrogate ("\\ud800" escaped): it has
    no UTF-8 bytes, so it can match no sha256. Refused as that record, with a reason,
    also beside a good record in one pack; never an internal error."""
    conn, path = db
    bad = wire.RecordMessage("r-bad", "a" * 64, '{"record_id":"r-bad","x":"\ud800"}')
    good = record("r-good")
    results = store.put_records(conn, "kiosk-01", [bad, good])
    assert [r.outcome for r in results] == [store.Outcome.REJECTED, store.Outcome.STORED]
    assert "not Unicode text" in store.list_rejections(path)[0]["reason"]
    assert served(path) == {("kiosk-01", "r-good"): good.sha256}
