"""Files sent whole before their record (a binary pack's, one-chunk files) are pending
until a stored record names them: charged to central.max_chunk_store_bytes, purged
after central.chunk_expiry_seconds, and never purged once a record names them.

Why: such files were stored for good, outside every limit, so anyone able to publish
on any device's topic could fill the central disk with files no record would name
(found by the red team, tests/central/test_redteam.py). The other side of it matters
as much: a purge must never take the file of a record the receiver has acknowledged,
also when two PostgreSQL receivers purge and store at the same moment.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from appliance.central import store
from appliance.central.errors import ChunkRefused
from appliance.sync import wire
from tests.central.test_chunked_files import _two_receivers
from tests.central.test_chunked_files import conn as conn  # fixture: SQLite and PostgreSQL
from tests.central.test_store import record
from tests.helpers import postgres as pg_helpers
from tests.helpers.sync_rig import NO_CHUNK_STATE

pg_server, pg_dsn = pg_helpers.pg_server, pg_helpers.pg_dsn  # fixtures

pytestmark = pytest.mark.timeout(120)

LATER = 10**6  # seconds: far past any expiry used here


def whole(data: bytes, record_id: str = "r-1") -> wire.Chunk:
    return wire.Chunk(record_id, hashlib.sha256(data).hexdigest(), 0, 1, len(data), data)


def purge(conn: store.CentralConnection) -> int:
    return store.purge_expired(conn, 60.0, now=time.time() + LATER)


def test_a_file_no_record_names_is_charged_and_purged(conn):
    data = os.urandom(3_000)
    store.put_chunk(conn, "ghost-77", whole(data))
    state = store.chunk_state(conn)
    assert state["pending_files"] == 1
    assert state["pending_bytes"] == len(data) + store.PENDING_FILE_CHARGE
    assert store.read_counters(conn)["chunk_bytes_held"] == state["pending_bytes"]
    assert store.purge_expired(conn, 60.0) == 0  # not yet expired
    assert purge(conn) == 1
    assert store.get_file(conn, whole(data).file_sha256) is None
    assert store.chunk_state(conn) == NO_CHUNK_STATE
    assert store.read_counters(conn)["chunk_bytes_held"] == 0
    assert store.read_counters(conn)["files_purged"] == 1


def test_files_named_by_stored_records_are_never_purged(conn):
    """Adopted by put_record (one record) and by put_records' fast path (a pack), and
    by a record held aside as a conflict: every kept record's file stays."""
    one, packed, conflicting = os.urandom(2_000), os.urandom(2_500), os.urandom(1_000)
    for data in (one, packed, conflicting):
        store.put_chunk(conn, "kiosk-01", whole(data))
    assert store.put_record(conn, "kiosk-01", record("r-1", files=[one])).ack
    assert store.put_records(conn, "kiosk-01", [record("r-2", files=[packed])])[0].ack
    assert store.put_record(conn, "kiosk-01", record("r-3", code="A")).ack
    held = store.put_record(conn, "kiosk-01", record("r-3", code="B", files=[conflicting]))
    assert held.status is wire.AckStatus.CONFLICT
    assert store.chunk_state(conn) == NO_CHUNK_STATE
    assert purge(conn) == 0
    for data in (one, packed, conflicting):
        assert store.get_file(conn, whole(data).file_sha256) == data
    assert store.read_counters(conn)["chunk_bytes_held"] == 0


def test_a_pending_file_sent_again_is_kept_from_its_last_sending(conn):
    data = os.urandom(500)
    store.put_chunk(conn, "kiosk-01", whole(data))
    first = conn.execute("SELECT since FROM pending_files").fetchone()[0]
    time.sleep(0.05)
    store.put_chunk(conn, "kiosk-01", whole(data))
    assert conn.execute("SELECT since FROM pending_files").fetchone()[0] > first
    assert store.chunk_state(conn)["pending_files"] == 1  # charged once
    assert store.read_counters(conn)["chunk_bytes_held"] == 500 + store.PENDING_FILE_CHARGE


def test_files_beyond_the_budget_are_refused_and_leave_nothing(conn):
    limits = store.Limits(max_chunk_store_bytes=3 * (1_000 + store.PENDING_FILE_CHARGE))
    kept = [os.urandom(1_000) for _ in range(3)]
    for data in kept:
        store.put_chunk(conn, "ghost-77", whole(data), limits)
    refused = os.urandom(1_000)
    with pytest.raises(ChunkRefused, match="chunk store full"):
        store.put_chunk(conn, "ghost-77", whole(refused), limits)
    assert store.get_file(conn, whole(refused).file_sha256) is None
    # A file held already is no new charge: sending it again is never refused.
    store.put_chunk(conn, "ghost-77", whole(kept[0]), limits)
    assert store.chunk_state(conn)["pending_files"] == 3
    # Tiny files are charged their rows: a budget in bytes bounds how many rows there are.
    tiny = store.Limits(max_chunk_store_bytes=10 * store.PENDING_FILE_CHARGE)
    store.purge_expired(conn, 60.0, now=time.time() + LATER)
    accepted = 0
    for n in range(50):
        try:
            store.put_chunk(conn, "ghost-77", whole(n.to_bytes(2, "big")), tiny)
            accepted += 1
        except ChunkRefused:
            pass
    assert 0 < accepted < 10


def test_a_purge_racing_a_record_that_names_the_file_keeps_the_file(pg_dsn, tmp_path: Path):
    """PostgreSQL, two receivers: one stores a record naming a pending file (its
    transaction still open) while the other purges that file as expired; the purge
    waits for the record's commit and then finds the file no longer pending."""
    storing, purging = _two_receivers(pg_dsn, tmp_path)
    try:
        data = os.urandom(4_000)
        store.put_chunk(storing, "kiosk-01", whole(data))
        storing.execute("BEGIN")
        assert store.put_record(storing, "kiosk-01", record("r-1", files=[data])).ack
        purged: list[int] = []
        thread = threading.Thread(target=lambda: purged.append(purge(purging)))
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive(), "the purge should wait for the storing transaction"
        storing.execute("COMMIT")
        thread.join(30)
        assert purged == [0]
        assert store.get_file(storing, whole(data).file_sha256) == data
        assert store.chunk_state(storing) == NO_CHUNK_STATE
    finally:
        storing.close()
        purging.close()


def test_a_record_whose_file_was_purged_after_its_look_is_never_stored_without_it(
        pg_dsn, tmp_path: Path):
    """PostgreSQL: a receiver has seen the pending file (its look, in an open
    transaction), another purges it and commits; adopting the file then reports it
    gone, so the record is taken the careful way (its file missing: the device sends it
    again) rather than stored, and acknowledged, without it."""
    storing, purging = _two_receivers(pg_dsn, tmp_path)
    try:
        data = os.urandom(4_000)
        sha = whole(data).file_sha256
        store.put_chunk(storing, "kiosk-01", whole(data))
        storing.execute("BEGIN")
        assert storing.execute("SELECT 1 FROM files WHERE sha256=?", (sha,)).fetchone()
        assert purge(purging) == 1
        assert store._adopt_files(storing, [sha]) is False  # noqa: SLF001 - the primitive
        storing.execute("ROLLBACK")
        result = store.put_records(storing, "kiosk-01", [record("r-1", files=[data])])
        assert result[0].outcome is store.Outcome.INCOMPLETE
        assert store.list_records(storing) == []
    finally:
        storing.close()
        purging.close()
