"""Files that came in chunks are kept as their sealed chunk rows (written once, not
opened, joined, sealed and written again): on SQLite and on PostgreSQL, the chunks are
never in clear, get_file/stream_file give back the exact bytes, a missing or moved
chunk is an error and never a shorter file, a stray transfer that expires cannot take a
stored file's chunks with it, and a database of the old layout (one sealed blob per
file) is migrated with its files still readable."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.central import store
from appliance.central.db import MIGRATIONS, PG_SCHEMA, connect
from appliance.central.errors import CentralStoreError
from appliance.sync import wire
from appliance.system import crypto
from tests.central.test_store import record
from tests.helpers import postgres as pg_helpers
from tests.helpers.sync_rig import NO_CHUNK_STATE

pg_server, pg_dsn = pg_helpers.pg_server, pg_helpers.pg_dsn  # fixtures

pytestmark = pytest.mark.timeout(120)

CCCD = b"001203009876"
CHUNK = 4000


@pytest.fixture(params=["sqlite", "postgresql"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[store.CentralConnection]:
    if request.param == "sqlite":
        c = connect(tmp_path / "central.sqlite3")
    else:
        key = tmp_path / "central.key"
        crypto.create_key(key)
        c = connect(request.getfixturevalue("pg_dsn"), key_file=key)
    yield c
    c.close()


def _pdf(size: int = 3 * CHUNK + 123) -> bytes:
    """A file with a citizen's number in every chunk, the rest random."""
    out = bytearray(os.urandom(size))
    for at in range(0, size - len(CCCD), 1000):
        out[at:at + len(CCCD)] = CCCD
    return b"%PDF" + bytes(out[4:])


def _send(conn: store.CentralConnection, pdf: bytes, record_id: str = "r-1",
          device: str = "kiosk-01") -> str:
    sha = hashlib.sha256(pdf).hexdigest()
    count = -(-len(pdf) // CHUNK)
    for i in range(count):
        store.put_chunk(conn, device, wire.Chunk(record_id, sha, i, count, len(pdf),
                                                 pdf[i * CHUNK:(i + 1) * CHUNK]))
    result = store.put_record(conn, device, record(record_id, device, files=[pdf]))
    assert result.ack, result
    return sha


def test_a_chunked_file_is_its_sealed_chunks_and_streams_back_exactly(conn):
    pdf = _pdf()
    sha = _send(conn, pdf)
    row = conn.execute("SELECT data, chunk_device, chunk_count FROM files").fetchone()
    assert bytes(row["data"]) == b"" and row["chunk_device"] == "kiosk-01"
    assert row["chunk_count"] == 4
    blobs = [bytes(r[0]) for r in conn.execute("SELECT data FROM chunks")]
    assert len(blobs) == 4 and all(crypto.is_sealed(b) for b in blobs)
    assert not any(CCCD in b or b"%PDF" in b for b in blobs), "a chunk in clear"
    assert store.get_file(conn, sha) == pdf
    parts = list(store.stream_file(conn, sha))
    assert len(parts) == 4 and b"".join(parts) == pdf
    # The transfer is over: nothing left to expire, and nothing counted as chunk store.
    assert store.chunk_state(conn) == NO_CHUNK_STATE
    assert store.counters(conn)["chunk_bytes_held"] == 0
    assert store.get_file(conn, "0" * 64) is None
    assert list(store.stream_file(conn, "0" * 64)) == []


def test_a_missing_or_moved_chunk_is_an_error_not_a_shorter_file(conn):
    pdf = _pdf()
    sha = _send(conn, pdf)
    last = conn.execute("SELECT data FROM chunks WHERE idx=3").fetchone()[0]
    conn.execute("DELETE FROM chunks WHERE idx=3")
    with pytest.raises(CentralStoreError, match="3 of 4 chunks"):
        store.get_file(conn, sha)
    # Put back under another index: its sealing names its place, so it does not open.
    conn.execute("UPDATE chunks SET data=? WHERE idx=2", (last,))
    with pytest.raises(CentralStoreError, match="does not open"):
        store.get_file(conn, sha)


def test_a_stray_transfer_that_expires_keeps_a_stored_files_chunks(conn):
    """PostgreSQL: a receiver that had not yet seen the file committed can open a
    transfer row under the stored file's key; when it expires, the file must stay."""
    pdf = _pdf()
    sha = _send(conn, pdf)
    conn.execute("INSERT INTO transfers(device_id, file_sha256, count, size, record_id, "
                 "have, bytes, started_at, last_at) VALUES (?, ?, 4, ?, 'r-1', 1, ?, 0, 0)",
                 ("kiosk-01", sha, len(pdf), CHUNK))
    assert store.purge_expired(conn, 60.0) == 1
    assert store.get_file(conn, sha) == pdf


def test_a_file_whose_chunks_do_not_match_is_rejected_and_dropped(conn):
    pdf = _pdf()
    sha = hashlib.sha256(pdf).hexdigest()
    wrong = bytearray(pdf)
    wrong[CHUNK + 5] ^= 1
    for i in range(4):
        store.put_chunk(conn, "kiosk-01", wire.Chunk("r-1", sha, i, 4, len(pdf),
                                                     bytes(wrong[i * CHUNK:(i + 1) * CHUNK])))
    result = store.put_record(conn, "kiosk-01", record("r-1", files=[pdf]))
    assert result.outcome is store.Outcome.REJECTED and "sha256" in result.reason
    assert conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 0
    # The genuine bytes later: stored, and served exactly.
    assert _send(conn, pdf, "r-1") == sha
    assert store.get_file(conn, sha) == pdf


def _old_file_row(sealer: crypto.Sealer, data: bytes) -> tuple[str, int, bytes, float]:
    """A file as the old layout stored every file: one sealed blob in files.data."""
    sha = hashlib.sha256(data).hexdigest()
    return sha, len(data), sealer.seal(data, f"files:{sha}".encode()), time.time()


def test_a_sqlite_database_of_the_old_layout_is_migrated(tmp_path: Path):
    path = tmp_path / "central.sqlite3"
    crypto.create_key(f"{path}.key")
    before = _pdf(10_000)
    row = _old_file_row(crypto.load_sealer(f"{path}.key"), before)
    old = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:2]:
        for statement in script.split(";\n"):
            if statement.strip():
                old.execute(statement)
    old.execute("PRAGMA user_version=2")
    old.execute("INSERT INTO files(sha256, size, data, stored_at) VALUES (?, ?, ?, ?)", row)
    old.close()
    conn = connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert store.get_file(conn, row[0]) == before
        assert b"".join(store.stream_file(conn, row[0])) == before
        new = _pdf()
        new_sha = _send(conn, new, "r-2")
        assert store.get_file(conn, new_sha) == new
        assert conn.execute("SELECT chunk_count FROM files WHERE sha256=?",
                            (row[0],)).fetchone()[0] is None
    finally:
        conn.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("central.sqlite3*"))
    assert CCCD not in raw and b"%PDF" not in raw


