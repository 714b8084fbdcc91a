"""The central receiver's storage: one interface, two engines (SQLite, PostgreSQL).

Why not reuse the device's ``appliance.store.db``: the central office shares only the
wire format with the appliance. Its schema evolves on its own, so a change to the
device's migrations must never touch it.

SQLite (the default, central.database) suits one office and the tests; PostgreSQL
(central.postgres_dsn, psycopg 3) lets several receivers on several machines share one
database behind an MQTT shared subscription. The store (central/store.py) and the
receiver speak to both through the same small connection interface:

- ``execute(sql, params)`` with ``?`` placeholders and SQL both engines understand
  (``ON CONFLICT ... DO NOTHING``, ``RETURNING``); rows readable by name and index;
- ``BEGIN IMMEDIATE`` / ``SAVEPOINT`` / ``ROLLBACK TO`` / ``RELEASE`` / ``COMMIT``
  issued by the caller (group commit in the receiver), ``in_transaction``;
- ``durable(False)`` for a transaction that promises nothing (chunks): SQLite's
  synchronous=NORMAL, PostgreSQL's synchronous_commit=off; both still crash-safe;
- counters (``add_to_counter``/``counter``/``all_counters``): one row per name in
  SQLite, one row per name and backend in PostgreSQL, summed when read, so that
  receivers never queue behind each other's open batch on a hot counter row;
- ``sealer``: the AES-GCM key that seals record bodies, files and chunks at rest
  (system/crypto.py), checked at open against the database's key_check row, so a wrong
  or missing key stops the receiver at start with exit 2 and nothing is written.

Exactly-once under concurrency: SQLite serialises writers (BEGIN IMMEDIATE takes the
write lock up front, so two receivers on one file never deadlock upgrading); in
PostgreSQL the uniqueness of (device, record id, sha256) and of the one served content
per (device, record id) are enforced by indexes, inserts say ON CONFLICT DO NOTHING and
the store looks again when a concurrent receiver got there first.

Errors: a PostgreSQL error that is about a value of the message (DataError,
IntegrityError) becomes StoreDataError, which the receiver moves aside like any bad
message; anything else (connection lost, server down, deadlock) becomes
CentralStoreError, the "disk" path: the batch rolls back, no PUBACK, redelivered later.
A connection lost inside a transaction never lets a later COMMIT succeed on a fresh one.

WAL for SQLite so that status readers never block the receiver; synchronous=FULL by
default because an ack is a promise that the record is on disk.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from appliance.central.errors import CentralStoreError, StoreDataError
from appliance.system import crypto
from appliance.system.sqlite import transaction, use_wal

__all__ = ["MIGRATIONS", "PG_SCHEMA", "CentralConnection", "PostgresConnection",
           "SqliteConnection", "connect", "connect_postgres", "is_dsn", "open_configured",
           "reading", "transaction"]

BUSY_TIMEOUT_MS = 15000
PG_CONNECT_TIMEOUT_S = 10
# Any constant: the advisory lock that lets one of several receivers starting together
# create the PostgreSQL schema while the others wait.
PG_SCHEMA_LOCK = 0x61707063  # "appc"


# Pages of a new central SQLite database. SQLite writes each dirty page to the WAL as
# one frame and again at the checkpoint: with the default 4 KiB, a 1 MB scan was about
# 500 frames and a group commit of small records rewrote many small index pages. Measured
# on one disk (insert + group commit): scans 3.8 -> 1.4 ms CPU per MB, small records
# 19 -> 8 µs each; 16 KiB and 64 KiB were in between on one or the other.
PAGE_SIZE = 32768
# The WAL is checkpointed into the database once it holds this much, and its file cut
# back to it. SQLite counts 1000 pages by default: 32 MB of 32 KiB pages, all of it the
# WAL's alone until then (every version of every page written), so that a disk that
# filled and was given a little room back saw the WAL take it and stayed full.
WAL_BYTES = 1024 * 1024


class CentralConnection(Protocol):
    """What the store and the receiver use of a connection, whichever the engine."""

    engine: str
    insertion_order: str
    sealer: crypto.Sealer | None

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def durable(self, on: bool) -> None: ...

    def add_to_counter(self, name: str, n: int) -> None: ...

    def counter(self, name: str) -> int: ...

    def all_counters(self) -> dict[str, int]: ...

    def close(self) -> None: ...


# --- SQLite -------------------------------------------------------------------------

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
    # 3: a file that came in chunks is kept as those sealed chunk rows (chunk_device,
    # chunk_count name them; data is empty) instead of being opened, joined, sealed and
    # written again: each byte of a scan is written once. Files already held keep their
    # one sealed blob in data (chunk_count NULL), and files sent in one chunk still go
    # there.
    """
