"""The central store on a real PostgreSQL (Debian's server in a temporary folder): the
same semantics as on SQLite (the SQLite store tests run here unchanged against it),
plus what only a shared database must get right: two receivers racing on one record
id, a lost connection inside a batch, values PostgreSQL refuses, sealing at rest."""

from __future__ import annotations

import hashlib
import threading
import time

import psycopg
import pytest

from appliance.central import store
from appliance.central.db import connect, open_configured
from appliance.central.errors import CentralStoreError, StoreDataError
from appliance.sync import wire
from appliance.sync.errors import WireError
from appliance.system import crypto
from tests.central.test_store import (  # noqa: F401 - collected here against PostgreSQL
    record,
    served,
    test_a_claim_sent_with_the_first_copy_counts_for_nothing,
    test_a_pack_stored_at_once_ends_as_its_records_stored_one_by_one,
    test_chunk_limits,
    test_chunks_are_per_device_and_cannot_poison_another_devices_file,
    test_dead_letters_keep_the_head_and_count,
    test_first_claim_wins_and_a_second_claim_contests,
    test_incomplete_transfers_expire_with_a_log_line,
    test_record_ids_are_per_device,
)
from tests.helpers import postgres as pg_helpers

pg_server, pg_dsn = pg_helpers.pg_server, pg_helpers.pg_dsn  # fixtures

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "central.key"
    crypto.create_key(path)
    return path


@pytest.fixture
def db(pg_dsn, key):
    """(connection, what the read helpers take): here the open connection itself."""
    conn = connect(pg_dsn, key_file=key)
    yield conn, conn
    conn.close()


def test_the_engine_is_postgresql(db):
    conn, _ = db
    assert conn.engine == "postgresql"
    assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL")


def _racing_put(dsn, key, device, msg, results):
    other = connect(dsn, key_file=key)
    try:
        results.append(store.put_record(other, device, msg))
    finally:
        other.close()


def test_two_receivers_storing_one_record_at_once_make_one_row(pg_dsn, key):
    """Receiver A holds the record in its open batch; B, storing the same bytes, waits
    on the unique index, then sees A's commit: a duplicate, acked, one row."""
    a = connect(pg_dsn, key_file=key)
    msg = record("r-1")
    a.execute("BEGIN IMMEDIATE")
    assert store.put_record(a, "kiosk-01", msg).outcome is store.Outcome.STORED
    results: list[store.RecordResult] = []
    b = threading.Thread(target=_racing_put, args=(pg_dsn, key, "kiosk-01", msg, results))
    b.start()
    time.sleep(0.5)
    assert not results, "B did not wait for A's uncommitted row"
    a.execute("COMMIT")
    b.join(20)
    assert [r.outcome for r in results] == [store.Outcome.DUPLICATE]
    assert results[0].status is wire.AckStatus.STORED
    rows = a.execute("SELECT copies FROM records WHERE device_id='kiosk-01'").fetchall()
    assert [r["copies"] for r in rows] == [2]
    a.close()


def _racing_pack(dsn, key, device, msgs, results):
    other = connect(dsn, key_file=key)
    try:
        other.execute("BEGIN IMMEDIATE")
        results.extend(store.put_records(other, device, msgs))
        other.execute("COMMIT")
    finally:
        other.close()


def test_a_pack_racing_another_receiver_falls_back_record_by_record(pg_dsn, key):
    """B's pack holds a record that A has stored but not committed: B's one INSERT for
    the pack waits on the unique index, then inserts fewer rows than it should; the
    pack is rolled back to its savepoint and stored record by record: the raced one a
    duplicate, the others stored, one row each."""
    a = connect(pg_dsn, key_file=key)
    raced, others = record("r-1"), [record("r-2"), record("r-3")]
    a.execute("BEGIN IMMEDIATE")
    assert store.put_record(a, "kiosk-01", raced).outcome is store.Outcome.STORED
    results: list[store.RecordResult] = []
    b = threading.Thread(target=_racing_pack,
                         args=(pg_dsn, key, "kiosk-01", [raced, *others], results))
    b.start()
    time.sleep(0.5)
    assert not results, "B did not wait for A's uncommitted row"
    a.execute("COMMIT")
    b.join(20)
    assert [r.outcome for r in results] == [store.Outcome.DUPLICATE, store.Outcome.STORED,
                                            store.Outcome.STORED]
    assert served(a) == {("kiosk-01", m.record_id): m.sha256 for m in (raced, *others)}
    rows = a.execute("SELECT record_id, copies FROM records ORDER BY record_id").fetchall()
    assert [(r["record_id"], r["copies"]) for r in rows] == [("r-1", 2), ("r-2", 1),
                                                             ("r-3", 1)]
    a.close()


