"""The central receiver's own SQLite connection and schema versions.

Why not reuse the device's ``appliance.store.db``: the central office shares only the
wire format with the appliance. Its schema evolves on its own (and will move to
PostgreSQL), so a change to the device's migrations must never touch it.

WAL so that status readers never block the receiver; synchronous=FULL by default
because an ack is a promise that the record is on disk (chunk writes lower it to
NORMAL for their own transaction: a chunk promises nothing). BEGIN IMMEDIATE takes
the write lock up front, so two receivers on one file never deadlock upgrading.

What the receiver stores of a citizen (record bodies, files, chunks) is sealed with
its own AES-GCM key (central.key_file; system/crypto.py, shared with the device, as
central may import system but not the device's store): the connection carries it,
checked at open against the database's key_check row, so a wrong or missing key
stops the receiver at start with exit 2 and nothing is written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from appliance.central.errors import CentralStoreError
from appliance.system import crypto
from appliance.system.sqlite import transaction, use_wal

BUSY_TIMEOUT_MS = 15000

MIGRATIONS: list[str] = [
    # 1: the first reference receiver (records keyed by record_id alone)
    """
CREATE TABLE IF NOT EXISTS chunks (
    file_sha256 TEXT NOT NULL,
    count INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    size INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    data BLOB NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (file_sha256, count, idx)
);
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    stored_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body_json TEXT NOT NULL,
    dossier_code TEXT NOT NULL DEFAULT '',
    result_codes_json TEXT NOT NULL DEFAULT '[]',
    received_at REAL NOT NULL,
    copies INTEGER NOT NULL DEFAULT 1,
    last_copy_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
)
""",
    # 2: record ids live in their device's namespace and every distinct content is kept
    # (device, record_id, sha256); exactly one per (device, record_id) is served.
    # Chunks per device with a transfer row that carries limits and expiry; dead
    # letters and counters for what could not be processed.
    """
ALTER TABLE records RENAME TO records_v1;
CREATE TABLE records (
    device_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body_json TEXT NOT NULL,
    dossier_code TEXT NOT NULL DEFAULT '',
    result_codes_json TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL CHECK (status IN ('served', 'held')),
    claimed INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    copies INTEGER NOT NULL DEFAULT 1,
    last_copy_at REAL NOT NULL,
    PRIMARY KEY (device_id, record_id, sha256)
);
CREATE UNIQUE INDEX records_served ON records(device_id, record_id) WHERE status='served';
INSERT INTO records(device_id, record_id, sha256, body_json, dossier_code, result_codes_json,
                    status, received_at, copies, last_copy_at)
    SELECT device_id, record_id, sha256, body_json, dossier_code, result_codes_json,
           'served', received_at, copies, last_copy_at FROM records_v1;
DROP TABLE records_v1;
CREATE TABLE conflicts (
    device_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'resolved', 'contested')),
    opened_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (device_id, record_id)
);
DROP TABLE chunks;
CREATE TABLE transfers (
    device_id TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    count INTEGER NOT NULL,
    size INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    have INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    last_at REAL NOT NULL,
    PRIMARY KEY (device_id, file_sha256, count)
);
CREATE INDEX transfers_last ON transfers(last_at);
CREATE TABLE chunks (
    device_id TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    count INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (device_id, file_sha256, count, idx)
);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    device_id TEXT,
    reason TEXT NOT NULL,
    size INTEGER NOT NULL,
    head BLOB NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
)
""",
]


def connect(path: str | Path, *, migrate: bool = True,
            key_file: str | Path | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the central database in autocommit mode, migrated.

    `key_file` is central.key_file: empty means <database>.key, made on first start
    when the database holds nothing sealed yet; a named file must exist.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False, factory=crypto.KeyedConnection)
    except (OSError, sqlite3.Error) as e:
        raise CentralStoreError(f"cannot open central database {path}: {e}") from e
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        use_wal(conn, BUSY_TIMEOUT_MS / 1000)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        if migrate:
            apply_migrations(conn, path)
        conn.sealer = crypto.attach_key(
            conn, Path(key_file) if key_file else Path(f"{path}.key"),
            may_create=not key_file, where=f"central database {path}", create_table=True)
    except crypto.KeyProblem:
        conn.close()
        raise
    except (sqlite3.Error, CentralStoreError) as e:
        conn.close()
        raise CentralStoreError(f"cannot open central database {path}: {e}") from e
    return conn


def apply_migrations(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to the newest version in one transaction; refuse a newer file.

    A current file is recognised with a plain read first, so that status readers and
    tests opening the database never take the write lock from a running receiver.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS):
        return
    with transaction(conn):
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise CentralStoreError(f"central database {path} has schema {current}, newer "
                                    f"than this software ({len(MIGRATIONS)})")
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in script.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
