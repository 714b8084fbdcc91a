"""SQLite: the only state the appliance's processes share.

WAL lets the web, worker and sync processes read while one writes; synchronous=FULL
because an acknowledged record must survive a power cut, and NORMAL in WAL mode may
lose the last commits. Writers take the lock up front (BEGIN IMMEDIATE) so two
processes never deadlock upgrading a read lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.store.errors import StoreError
from appliance.store.migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 15000


def connect(path: str | Path, *, migrate: bool = True) -> sqlite3.Connection:
    """Open the database in autocommit mode; callers group writes with `transaction()`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _use_wal(conn)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        if migrate:
            apply_migrations(conn)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open database {path}: {e}") from e
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch a new database to WAL (the mode then persists in the file).

    The switch needs a moment of exclusive access and SQLite does not wait on the
    busy handler for it, so two processes creating the database at once retry here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; each step commits with its version number."""
    with transaction(conn):
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise StoreError(
                f"database schema version {current} is newer than this software "
                f"({len(MIGRATIONS)}); refusing to touch it"
            )
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in script.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
    return len(MIGRATIONS)


def now() -> float:
    return time.time()


def set_state(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Small device-wide facts (scanner state, last sync) that the web shows.

    The keys and their values are named in `store/state.py`; write through its
    functions there so writer and reader cannot drift apart.
    """
    conn.execute(
        "INSERT INTO device_state(key, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
        (key, value, now()),
    )


def get_state(conn: sqlite3.Connection, key: str) -> tuple[str, float] | None:
    row = conn.execute("SELECT value, updated_at FROM device_state WHERE key=?", (key,)).fetchone()
    return (row["value"], row["updated_at"]) if row else None