def test_a_squatter_racing_the_genuine_record_is_kept_aside(pg_dsn, key):
    """Two contents for one id stored at once by two receivers: the first commit is
    served, the other is held as a conflict (never a second served row)."""
    a = connect(pg_dsn, key_file=key)
    squat, genuine = record("r-1", code="FORGED"), record("r-1", code="GENUINE")
    a.execute("BEGIN IMMEDIATE")
    store.put_record(a, "kiosk-01", squat)
    results: list[store.RecordResult] = []
    b = threading.Thread(target=_racing_put, args=(pg_dsn, key, "kiosk-01", genuine, results))
    b.start()
    time.sleep(0.5)
    a.execute("COMMIT")
    b.join(20)
    assert results[0].status is wire.AckStatus.CONFLICT
    assert served(a) == {("kiosk-01", "r-1"): squat.sha256}
    assert [h["sha256"] for h in store.list_held(a)] == [genuine.sha256]
    assert [c["state"] for c in store.list_conflicts(a)] == ["open"]
    a.close()


def test_a_connection_lost_inside_a_batch_never_commits(db, pg_server):
    """The backend is killed mid-batch: COMMIT fails (the batch is not acked), a
    ROLLBACK clears it, and the next batch runs on a new connection."""
    conn, _ = db
    conn.execute("BEGIN IMMEDIATE")
    store.put_record(conn, "kiosk-01", record("r-1"))
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (conn.shard,))
    with pytest.raises(CentralStoreError):
        conn.execute("COMMIT")
    with pytest.raises(CentralStoreError, match="lost inside a transaction"):
        conn.execute("SELECT 1")
    assert conn.in_transaction
    conn.execute("ROLLBACK")
    assert not conn.in_transaction
    assert served(conn) == {}
    store.put_record(conn, "kiosk-01", record("r-2"))
    assert set(served(conn)) == {("kiosk-01", "r-2")}


def test_a_value_postgresql_refuses_is_about_the_message(db):
    """NUL cannot live in a PostgreSQL text column. In a body's short text it is
    refused by the wire check, as that record alone (red team 8: it was a dead letter
    on PostgreSQL only, with the rest of its pack). Any other value PostgreSQL refuses
    is a WireError subclass, so the receiver moves that message aside and the batch
    goes on."""
    conn, _ = db
    conn.execute("BEGIN IMMEDIATE")
    refused = store.put_record(conn, "kiosk-01", record("r-1", code="D-\u0000"))
    assert refused.outcome is store.Outcome.REJECTED and "U+0000" in refused.reason
    conn.execute("SAVEPOINT message")
    with pytest.raises(StoreDataError) as raised:
        conn.execute("SELECT length(?::text)", ("D-\u0000",))
    assert isinstance(raised.value, WireError)
    conn.execute("ROLLBACK TO message")
    conn.execute("RELEASE message")
    store.put_dead_letter(conn, "bhxh/devices/kiosk-01/records", "kiosk-01",
                          "bad \u0000 value", b"\x00" * 10)
    store.put_record(conn, "kiosk-01", record("r-2"))
    conn.execute("COMMIT")
    assert set(served(conn)) == {("kiosk-01", "r-2")}
    assert store.counters(conn)["dead_letters"] == 1
    assert store.counters(conn)["records_rejected"] == 1


def test_records_files_and_chunks_are_sealed_in_postgresql(db):
    conn, _ = db
    cccd = "001203009876"
    pdf = f"%PDF-1.7 {cccd} ".encode() * 50
    sha = hashlib.sha256(pdf).hexdigest()
    half = len(pdf) // 2
    store.put_chunk(conn, "kiosk-01", wire.Chunk("r-1", sha, 0, 2, len(pdf), pdf[:half]))
    raw = conn.execute("SELECT data FROM chunks").fetchone()[0]
    assert cccd.encode() not in raw
    store.put_chunk(conn, "kiosk-01", wire.Chunk("r-1", sha, 1, 2, len(pdf), pdf[half:]))
    msg = record("r-1", code=cccd, files=[pdf])
    assert store.put_record(conn, "kiosk-01", msg).ack
    body = conn.execute("SELECT body_json FROM records").fetchone()[0]
    data = conn.execute("SELECT data FROM files").fetchone()[0]
    assert cccd not in body.replace(cccd + ".", "") and b"%PDF" not in data
    assert store.get_file(conn, sha) == pdf
    assert store.list_records(conn)[0]["body_json"] == msg.body_json


def test_a_wrong_key_is_refused_before_anything_is_written(pg_dsn, key, tmp_path):
    conn = connect(pg_dsn, key_file=key)
    store.put_record(conn, "kiosk-01", record("r-1"))
    conn.close()
    other = tmp_path / "other.key"
    crypto.create_key(other)
    with pytest.raises(crypto.KeyProblem):
        connect(pg_dsn, key_file=other)


def test_receivers_starting_together_create_the_schema_once(pg_dsn, tmp_path):
    """Three receivers on a new database at once, default key path: one schema, one key."""
    from appliance.system import config as config_mod

    cfg = config_mod.with_overrides(config_mod.Config(), central={
        "database": str(tmp_path / "anchor" / "central.sqlite3"), "postgres_dsn": pg_dsn})
    (tmp_path / "anchor").mkdir()
    errors: list[BaseException] = []
    conns = []

    def start():
        try:
            conns.append(open_configured(cfg.central))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(conns) == 3
    assert {c.sealer.check_value for c in conns} == {conns[0].sealer.check_value}
    for c in conns:
        c.close()