ALTER TABLE files ADD COLUMN chunk_device TEXT;
ALTER TABLE files ADD COLUMN chunk_count INTEGER
""",
    # 4: a file that came whole in one message before any record named it is pending
    # (the device it came from, since when, what it is charged) until a stored record
    # names it: counted against central.max_chunk_store_bytes and purged after
    # chunk_expiry_seconds like chunk state. A table of its own, so that adopting a
    # file does not rewrite the file's row. Files already held are named by records.
    """
CREATE TABLE pending_files (
    sha256 TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    since REAL NOT NULL,
    charge INTEGER NOT NULL
);
CREATE INDEX pending_files_since ON pending_files(since)
""",
    # 5: an operator's decision on a conflict (`appliance central --decide`): the
    # content chosen, by whom and when. Once decided, claims change nothing. And each
    # dead letter's delivery (a digest of the receiver, the message's packet id and its
    # bytes), so that the broker's redelivery of one already set aside (DUP: a receiver
    # or broker restart between the commit and the PUBACK) is not counted twice.
    """
ALTER TABLE conflicts ADD COLUMN decided_sha256 TEXT;
ALTER TABLE conflicts ADD COLUMN decided_by TEXT;
ALTER TABLE conflicts ADD COLUMN decided_at REAL;
ALTER TABLE dead_letters ADD COLUMN delivery TEXT;
CREATE INDEX dead_letters_delivery ON dead_letters(delivery)
""",
    # 6: the keys that signed this database's acks (key id, public key, first and last
    # seen), so that a receiver never makes a new key for a database whose acks devices
    # already took, and an operator sees which keys are in use while changing keys.
    """
CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    first_at REAL NOT NULL,
    last_at REAL NOT NULL
)
""",
]


class SqliteConnection(crypto.KeyedConnection):
    """The default engine: one file, writers serialised by BEGIN IMMEDIATE."""

    engine = "sqlite"
    insertion_order = "rowid"
    # Read as an immutable file, without locks (open_for_reading's last resort).
    unlocked = False

    def durable(self, on: bool) -> None:
        self.execute(f"PRAGMA synchronous={'FULL' if on else 'NORMAL'}")

    def add_to_counter(self, name: str, n: int) -> None:
        self.execute("INSERT INTO counters(name, value) VALUES (?, ?) "
                     "ON CONFLICT(name) DO UPDATE SET value=value+excluded.value", (name, n))

    def counter(self, name: str) -> int:
        row = self.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def all_counters(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.execute("SELECT name, value FROM counters")}


def is_dsn(target: str | Path) -> bool:
    """A PostgreSQL URL (postgresql://...) rather than a SQLite path."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def connect(target: str | Path, *, migrate: bool = True,
            key_file: str | Path | None = None) -> CentralConnection:
    """Open (creating if needed) the central database in autocommit mode, migrated.

    `target` is a SQLite path, or a postgresql:// URL (then `key_file` is required:
    there is no database file to put a default key beside).
    `key_file` is central.key_file: empty means <database>.key, made on first start
    when the database holds nothing sealed yet; a named file must exist.
    """
    if is_dsn(target):
        if not key_file:
            raise CentralStoreError("a PostgreSQL central database needs a key file")
        return connect_postgres(str(target), Path(key_file), may_create=False)
    return connect_sqlite(target, migrate=migrate, key_file=key_file)


def open_configured(central: Any) -> CentralConnection:
    """The database a CentralConfig names: PostgreSQL when postgres_dsn is set, else SQLite.

    Keys default to files beside central.database in both cases (made on first start
    when the database holds nothing sealed yet); several receivers must share them.
    """
    if central.postgres_dsn:
        return connect_postgres(central.postgres_dsn, central.key_path,
                                may_create=not central.key_file)
    return connect_sqlite(central.database, key_file=central.key_file)