def test_a_postgresql_database_of_the_old_layout_is_migrated(pg_dsn, tmp_path: Path):
    import psycopg

    key = tmp_path / "central.key"
    crypto.create_key(key)
    before = _pdf(10_000)
    row = _old_file_row(crypto.load_sealer(key), before)
    with psycopg.connect(pg_dsn, autocommit=True) as old:
        old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in PG_SCHEMA[0].split(";\n"):
            if statement.strip():
                old.execute(statement)
        old.execute("INSERT INTO schema_version(version) VALUES (1)")
        old.execute("INSERT INTO files(sha256, size, data, stored_at) "
                    "VALUES (%s, %s, %s, %s)", row)
    conn = connect(pg_dsn, key_file=key)
    try:
        versions = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        assert versions == len(PG_SCHEMA)
        assert store.get_file(conn, row[0]) == before
        new = _pdf()
        new_sha = _send(conn, new, "r-2")
        assert store.get_file(conn, new_sha) == new
        assert conn.execute("SELECT chunk_count FROM files WHERE sha256=?",
                            (row[0],)).fetchone()[0] is None
        assert conn.execute("SELECT chunk_count FROM files WHERE sha256=?",
                            (new_sha,)).fetchone()[0] == 4
    finally:
        conn.close()


def _two_receivers(pg_dsn: str, tmp_path: Path
                   ) -> tuple[store.CentralConnection, store.CentralConnection]:
    """Two connections to one PostgreSQL database with one key: two receivers."""
    key = tmp_path / "central.key"
    crypto.create_key(key)
    return connect(pg_dsn, key_file=key), connect(pg_dsn, key_file=key)


def _upload_without_record(conn: store.CentralConnection) -> tuple[bytes, str]:
    """All four chunks of a file of record r-1, its record message not yet sent."""
    pdf = _pdf()
    sha = hashlib.sha256(pdf).hexdigest()
    for i in range(4):
        store.put_chunk(conn, "kiosk-01", wire.Chunk(
            "r-1", sha, i, 4, len(pdf), pdf[i * CHUNK:(i + 1) * CHUNK]))
    return pdf, sha


def test_a_purge_racing_the_completion_keeps_the_stored_files_chunks(pg_dsn, tmp_path: Path):
    """PostgreSQL, two receivers: one completes a file (its transaction still open)
    while the other purges the same transfer as expired; the purge waits for the
    completion's commit and then keeps the chunks the stored file is made of."""
    completing, purging = _two_receivers(pg_dsn, tmp_path)
    try:
        pdf, sha = _upload_without_record(completing)
        completing.execute("BEGIN")
        assert store.put_record(completing, "kiosk-01", record("r-1", files=[pdf])).ack
        purged: list[int] = []
        thread = threading.Thread(target=lambda: purged.append(
            store.purge_expired(purging, 60.0, now=time.time() + 10**6)))
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive(), "the purge should wait for the completing transaction"
        completing.execute("COMMIT")
        thread.join(30)
        assert purged == [1]  # it had seen the transfer before the commit
        assert store.get_file(completing, sha) == pdf
        assert store.chunk_state(completing) == NO_CHUNK_STATE
    finally:
        completing.close()
        purging.close()


def test_a_completion_racing_a_purge_never_stores_a_file_without_its_chunks(
        pg_dsn, tmp_path: Path):
    """PostgreSQL, two receivers, the other order: the purge has deleted the transfer
    and its chunks (not yet committed) when a record that names the file comes to the
    other receiver. The completion takes the transfer first, so it waits for the purge
    and then finds the file missing: no ack, no files row naming deleted chunks."""
    completing, purging = _two_receivers(pg_dsn, tmp_path)
    try:
        pdf, sha = _upload_without_record(purging)
        purging.execute("BEGIN")
        assert store.purge_expired(purging, 60.0, now=time.time() + 10**6) == 1
        results: list[store.RecordResult] = []
        thread = threading.Thread(target=lambda: results.append(
            store.put_record(completing, "kiosk-01", record("r-1", files=[pdf]))))
        thread.start()
        time.sleep(1.0)
        purging.execute("COMMIT")
        thread.join(30)
        assert [r.outcome for r in results] == [store.Outcome.INCOMPLETE]
        assert completing.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0
        assert store.get_file(completing, sha) is None
    finally:
        completing.close()
        purging.close()
