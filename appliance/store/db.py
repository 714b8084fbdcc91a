"""SQLite: the only state the appliance's processes share.

WAL lets the web, worker and sync processes read while one writes; synchronous=FULL
because an acknowledged record must survive a power cut, and NORMAL in WAL mode may
lose the last commits. Writers take the lock up front (BEGIN IMMEDIATE) so two
processes never deadlock upgrading a read lock.

Every connection carries the installation's `Sealer` (system/crypto.py): the columns
that hold personal data (a paper's fields, a page's OCR text, a signed record's body)
are sealed with AES-GCM on write and opened on read through `seal_text`/`open_text`,
bound to their table, column and row, so the database file holds none of it in clear.
`connect` checks the key against the check value kept in the database before anything
else happens, so a wrong or missing key stops a service at start (exit 2) instead of
mixing data sealed under two keys. secure_delete makes SQLite zero what is deleted or
overwritten, so an erased citizen's data does not linger in free pages.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from appliance.store.errors import StoreError
from appliance.store.migrations import MIGRATIONS
from appliance.system import crypto
from appliance.system.crypto import Sealer, Tampered
from appliance.system.sqlite import transaction, use_wal

BUSY_TIMEOUT_MS = 15000


class StoreConnection(crypto.KeyedConnection):
    """A connection that knows the key its personal columns are sealed with."""


def default_key_path(database: str | Path) -> Path:
    """Where the demo keeps its key: beside the database (paths.key_path's default)."""
    return Path(database).parent / crypto.KEY_FILE_NAME


def connect(path: str | Path, *, migrate: bool = True,
            key_file: str | Path | None = None) -> StoreConnection:
    """Open the database in autocommit mode; callers group writes with `transaction()`.

    `key_file` is paths.key_file: empty or None means the key beside the database,
    made here if the database holds no encrypted data yet; a named file must exist.
    Raises KeyProblem (a ConfigError: exit 2) for a missing or wrong key.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False, factory=StoreConnection)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        use_wal(conn, BUSY_TIMEOUT_MS / 1000)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA secure_delete=ON")
        if migrate:
            apply_migrations(conn)
        named = bool(key_file)
        conn.sealer = open_key(conn, Path(key_file) if key_file else default_key_path(path),
                               may_create=not named, where=f"database {path}")
        if migrate and seal_clear_values(conn):
            seal_clear_files(path.parent / "files", conn.sealer)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open database {path}: {e}") from e
    return conn


def open_key(conn: sqlite3.Connection, key_path: Path, *, may_create: bool,
             where: str) -> Sealer:
    """Load the key, make it only for a database that holds no sealed data yet, and
    check it against the value the database keeps; never overwrite either."""
    return crypto.attach_key(conn, key_path, may_create=may_create, where=where)


# The personal columns: (table, column, the row key their seal is bound to).
SEALED_COLUMNS = (("papers", "fields_json", "id"), ("pages", "ocr_json", "id"),
                  ("records", "body_json", "record_id"))


def seal_clear_values(conn: sqlite3.Connection) -> int:
    """Seal personal values a build without encryption wrote (an upgraded device), so
    the file holds none in clear afterwards (secure_delete zeroes the old pages).
    Idempotent and cheap when there is nothing to do; returns how many were sealed."""
    sealed = 0
    with transaction(conn):
        for table, column, key in SEALED_COLUMNS:
            rows = conn.execute(
                f"SELECT {key} AS k, {column} AS v FROM {table} WHERE {column} IS NOT NULL "
                f"AND {column} NOT LIKE '{crypto.TEXT_PREFIX}%' AND {column} != '{{}}'"
            ).fetchall()
            for r in rows:
                conn.execute(f"UPDATE {table} SET {column}=? WHERE {key}=?",
                             (seal_text(conn, r["v"], aad(table, column, r["k"])), r["k"]))
            sealed += len(rows)
    return sealed


def seal_clear_files(root: Path, sealer: Sealer | None) -> int:
    """Seal the files an unencrypted build left in the file store (same names)."""
    from appliance.store.files import FileStore  # files imports nothing of this module

    if sealer is None or not root.is_dir():
        return 0
    store = FileStore(root, sealer=sealer)
    sealed = 0
    for path in sorted(root.glob("*/*")):
        name = path.name
        if name.startswith(".") or len(name) < 64 or not path.is_file():
            continue
        data = path.read_bytes()
        if crypto.is_sealed(data):
            continue
        sha, suffix = name[:64], name[64:]
        if suffix in (".png", ".pdf") and hashlib.sha256(data).hexdigest() != sha:
            continue  # corrupt: left as it is for the read path to report
        store.put_derived(sha, suffix, data)  # replaced atomically (sizes differ)
        sealed += 1
    return sealed


def sealer_of(conn: sqlite3.Connection) -> Sealer:
    sealer = getattr(conn, "sealer", None)
    if sealer is None:
        raise StoreError("this connection has no encryption key; open it with store.db.connect")
    return sealer


def seal_text(conn: sqlite3.Connection, value: str, aad: str) -> str:
    """Seal a personal column's value; `aad` names table, column and row (see `aad`)."""
    return sealer_of(conn).seal_text(value, aad)


def open_text(conn: sqlite3.Connection, value: str, aad: str) -> str:
    """A sealed column's clear value; a value stored before sealing passes unchanged."""
    if not crypto.is_sealed_text(value):
        return value
    return open_text_utf8(conn, value, aad).decode("utf-8")


def open_text_utf8(conn: sqlite3.Connection, value: str, aad: str) -> bytes:
    """open_text's value as its UTF-8 bytes (see Sealer.open_text_utf8)."""
    if not crypto.is_sealed_text(value):
        return value.encode("utf-8")
    try:
        return sealer_of(conn).open_text_utf8(value, aad)
    except Tampered as e:
        raise StoreError(f"sealed value of {aad} does not open: {e}") from e


def aad(table: str, column: str, row: object) -> str:
    """What a sealed value is bound to: moved to another row or column, it fails to open."""
    return f"{table}.{column}:{row}"


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