def _read_only(uri: str) -> tuple[SqliteConnection, int]:
    """A SQLite connection on `uri` and its schema version (the first read)."""
    conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                           timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                           factory=SqliteConnection)
    try:
        conn.row_factory = sqlite3.Row
        return conn, int(conn.execute("PRAGMA user_version").fetchone()[0])
    except BaseException:
        conn.close()
        raise


def open_for_reading(central: Any) -> CentralConnection:
    """The database a CentralConfig names, for looking only (`appliance central
    --report`): no migration, no schema, no key, nothing written. Opened the receiver's
    way, a look moved an older receiver's schema on (that receiver then refused to
    start), and a PostgreSQL hot standby, where the README sends reports, refused it
    (both found by the fifth review). Nothing sealed is read here. A database that
    does not exist, or whose schema is older than the reader's queries, is an error.
    """
    if central.postgres_dsn:
        pg = PostgresConnection(central.postgres_dsn)
        try:
            row = pg.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            version = (int(pg.execute("SELECT MAX(version) FROM schema_version")
                           .fetchone()[0] or 0) if row[0] else 0)
        except BaseException:
            pg.close()
            raise
        if version < 1:
            pg.close()
            raise CentralStoreError("the central PostgreSQL database has no receiver schema "
                                    "yet: has `appliance central` run with it?")
        return pg
    path = Path(central.database)
    if not path.exists():
        raise CentralStoreError(f"no central database at {path}: has `appliance central` "
                                "run with this configuration?")
    # mode=ro reads in a snapshot under the usual locks, beside a running receiver or
    # one that starts meanwhile. It first makes the -shm when a receiver stopped cleanly
    # took it away, which an operator without write access to the folder, or a full
    # disk, refuses (sixth review). Only then, and only without a write-ahead log
    # (everything is in the file), is the file read as it is (immutable): no lock, so a
    # receiver that starts and checkpoints during that read can make it wrong (seventh
    # review); the report says so.
    wal = Path(f"{path}-wal").exists()
    try:
        conn, version = _read_only(f"file:{quote(str(path))}?mode=ro")
    except sqlite3.Error as e:
        if wal:
            raise CentralStoreError(
                f"cannot read central database {path}: {e}: its write-ahead log needs a "
                "-shm file this user cannot make; read it as the receiver's user, or "
                "once the receiver is stopped cleanly") from e
        try:
            conn, version = _read_only(f"file:{quote(str(path))}?mode=ro&immutable=1")
        except sqlite3.Error as e2:
            raise CentralStoreError(f"cannot read central database {path}: {e2}") from e2
        conn.unlocked = True
    if version < 2:
        conn.close()
        raise CentralStoreError(f"central database {path} has schema {version}: start "
                                "`appliance central` once to bring it up to date")
    return conn


