"""The reference receiver's own SQLite database.

Files are kept as BLOBs next to their records so that a record and its PDFs commit
in one transaction: the ack goes out only after that commit, so an acknowledged
record is on disk whatever crashes next. Chunks are scratch space until a record
message completes them; they are keyed by (file, chunk count, index) so that chunks
cut with a different chunk size on another attempt never mix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from appliance.store import db
from appliance.store.db import transaction
from appliance.store.errors import StoreError
from appliance.sync import wire
from appliance.sync.errors import WireError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA = """
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
"""


class Outcome(StrEnum):
    STORED = "stored"          # new, committed: ack
    DUPLICATE = "duplicate"    # already stored with the same sha256: ack again
    INCOMPLETE = "incomplete"  # chunks missing: no ack, the device re-sends after its timeout
    REJECTED = "rejected"      # content does not match its hashes: no ack, logged


@dataclass(frozen=True)
class RecordResult:
    outcome: Outcome
    reason: str = ""

    @property
    def ack(self) -> bool:
        return self.outcome in (Outcome.STORED, Outcome.DUPLICATE)


def connect(path: str | Path) -> sqlite3.Connection:
    """WAL and synchronous=FULL for the same reason as on the device: an ack is a promise."""
    path = Path(path)
    conn = db.connect(path, migrate=False)  # the central office has its own schema
    try:
        with transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"central database {path} has newer schema {version}")
            for statement in SCHEMA.split(";\n"):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except (sqlite3.Error, StoreError) as e:
        conn.close()
        raise StoreError(f"cannot open central database {path}: {e}") from e
    return conn


def put_chunk(conn: sqlite3.Connection, device_id: str, chunk: wire.Chunk) -> None:
    """Keep a chunk until its record arrives; chunks of a file already stored are dropped.

    Committed without fsync (synchronous=NORMAL, still safe against a crash of this
    process): a chunk promises nothing to anyone. The record's FULL commit fsyncs the
    WAL, chunk frames included, before any ack; a chunk lost to a power cut only makes
    the record incomplete, and the device re-sends it after its ack timeout.
    """
    conn.execute("PRAGMA synchronous=NORMAL")
    with transaction(conn):
        if conn.execute("SELECT 1 FROM files WHERE sha256=?", (chunk.file_sha256,)).fetchone():
            return
        conn.execute(
            "INSERT OR REPLACE INTO chunks(file_sha256, count, idx, size, record_id, device_id, "
            "data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (chunk.file_sha256, chunk.count, chunk.index, chunk.size, chunk.record_id,
             device_id, chunk.data, time.time()),
        )


def _assemble(conn: sqlite3.Connection, sha: str, size: int) -> str | None:
    """Build a file from a complete set of chunks; None if done, else why not ('' = missing)."""
    groups = conn.execute(
        "SELECT count, COUNT(*) AS have FROM chunks WHERE file_sha256=? GROUP BY count "
        "ORDER BY have DESC", (sha,)).fetchall()
    complete = [g["count"] for g in groups if g["have"] == g["count"]]
    if not complete:
        return ""
    rows = conn.execute(
        "SELECT data FROM chunks WHERE file_sha256=? AND count=? ORDER BY idx",
        (sha, complete[0])).fetchall()
    data = b"".join(r["data"] for r in rows)
    conn.execute("DELETE FROM chunks WHERE file_sha256=? AND count=?", (sha, complete[0]))
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
        return f"file {sha} arrived with {len(data)} bytes that do not match its sha256/size"
    conn.execute("INSERT INTO files(sha256, size, data, stored_at) VALUES (?, ?, ?, ?)",
                 (sha, size, data, time.time()))
    return None


def _reject(conn: sqlite3.Connection, device_id: str, msg: wire.RecordMessage,
            reason: str) -> RecordResult:
    conn.execute("INSERT INTO rejections(device_id, record_id, sha256, reason, at) "
                 "VALUES (?, ?, ?, ?, ?)", (device_id, msg.record_id, msg.sha256, reason,
                                            time.time()))
    log.error("rejected record %s from %s: %s", msg.record_id, device_id, reason)
    return RecordResult(Outcome.REJECTED, reason)


def put_record(conn: sqlite3.Connection, device_id: str, msg: wire.RecordMessage) -> RecordResult:
    """Verify and store a record with all its files in one transaction (fsynced: it gets acked)."""
    conn.execute("PRAGMA synchronous=FULL")
    with transaction(conn):
        now = time.time()
        existing = conn.execute("SELECT sha256 FROM records WHERE record_id=?",
                                (msg.record_id,)).fetchone()
        if existing is not None:
            if existing["sha256"] != msg.sha256:
                return _reject(conn, device_id, msg,
                               f"record_id already stored with sha256 {existing['sha256']}")
            conn.execute("UPDATE records SET copies=copies+1, last_copy_at=? WHERE record_id=?",
                         (now, msg.record_id))
            return RecordResult(Outcome.DUPLICATE)
        if hashlib.sha256(msg.body_json.encode("utf-8")).hexdigest() != msg.sha256:
            return _reject(conn, device_id, msg, "record body does not match its sha256")
        try:
            body = json.loads(msg.body_json)
            files = wire.record_files(msg.body_json)
        except (json.JSONDecodeError, WireError) as e:
            return _reject(conn, device_id, msg, f"record body unreadable: {e}")
        if not isinstance(body, dict) or body.get("record_id") != msg.record_id:
            return _reject(conn, device_id, msg, "record body names another record_id")
        if body.get("device_id") not in (None, device_id):
            return _reject(conn, device_id, msg,
                           f"record body is from device {body.get('device_id')!r}, "
                           f"sent on the topic of {device_id!r}")
        missing: list[str] = []
        for sha, size in files:
            if conn.execute("SELECT 1 FROM files WHERE sha256=?", (sha,)).fetchone():
                continue
            problem = _assemble(conn, sha, size)
            if problem:
                return _reject(conn, device_id, msg, problem)
            if problem == "":
                missing.append(sha)
        if missing:
            log.warning("record %s from %s: %d file(s) incomplete, waiting for a re-send",
                        msg.record_id, device_id, len(missing))
            return RecordResult(Outcome.INCOMPLETE, f"missing chunks of {', '.join(missing)}")
        codes = [p.get("result_code", "") for p in body.get("papers", []) if isinstance(p, dict)]
        conn.execute(
            "INSERT INTO records(record_id, device_id, sha256, body_json, dossier_code, "
            "result_codes_json, received_at, last_copy_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (msg.record_id, device_id, msg.sha256, msg.body_json,
             str(body.get("dossier_code", "")), json.dumps(codes, ensure_ascii=False), now, now),
        )
    log.info("stored record %s from %s (%d file(s))", msg.record_id, device_id, len(files))
    return RecordResult(Outcome.STORED)


def list_records(db_path: str | Path) -> list[dict[str, Any]]:
    """Stored records, oldest first, for tests and a status page."""
    conn = connect(db_path)
    try:
        return [
            {
                "record_id": r["record_id"],
                "device_id": r["device_id"],
                "dossier_code": r["dossier_code"],
                "sha256": r["sha256"],
                "result_codes": json.loads(r["result_codes_json"]),
                "received_at": r["received_at"],
                "copies": r["copies"],
                "files": [sha for sha, _size in wire.record_files(r["body_json"])],
                "body_json": r["body_json"],
            }
            for r in conn.execute("SELECT * FROM records ORDER BY received_at, rowid")
        ]
    finally:
        conn.close()


def list_rejections(db_path: str | Path) -> list[dict[str, Any]]:
    conn = connect(db_path)
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM rejections ORDER BY id")]
    finally:
        conn.close()


def get_file(db_path: str | Path, sha256: str) -> bytes | None:
    conn = connect(db_path)
    try:
        row = conn.execute("SELECT data FROM files WHERE sha256=?", (sha256,)).fetchone()
        return bytes(row["data"]) if row else None
    finally:
        conn.close()