def connect_sqlite(path: str | Path, *, migrate: bool = True,
                   key_file: str | Path | None = None) -> SqliteConnection:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False, factory=SqliteConnection)
    except (OSError, sqlite3.Error) as e:
        raise CentralStoreError(f"cannot open central database {path}: {e}") from e
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Only a database without tables takes it: an older file keeps its pages.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        use_wal(conn, BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BYTES // PAGE_SIZE}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_BYTES}")
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


# --- PostgreSQL ---------------------------------------------------------------------

# The same tables and semantics as the SQLite schema at its newest version (what
# MIGRATIONS builds), in PostgreSQL's types. A later change appends a statement list
# here and bumps schema_version, as MIGRATIONS does for SQLite.
PG_SCHEMA: list[str] = [
    """
CREATE TABLE files (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL,
    stored_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE records (
    device_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body_json TEXT NOT NULL,
    dossier_code TEXT NOT NULL DEFAULT '',
    result_codes_json TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL CHECK (status IN ('served', 'held')),
    claimed INTEGER NOT NULL DEFAULT 0,
    received_at DOUBLE PRECISION NOT NULL,
    copies BIGINT NOT NULL DEFAULT 1,
    last_copy_at DOUBLE PRECISION NOT NULL,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (device_id, record_id, sha256)
);
CREATE UNIQUE INDEX records_served ON records(device_id, record_id) WHERE status='served';
CREATE TABLE rejections (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    reason TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE TABLE conflicts (
    device_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'resolved', 'contested')),
    opened_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, record_id)
);
CREATE TABLE transfers (
    device_id TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    count BIGINT NOT NULL,
    size BIGINT NOT NULL,
    record_id TEXT NOT NULL,
    have BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    started_at DOUBLE PRECISION NOT NULL,
    last_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, file_sha256, count)
);
CREATE INDEX transfers_last ON transfers(last_at);
CREATE TABLE chunks (
    device_id TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    count BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (device_id, file_sha256, count, idx)
);
CREATE TABLE dead_letters (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic TEXT NOT NULL,
    device_id TEXT,
    reason TEXT NOT NULL,
    size BIGINT NOT NULL,
    head BYTEA NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE TABLE counters (
    name TEXT NOT NULL,
    shard BIGINT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (name, shard)
);
CREATE TABLE key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    check_value TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
)
""",
    # 2: as SQLite's migration 3, files kept as their sealed chunks.
    """
ALTER TABLE files ADD COLUMN chunk_device TEXT;
ALTER TABLE files ADD COLUMN chunk_count BIGINT
""",
    # 3: as SQLite's migration 4, files no stored record names yet are pending.
    """
CREATE TABLE pending_files (
    sha256 TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    since DOUBLE PRECISION NOT NULL,
    charge BIGINT NOT NULL
);
CREATE INDEX pending_files_since ON pending_files(since)
""",
    # 4: as SQLite's migration 5, an operator's decision on a conflict and each dead
    # letter's delivery.
    """
ALTER TABLE conflicts ADD COLUMN decided_sha256 TEXT;
ALTER TABLE conflicts ADD COLUMN decided_by TEXT;
ALTER TABLE conflicts ADD COLUMN decided_at DOUBLE PRECISION;
ALTER TABLE dead_letters ADD COLUMN delivery TEXT;
CREATE INDEX dead_letters_delivery ON dead_letters(delivery)
""",
    # 5: as SQLite's migration 6, the keys that signed acks.
    """
CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    first_at DOUBLE PRECISION NOT NULL,
    last_at DOUBLE PRECISION NOT NULL
)
""",
]


class _Row(tuple):
    """A row readable by index and by column name, and by dict(), like sqlite3.Row."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> _Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            key = self._names[key]
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}
    return lambda values: _Row(values, names)


@functools.lru_cache(maxsize=1024)
def _to_pg(sql: str) -> str:
    """The store's SQL in PostgreSQL's spelling: %s placeholders, plain BEGIN."""
    if sql.strip().upper() == "BEGIN IMMEDIATE":
        return "BEGIN"
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection:
    """A psycopg 3 connection in autocommit mode behind the store's interface.

    Autocommit so that the caller's BEGIN/COMMIT are the transactions, as with SQLite
    (isolation_level=None). A lost connection is reopened by the next statement,
    except inside a transaction: that one is gone, and only a ROLLBACK clears it.
    """

    engine = "postgresql"
    insertion_order = "seq"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.sealer: crypto.Sealer | None = None
        self._tx_open = False
        self._pg: Any = None
        self.shard = 0
        self._open()

    def _open(self) -> None:
        import psycopg

        try:
            self._pg = psycopg.connect(self.dsn, autocommit=True,
                                       connect_timeout=PG_CONNECT_TIMEOUT_S,
                                       row_factory=_row_factory)
            self.shard = int(self._pg.info.backend_pid)
        except psycopg.Error as e:
            raise CentralStoreError(f"cannot connect to the central PostgreSQL: {e}") from e

    @property
    def broken(self) -> bool:
        return self._pg is None or bool(self._pg.closed)

    @property
    def in_transaction(self) -> bool:
        if self.broken:
            return self._tx_open
        from psycopg.pq import TransactionStatus

        return self._pg.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        import psycopg

        verb = sql.lstrip()[:8].upper()
        if self.broken:
            if verb.startswith("ROLLBACK") and not verb.startswith("ROLLBACK TO"):
                self._tx_open = False
                return None
            if self._tx_open:
                raise CentralStoreError("the connection to the central PostgreSQL was lost "
                                        "inside a transaction; it was rolled back")
            self._open()
        try:
            cur = self._pg.execute(_to_pg(sql), tuple(params) if params else None)
        except (psycopg.DataError, psycopg.IntegrityError) as e:
            raise StoreDataError(f"the central database refused a value: {e}") from e
        except psycopg.Error as e:
            raise CentralStoreError(f"central PostgreSQL: {e}") from e
        if verb.startswith("BEGIN"):
            self._tx_open = True
        elif verb.startswith(("COMMIT", "ROLLBACK", "END")) and not verb.startswith(
                "ROLLBACK T"):
            self._tx_open = False
        return cur

    def durable(self, on: bool) -> None:
        # off: the commit returns before its WAL is flushed; a crash of the server may
        # lose the last transactions but never corrupts. Fine for chunks, never for records.
        self.execute(f"SET synchronous_commit TO {'on' if on else 'off'}")

    def add_to_counter(self, name: str, n: int) -> None:
        self.execute("INSERT INTO counters(name, shard, value) VALUES (?, ?, ?) "
                     "ON CONFLICT(name, shard) DO UPDATE SET value=counters.value+excluded.value",
                     (name, self.shard, n))

    def counter(self, name: str) -> int:
        row = self.execute("SELECT COALESCE(SUM(value), 0) FROM counters WHERE name=?",
                           (name,)).fetchone()
        return int(row[0])

    def all_counters(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.execute(
            "SELECT name, SUM(value) FROM counters GROUP BY name")}

    def close(self) -> None:
        if self._pg is not None and not self._pg.closed:
            self._pg.close()


def connect_postgres(dsn: str, key_file: Path, *, may_create: bool) -> PostgresConnection:
    """Connect, create the schema if this is a new database, and attach the sealing key."""
    conn = PostgresConnection(dsn)
    try:
        _apply_pg_schema(conn)
        conn.sealer = _attach_pg_key(conn, Path(key_file), may_create=may_create)
    except BaseException:
        conn.close()
        raise
    return conn


def _apply_pg_schema(conn: PostgresConnection) -> None:
    """Create or upgrade the schema under an advisory lock (receivers start together)."""
    with transaction(conn):
        conn.execute("SELECT pg_advisory_xact_lock(?)", (PG_SCHEMA_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = int(row[0] or 0)
        if current > len(PG_SCHEMA):
            raise CentralStoreError(f"central PostgreSQL has schema {current}, newer than "
                                    f"this software ({len(PG_SCHEMA)})")
        for version, script in enumerate(PG_SCHEMA[current:], start=current + 1):
            for statement in script.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version(version) VALUES (?)", (version,))


def _attach_pg_key(conn: PostgresConnection, key_file: Path, *,
                   may_create: bool) -> crypto.Sealer:
    """crypto.attach_key for PostgreSQL: the same rules (a key is made only where the
    database holds no check value yet; a key that does not match is refused)."""
    where = "the central PostgreSQL database"
    row = conn.execute("SELECT check_value FROM key_check WHERE id=1").fetchone()
    stored = str(row[0]) if row else None
    try:
        try:
            sealer = crypto.load_sealer(key_file)
        except crypto.KeyProblem:
            if stored is not None or not may_create:
                raise
            crypto.create_key(key_file)
            sealer = crypto.load_sealer(key_file)
    except crypto.KeyProblem as e:
        hint = (f"; {where} holds data sealed with a key (check value {stored[:12]}): "
                "restore that key file" if stored is not None
                else "; create it with `appliance keys init`")
        raise crypto.KeyProblem(f"{e}{hint}. Nothing was changed.") from e
    if stored is None:
        conn.execute("INSERT INTO key_check(id, check_value, created_at) VALUES (1, ?, ?) "
                     "ON CONFLICT DO NOTHING", (sealer.check_value, time.time()))
        stored = str(conn.execute("SELECT check_value FROM key_check WHERE id=1")
                     .fetchone()[0])
    crypto.check(sealer, stored, where)
    return sealer


@contextmanager
def reading(target: str | Path | CentralConnection) -> Iterator[CentralConnection]:
    """An open connection as is, or a database opened (and closed) for one read."""
    if isinstance(target, (SqliteConnection, PostgresConnection)):
        yield target
        return
    conn = connect(target)
    try:
        yield conn
    finally:
        conn.close()

