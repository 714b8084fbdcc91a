"""The reference receiver's own database (SQLite, or PostgreSQL for several receivers):
records, files, chunks, dead letters; one set of functions for both engines (db.py).

Files are kept as BLOBs next to their records so that a record and its PDFs commit
in one transaction: the ack goes out only after that commit, so an acknowledged
record is on disk whatever crashes next. A file that came in one message is one
sealed blob in `files`; a file that came in chunks stays the sealed chunk rows it
arrived as, named by its `files` row (chunk_device, chunk_count), checked against its
sha256 when the last one is in and read back in order by get_file/stream_file.

Identity: a record id lives in its device's namespace (the device comes from the
topic, which the broker's ACL binds to the client certificate), and every distinct
content is kept under (device, record_id, sha256). The first content for an id is
served; a different one is held aside and the id is marked in conflict. A device
that receives a CONFLICT ack re-sends its bytes with claim=true: the first claim
made while the bytes were held wins and is served from then on; a second claim
marks the id contested, nothing is served for it and an operator decides. So a
squatter who publishes first can delay a record but never make its own bytes the
ones served once the real device has spoken, and an ack always names exact bytes.

Chunks are scratch space per (device, file, chunk count): a transfer row counts what
arrived, bounds it by the file's size, and limits how many a device may keep open and
how many bytes all devices may hold; idle transfers are purged after
central.chunk_expiry_seconds (the device re-sends the record when no ack comes). A
file sent whole before its record is stored at once but pending (pending_files) until
a stored record names it: charged to the same byte budget and purged after the same
expiry, so no file that no record names stays for good.

Every function here runs inside the caller's transaction if there is one (group
commit), or opens its own.

At rest, record bodies, files and chunks are sealed with the receiver's key (the
connection's sealer, central/db.py), each bound to where it belongs; the sha256
checks and the served bytes are those of the clear content.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from appliance.central.db import CentralConnection, connect, reading, transaction
from appliance.central.errors import CentralStoreError, ChunkRefused, DecisionRefused
from appliance.sync import wire
from appliance.sync.errors import WireError
from appliance.system import crypto
from appliance.system.text import json_string, storable

log = logging.getLogger(__name__)

__all__ = ["CentralStoreError", "ChunkRefused", "Outcome", "RecordResult", "connect"]

# More open transfers than this in all would mean a flood over many device ids.
MAX_TRANSFERS_TOTAL = 100_000
# Dead letters kept for inspection; older ones are dropped, the counter keeps counting.
DEAD_LETTERS_KEPT = 10_000
DEAD_LETTER_HEAD_BYTES = 256
# How far back a redelivered dead letter is looked for: the broker redelivers at most a
# receive window (512) per receiver, and packet ids are reused only after 65,535 more.
REDELIVERY_WINDOW = 4096


class Outcome(StrEnum):
    STORED = "stored"          # new, or a copy of what is held: ack with its status
    DUPLICATE = "duplicate"    # these exact bytes were already held: ack again
    INCOMPLETE = "incomplete"  # chunks missing: no ack, the device re-sends after its timeout
    REJECTED = "rejected"      # content does not match its hashes or its topic: no ack


# How often a record is looked at again after a concurrent receiver stored its id first.
RACE_RETRIES = 3


class _Raced(Exception):
    """Another receiver's commit made our look at the records table stale."""


class _Incomplete(CentralStoreError):
    """A file's chunk rows are not all there (one missing, or short): the sender's
    doing while a transfer completes, damage once the file is stored."""


@dataclass(frozen=True)
class RecordResult:
    outcome: Outcome
    reason: str = ""
    status: wire.AckStatus = wire.AckStatus.STORED

    @property
    def ack(self) -> bool:
        return self.outcome in (Outcome.STORED, Outcome.DUPLICATE)


@dataclass(frozen=True)
class Limits:
    """How much chunk state the receiver keeps (central.* in the configuration)."""

    max_transfers_per_device: int = 64
    max_chunk_store_bytes: int = 2 * 1024 * 1024 * 1024
    chunk_expiry_seconds: float = 86400.0


@contextmanager
def _tx(conn: CentralConnection) -> Iterator[CentralConnection]:
    """The caller's transaction if it has one, else a new one of our own."""
    if conn.in_transaction:
        yield conn
    else:
        with transaction(conn):
            yield conn


def _count(conn: CentralConnection, name: str, n: int = 1) -> None:
    conn.add_to_counter(name, n)


def _counter(conn: CentralConnection, name: str) -> int:
    return conn.counter(name)


# Counters kept for the receivers' own use (session_epoch), not figures for people.
_INTERNAL_COUNTERS = "session_epoch:"


def counters(conn: CentralConnection) -> dict[str, int]:
    """What the receiver counts for people (its status log, --report, tests)."""
    return {name: value for name, value in conn.all_counters().items()
            if not name.startswith(_INTERNAL_COUNTERS)}


# --- sealing at rest ---------------------------------------------------------------


def _seal(conn: CentralConnection, data: bytes, aad: str) -> bytes:
    sealer = crypto.sealer_on(conn)
    return data if sealer is None else sealer.seal(data, aad.encode("utf-8"))


def _open(conn: CentralConnection, blob: bytes, aad: str) -> bytes:
    """Clear bytes of a sealed blob; one stored before sealing passes unchanged."""
    blob = bytes(blob)
    if not crypto.is_sealed(blob):
        return blob
    sealer = crypto.sealer_on(conn)
    if sealer is None:
        raise CentralStoreError(f"{aad} is sealed and this connection has no key")
    try:
        return sealer.open(blob, aad.encode("utf-8"))
    except crypto.Tampered as e:
        raise CentralStoreError(f"{aad} does not open: {e}") from e


def _codes_json(codes: list[str]) -> str:
    """json.dumps(codes, ensure_ascii=False), byte for byte, for a list of strings,
    without making an encoder per record (4 us of a record's 60 at the receiver)."""
    return "[" + ", ".join(map(json_string, codes)) + "]"


def _seal_text(conn: CentralConnection, text: str, aad: str, utf8: bytes = b"") -> str:
    """utf8: the text's UTF-8 bytes when the caller has them (not encoded again)."""
    sealer = crypto.sealer_on(conn)
    return text if sealer is None else sealer.seal_text(text, aad, utf8)


def _open_text(conn: CentralConnection, value: str, aad: str) -> str:
    if not crypto.is_sealed_text(value):
        return value
    sealer = crypto.sealer_on(conn)
    if sealer is None:
        raise CentralStoreError(f"{aad} is sealed and this connection has no key")
    try:
        return sealer.open_text(value, aad)
    except crypto.Tampered as e:
        raise CentralStoreError(f"{aad} does not open: {e}") from e


def _body_aad(device_id: str, record_id: str, sha: str) -> str:
    return f"records.body_json:{device_id}/{record_id}/{sha}"


def _chunk_aad(device_id: str, sha: str, count: int, idx: int) -> str:
    return f"chunks:{device_id}/{sha}/{count}/{idx}"


# --- dead letters -------------------------------------------------------------------


def put_dead_letter(conn: CentralConnection, topic: str, device_id: str | None,
                    reason: str, payload: bytes, *, delivery: str = "",
                    redelivered: bool = False) -> int:
    """Move a message that cannot be processed aside; returns the running count.

    Only the payload's first bytes are kept: the point is to see what it was, and a
    5 MB poison message must not become 5 MB of disk each time it is sent.

    `delivery` names how the message came: the receiver's session (its certificate's
    CN and its client id), the session's epoch (session_epoch: one more each time the
    broker starts the session afresh and numbers packets from 1 again) and the packet
    id the broker gave it. A redelivery of the same message (MQTT's DUP flag: a
    receiver or broker restart between our commit and our PUBACK) comes in the same
    session with the same packet id and is not counted again. Junk sent anew has other
    packet ids, so it still counts. So does a message that was read but never
    committed before a crash, even when identical junk was set aside before it: keyed
    by the bytes alone, such floods lost hundreds from the count (fifth review), and
    keyed without the CN and the epoch, hundreds more (sixth review). A broker restored
    from an old backup of its sessions may still number packets as before; then the
    rare identical junk redelivered within REDELIVERY_WINDOW is counted once too few.
    """
    key = hashlib.sha256(delivery.encode("utf-8") + b"\0" + payload).hexdigest()
    topic = storable(topic, 300)
    with _tx(conn):
        if redelivered and delivery and conn.execute(
                "SELECT 1 FROM dead_letters WHERE delivery=? AND id > (SELECT "
                "COALESCE(MAX(id), 0) FROM dead_letters) - ?",
                (key, REDELIVERY_WINDOW)).fetchone():
            log.debug("dead letter on %s redelivered, already set aside", topic)
            return _counter(conn, "dead_letters")
        # The text is what a message said, made storable; the head keeps the bytes.
        new_id = int(conn.execute(
            "INSERT INTO dead_letters(topic, device_id, reason, size, head, at, delivery) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (topic, None if device_id is None else storable(device_id, 100),
             storable(reason, 500),
             len(payload), bytes(payload[:DEAD_LETTER_HEAD_BYTES]), time.time(),
             key)).fetchone()[0])
        if new_id % 1000 == 0:
            conn.execute("DELETE FROM dead_letters WHERE id <= ?",
                         (new_id - DEAD_LETTERS_KEPT,))
        _count(conn, "dead_letters")
        return _counter(conn, "dead_letters")


def session_epoch(conn: CentralConnection, identity: str, *, new: bool) -> int:
    """The epoch of a receiver's MQTT session (see put_dead_letter's `delivery`): one
    more when the broker did not keep the session (`new`), else the current one."""
    name = f"{_INTERNAL_COUNTERS}{identity}"[:200]
    if not new:
        return _counter(conn, name)
    with _tx(conn):  # read in the same transaction as the bump: our own epoch
        _count(conn, name)
        return _counter(conn, name)


# --- ack signing keys ---------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A key that signed this database's acks: its id (acksig.key_id), PEM public key,
    and when a receiver first and last signed with it."""

    key_id: str
    public_key: str
    first_at: float
    last_at: float


def signing_keys(conn: CentralConnection) -> list[SigningKey]:
    """The keys that signed this database's acks, the most recently used first."""
    return [SigningKey(str(r["key_id"]), str(r["public_key"]), float(r["first_at"]),
                       float(r["last_at"]))
            for r in conn.execute("SELECT key_id, public_key, first_at, last_at FROM "
                                  "signing_keys ORDER BY last_at DESC, key_id")]


def acks_given(conn: CentralConnection) -> str:
    """What devices took this database's acks for, in words ('' for a new database): a
    receiver refuses to make a new signing key where this is not empty."""
    keys = signing_keys(conn)
    if keys:
        return "acks signed by key " + ", ".join(k.key_id for k in keys)
    if conn.execute("SELECT 1 FROM records LIMIT 1").fetchone():
        return "records acknowledged before keys were noted"
    return ""


def note_signing_key(conn: CentralConnection, key_id: str, public_pem: str,
                     now: float | None = None) -> list[SigningKey]:
    """Note that a receiver signs with this key now; returns the keys noted before (this
    one among them unless it is new). A key new to a database that knows others, or
    one that others replaced since it was first used, is one that devices may not
    believe: the receiver says so."""
    at = time.time() if now is None else now
    with _tx(conn):
        before = signing_keys(conn)
        conn.execute("INSERT INTO signing_keys(key_id, public_key, first_at, last_at) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT (key_id) DO UPDATE "
                     "SET last_at=excluded.last_at", (key_id, public_pem, at, at))
    return before


# --- chunks -------------------------------------------------------------------------


# The chunks of a file kept in its chunk layout (see _complete): never scratch space.
_KEPT = ("EXISTS (SELECT 1 FROM files WHERE sha256=? AND chunk_device=? "
         "AND chunk_count=?)")


def _drop_chunks(conn: CentralConnection, device_id: str, sha: str, count: int) -> None:
    """Delete a transfer's chunks, except those a stored file is made of (a stray
    transfer row for the same key, opened by a receiver that had not yet seen the file
    committed, must not take the file with it when it expires)."""
    conn.execute(f"DELETE FROM chunks WHERE device_id=? AND file_sha256=? AND count=? "
                 f"AND NOT {_KEPT}", (device_id, sha, count, sha, device_id, count))


def _take_transfer(conn: CentralConnection, device_id: str, sha: str, count: int, *,
                   complete: bool = False) -> int | None:
    """Delete a transfer row and uncount it; its bytes, or None when it was not there
    (complete: only if every chunk arrived). On PostgreSQL the DELETE locks the row:
    of two receivers taking it (one completing the file, one purging it) one waits for
    the other's commit and then finds it gone."""
    row = conn.execute("DELETE FROM transfers WHERE device_id=? AND file_sha256=? AND count=? "
                       + ("AND have=count " if complete else "") + "RETURNING bytes",
                       (device_id, sha, count)).fetchone()
    if row is None:
        return None
    _count(conn, "chunk_bytes_held", -row[0])
    _count(conn, "transfers_open", -1)
    return int(row[0])


def _drop_transfer(conn: CentralConnection, device_id: str, sha: str, count: int) -> int:
    """Forget a transfer and its chunks (never a stored file's); the bytes it held."""
    held = _take_transfer(conn, device_id, sha, count)
    _drop_chunks(conn, device_id, sha, count)
    return held or 0


def put_chunk(conn: CentralConnection, device_id: str, chunk: wire.Chunk,
              limits: Limits | None = None) -> None:
    """Keep a chunk until its record arrives; chunks of a file already stored are dropped.

    Raises ChunkRefused when the chunk breaks a limit; the caller moves it aside.
    Committed without fsync when this is its own transaction (synchronous=NORMAL,
    still safe against a crash of this process): a chunk promises nothing to anyone.
    """
    limits = limits or Limits()
    own = not conn.in_transaction
    if own:
        conn.durable(False)
    try:
        _put_chunk(conn, device_id, chunk, limits)
    finally:
        if own:
            conn.durable(True)


def _put_chunk(conn: CentralConnection, device_id: str, chunk: wire.Chunk,
               limits: Limits) -> None:
    with _tx(conn):
        stored = "SELECT 1 FROM files WHERE sha256=?"
        if chunk.count == 1:
            _put_whole_file(conn, device_id, chunk, limits)
            return
        if conn.execute(stored, (chunk.file_sha256,)).fetchone():
            return
        if conn.execute("SELECT 1 FROM records WHERE device_id=? AND record_id=? AND "
                        "sha256=?", (device_id, chunk.record_id, chunk.file_sha256)).fetchone():
            # A chunk of a record body held already (named by the record's sha256): a
            # re-send that came after the record, whose device has its ack and sends
            # no record message again to clear it. It opened a transfer held until the
            # expiry (a day by default); dropped like the chunks of a stored file.
            return
        key = (device_id, chunk.file_sha256, chunk.count)
        now = time.time()
        transfer = conn.execute(
            "SELECT size, bytes FROM transfers WHERE device_id=? AND file_sha256=? AND count=?",
            key).fetchone()
        if transfer is not None and transfer["size"] != chunk.size:
            # The latest sender wins, so a stray transfer cannot block the real one.
            log.warning("chunks of %s from %s announce %d bytes, earlier ones %d: restarting "
                        "the transfer", chunk.file_sha256, device_id, chunk.size,
                        transfer["size"])
            _drop_transfer(conn, *key)
            transfer = None
        elif transfer is not None and transfer["bytes"] + len(chunk.data) > chunk.size:
            held_here = conn.execute("SELECT length(data) FROM chunks WHERE device_id=? AND "
                                     "file_sha256=? AND count=? AND idx=?",
                                     (*key, chunk.index)).fetchone()
            sealed = len(chunk.data) + (crypto.OVERHEAD if crypto.sealer_on(conn) else 0)
            if held_here is not None and held_here[0] == sealed:
                # A copy of a chunk held (a redelivery), as long as the one held: nothing
                # to add. One of another length at this index was cut another way.
                conn.execute("UPDATE transfers SET last_at=? WHERE device_id=? AND "
                             "file_sha256=? AND count=?", (now, *key))
                return
            # A new chunk that cannot fit beside those held: they were cut another way
            # (a stray chunk carrying the whole file at one index, or a device whose
            # chunk size changed). Refusing it kept the genuine chunks out until the
            # transfer expired (24 h by default); the latest sender wins here too, and
            # the sha256 check at completion still decides what is stored.
            log.warning("chunk %d of %s from %s does not fit beside the %d bytes held: "
                        "restarting the transfer", chunk.index, chunk.file_sha256,
                        device_id, transfer["bytes"])
            _drop_transfer(conn, *key)
            transfer = None
        if transfer is None:
            open_here = conn.execute("SELECT COUNT(*) FROM transfers WHERE device_id=?",
                                     (device_id,)).fetchone()[0]
            if open_here >= limits.max_transfers_per_device:
                raise ChunkRefused(f"device {device_id} has {open_here} transfers open "
                                   f"(limit {limits.max_transfers_per_device})")
            if _counter(conn, "transfers_open") >= MAX_TRANSFERS_TOTAL:
                raise ChunkRefused(f"{MAX_TRANSFERS_TOTAL} transfers open in all")
            cur = conn.execute(
                "INSERT INTO transfers(device_id, file_sha256, count, size, record_id, "
                "started_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (*key, chunk.size, chunk.record_id, now, now))
            if cur.rowcount == 1:
                _count(conn, "transfers_open")
                held = 0
            else:
                # PostgreSQL: another receiver opened this transfer with a sibling chunk
                # and committed meanwhile (the primary key made us wait for it).
                row = conn.execute("SELECT bytes FROM transfers WHERE device_id=? AND "
                                   "file_sha256=? AND count=?", key).fetchone()
                held = row["bytes"] if row else 0
        else:
            held = transfer["bytes"]
        if held + len(chunk.data) > chunk.size:
            raise ChunkRefused(f"chunks of {chunk.file_sha256} exceed its {chunk.size} bytes")
        if _counter(conn, "chunk_bytes_held") + len(chunk.data) > limits.max_chunk_store_bytes:
            raise ChunkRefused(f"chunk store full ({limits.max_chunk_store_bytes} bytes)")
        cur = conn.execute(
            "INSERT INTO chunks(device_id, file_sha256, count, idx, data) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (*key, chunk.index,
             _seal(conn, chunk.data, _chunk_aad(device_id, chunk.file_sha256, chunk.count,
                                                chunk.index))))
        if cur.rowcount == 1:
            conn.execute("UPDATE transfers SET have=have+1, bytes=bytes+?, last_at=? "
                         "WHERE device_id=? AND file_sha256=? AND count=?",
                         (len(chunk.data), now, *key))
            _count(conn, "chunk_bytes_held", len(chunk.data))
        else:
            conn.execute("UPDATE transfers SET last_at=? WHERE device_id=? AND file_sha256=? "
                         "AND count=?", (now, *key))


def _put_whole_file(conn: CentralConnection, device_id: str, chunk: wire.Chunk,
                    limits: Limits) -> None:
    """A file in one message (every small record's, a binary pack's): checked and stored
    at once. Until a stored record names it (_adopt_files) it is pending: charged to
    the chunk budget and purged after the expiry like chunk state. Before, such a file
    was kept for good, outside every limit: anyone able to publish, on any device's
    topic, could fill the central disk with files no record would ever name."""
    sha = chunk.file_sha256
    if len(chunk.data) != chunk.size or hashlib.sha256(chunk.data).hexdigest() != sha:
        if conn.execute("SELECT 1 FROM files WHERE sha256=?", (sha,)).fetchone():
            return
        raise ChunkRefused(f"file {sha} in one chunk does not match its sha256/size")
    now = time.time()
    # An INSERT that does nothing when the file is held already: one round trip.
    cur = conn.execute("INSERT INTO files(sha256, size, data, stored_at) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       (sha, chunk.size, _seal(conn, chunk.data, f"files:{sha}"), now))
    if cur.rowcount != 1:
        # Sent again: a pending file stays while someone still sends it (no-op if a
        # record names it already).
        conn.execute("UPDATE pending_files SET since=? WHERE sha256=?", (now, sha))
        return
    charge = chunk.size + PENDING_FILE_CHARGE
    if _counter(conn, "chunk_bytes_held") + charge > limits.max_chunk_store_bytes:
        # The caller rolls the INSERT back with the message.
        raise ChunkRefused(f"chunk store full ({limits.max_chunk_store_bytes} bytes)")
    conn.execute("INSERT INTO pending_files(sha256, device_id, since, charge) "
                 "VALUES (?, ?, ?, ?)", (sha, device_id, now, charge))
    _count(conn, "chunk_bytes_held", charge)


def _adopt_files(conn: CentralConnection, shas: Iterable[str]) -> bool:
    """A record just stored names these files: any of them pending is pending no more
    (its charge is given back). False when one of them is gone: on PostgreSQL another
    receiver's purge committed between the caller's look and now (its DELETE of the
    pending row and ours wait for each other, and the look after ours sees what it
    did); the caller then rolls back and goes the careful way, where the file counts
    as missing and the device sends it again. Never a record without its file."""
    named = list(dict.fromkeys(shas))
    for start in range(0, len(named), FRESH_INSERT_ROWS):
        part = named[start:start + FRESH_INSERT_ROWS]
        marks = ",".join("?" * len(part))
        freed = conn.execute(f"DELETE FROM pending_files WHERE sha256 IN ({marks}) "
                             "RETURNING charge", part).fetchall()
        if freed:
            _count(conn, "chunk_bytes_held", -sum(int(r[0]) for r in freed))
        if conn.engine == "sqlite":
            continue  # one writer at a time: nothing can have gone since the caller's look
        held = conn.execute(f"SELECT COUNT(*) FROM files WHERE sha256 IN ({marks})",
                            part).fetchone()[0]
        if held != len(part):
            return False
    return True


def _purge_pending_files(conn: CentralConnection, cutoff: float) -> tuple[int, int]:
    """Delete files no stored record named before `cutoff`; (how many, their charge)."""
    gone = conn.execute("DELETE FROM pending_files WHERE since < ? RETURNING sha256, charge",
                        (cutoff,)).fetchall()
    for start in range(0, len(gone), FRESH_INSERT_ROWS):
        part = [r[0] for r in gone[start:start + FRESH_INSERT_ROWS]]
        conn.execute(f"DELETE FROM files WHERE sha256 IN ({','.join('?' * len(part))}) "
                     "AND chunk_count IS NULL", part)
    charge = sum(int(r[1]) for r in gone)
    if gone:
        _count(conn, "chunk_bytes_held", -charge)
        _count(conn, "files_purged", len(gone))
    return len(gone), charge


def purge_expired(conn: CentralConnection, expiry_seconds: float,
                  now: float | None = None) -> int:
    """Drop transfers idle longer than expiry_seconds, and files sent whole that no
    record named in that time, with a log line; returns how many of both."""
    cutoff = (time.time() if now is None else now) - expiry_seconds
    with _tx(conn):
        stale = conn.execute("SELECT device_id, file_sha256, count, record_id, have, "
                             "count AS total FROM transfers WHERE last_at < ?",
                             (cutoff,)).fetchall()
        freed = sum(_drop_transfer(conn, r["device_id"], r["file_sha256"], r["count"])
                    for r in stale)
        if stale:
            _count(conn, "transfers_purged", len(stale))
        files, charge = _purge_pending_files(conn, cutoff)
    if files:
        log.warning("purged %d file(s) sent whole that no record named for more than "
                    "%.0f s, %d bytes charged", files, expiry_seconds, charge)
    if stale:
        names = ", ".join(f"{r['device_id']}/{r['record_id']} ({r['have']}/{r['total']})"
                          for r in stale[:10])
        log.warning("purged %d incomplete transfer(s), %d bytes, idle for more than %.0f s: %s%s",
                    len(stale), freed, expiry_seconds, names,
                    " ..." if len(stale) > 10 else "")
    return len(stale) + files


def _chunks(conn: CentralConnection, device_id: str, sha: str, count: int,
            size: int) -> Iterator[bytes]:
    """The clear bytes of a file's chunks in order; CentralStoreError if one is missing,
    out of place or does not open, or if they do not add up to `size` (each chunk's
    associated data names its index and the chunk count, so only a row left out or a
    short row could go unnoticed, and both are checked here)."""
    expected = 0
    total = 0
    for row in conn.execute("SELECT idx, data FROM chunks WHERE device_id=? AND "
                            "file_sha256=? AND count=? ORDER BY idx", (device_id, sha, count)):
        if row["idx"] != expected:
            raise _Incomplete(f"file {sha}: chunk {expected} of {count} is missing")
        data = _open(conn, row["data"], _chunk_aad(device_id, sha, count, expected))
        total += len(data)
        expected += 1
        yield data
    if expected != count or total != size:
        raise _Incomplete(f"file {sha}: {expected} of {count} chunks, {total} of "
                                f"{size} bytes")


def _complete_transfer(conn: CentralConnection, device_id: str, sha: str,
                       size: int) -> int | None:
    """The chunk count of this device's transfer of `sha` (`size` bytes) whose every
    chunk arrived (the latest, if cut two ways), or None."""
    row = conn.execute(
        "SELECT count FROM transfers WHERE device_id=? AND file_sha256=? AND size=? "
        "AND have=count ORDER BY last_at DESC LIMIT 1", (device_id, sha, size)).fetchone()
    return None if row is None else int(row["count"])


def _complete(conn: CentralConnection, device_id: str, sha: str, size: int) -> str | None:
    """Store a file whose chunks all arrived; None if done, else why not ('' = still
    missing).

    The chunks are checked against the file's sha256 (read back and opened: they may
    have come through other receivers) and then kept where they are, sealed as they
    arrived: the files row only names them. Before, the file was opened, joined,
    sealed and written again as one blob and the chunks deleted (overwritten, with
    secure_delete), three writes of every byte of a scan instead of one.
    """
    count = _complete_transfer(conn, device_id, sha, size)
    if count is None:
        return ""
    # Taken before its chunks are read: a receiver purging it meanwhile (PostgreSQL)
    # either did so first (gone, with its chunks: still missing) or waits for this
    # commit and then keeps the chunks the stored file names.
    if _take_transfer(conn, device_id, sha, count, complete=True) is None:
        return ""
    digest = hashlib.sha256()
    try:
        for data in _chunks(conn, device_id, sha, count, size):
            digest.update(data)
    except _Incomplete as e:
        # A missing or short chunk is the sender's: the transfer is dropped and the
        # record rejected. A chunk that does not open (CentralStoreError from _open) is
        # this disk's damage: it is not caught here, it goes up to the caller and no
        # files row is written.
        _drop_chunks(conn, device_id, sha, count)
        return f"file {sha} arrived incomplete: {e}"
    if digest.hexdigest() != sha:
        _drop_chunks(conn, device_id, sha, count)
        return f"file {sha} arrived with {size} bytes that do not match its sha256"
    cur = conn.execute("INSERT INTO files(sha256, size, data, stored_at, chunk_device, "
                       "chunk_count) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       (sha, size, b"", time.time(), device_id, count))
    if cur.rowcount == 0:
        # Another receiver stored the file first (PostgreSQL): these chunks are spare.
        log.info("file %s was stored by another receiver meanwhile", sha)
        _drop_chunks(conn, device_id, sha, count)
    return None


# --- records ------------------------------------------------------------------------


def _reject(conn: CentralConnection, device_id: str, msg: wire.RecordMessage,
            reason: str) -> RecordResult:
    conn.execute("INSERT INTO rejections(device_id, record_id, sha256, reason, at) "
                 "VALUES (?, ?, ?, ?, ?)", (device_id, msg.record_id, msg.sha256, reason[:500],
                                            time.time()))
    _count(conn, "records_rejected")
    log.error("rejected record %s from %s: %s", msg.record_id, device_id, reason)
    return RecordResult(Outcome.REJECTED, reason)


def _status(conn: CentralConnection, device_id: str, record_id: str,
            sha: str) -> wire.AckStatus:
    conflict = conn.execute("SELECT state, decided_sha256 FROM conflicts WHERE device_id=? "
                            "AND record_id=?", (device_id, record_id)).fetchone()
    if conflict is not None and conflict["decided_sha256"] is not None:
        # An operator chose: the other contents stay aside for good, which a device
        # must hear as final (CONTESTED), not as a conflict to claim again.
        return (wire.AckStatus.STORED if conflict["decided_sha256"] == sha
                else wire.AckStatus.CONTESTED)
    if conflict is not None and conflict["state"] == "contested":
        return wire.AckStatus.CONTESTED
    row = conn.execute("SELECT status FROM records WHERE device_id=? AND record_id=? "
                       "AND sha256=?", (device_id, record_id, sha)).fetchone()
    return wire.AckStatus.STORED if row["status"] == "served" else wire.AckStatus.CONFLICT


def _claim(conn: CentralConnection, device_id: str, msg: wire.RecordMessage) -> None:
    """The device says these held bytes are its record: serve them, unless someone
    else claimed other bytes too, which makes the id contested (nothing served)."""
    key = (device_id, msg.record_id)
    now = time.time()
    # PostgreSQL: two receivers' claims of one id each saw no other claim (neither had
    # committed), and the second one's 'served' broke the one-served-content index: a
    # dead letter, the id left resolved (red team 8, 12 of 12 rounds). The conflict's
    # row, which every content held aside has, is locked first: claims of one id go
    # one after the other, and the second sees the first. SQLite has one writer.
    lock = " FOR UPDATE" if conn.engine == "postgresql" else ""
    state = conn.execute("SELECT state, decided_sha256 FROM conflicts WHERE device_id=? "
                         "AND record_id=?" + lock, key).fetchone()
    if state is not None and state["decided_sha256"] is not None:
        log.warning("record %s of %s: a claim of sha256 %s after an operator decided for "
                    "%s changes nothing", msg.record_id, device_id, msg.sha256,
                    state["decided_sha256"])
        return
    others = conn.execute("SELECT COUNT(*) FROM records WHERE device_id=? AND record_id=? "
                          "AND sha256!=? AND claimed=1", (*key, msg.sha256)).fetchone()[0]
    conn.execute("UPDATE records SET claimed=1 WHERE device_id=? AND record_id=? AND sha256=?",
                 (*key, msg.sha256))
    already = state is not None and state["state"] == "contested"
    if others or already:
        conn.execute("UPDATE records SET status='held' WHERE device_id=? AND record_id=?", key)
        conn.execute("UPDATE conflicts SET state='contested', updated_at=? WHERE device_id=? "
                     "AND record_id=?", (now, *key))
        if already:
            # A claim sent again (its ack lost, a broker's redelivery): the same
            # contest, counted and reported once.
            log.info("record %s of %s: claimed again while contested", msg.record_id,
                     device_id)
            return
        _count(conn, "conflicts_contested")
        log.error("record %s of %s: two contents were claimed; none is served until an "
                  "operator decides", msg.record_id, device_id)
        return
    conn.execute("UPDATE records SET status='held' WHERE device_id=? AND record_id=? "
                 "AND status='served'", key)
    conn.execute("UPDATE records SET status='served' WHERE device_id=? AND record_id=? "
                 "AND sha256=?", (*key, msg.sha256))
    conn.execute("UPDATE conflicts SET state='resolved', updated_at=? WHERE device_id=? "
                 "AND record_id=?", (now, *key))
    log.warning("record %s of %s: the device claimed sha256 %s; it is served, the other "
                "content stays held aside", msg.record_id, device_id, msg.sha256)


def operator_words(**given: str) -> None:
    """DecisionRefused unless every word an operator typed is text: a command line that
    is not UTF-8 reaches Python as lone surrogates, which no database encodes, and
    raised a traceback (red team 8) instead of saying what is wrong."""
    for what, value in given.items():
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise DecisionRefused(f"the {what.replace('_', ' ')} given is not UTF-8 "
                                      f"text: {value!r}") from None


def decide(conn: CentralConnection, device_id: str, record_id: str, sha256: str,
           operator: str) -> int:
    """An operator's choice of the content served under a record id in conflict.

    Devices can only claim. When two contents are claimed (a squatter, or a device
    restored from an old backup), nothing is served until a person looks. The chosen
    content is served from now on. The others stay held, since nothing is ever
    deleted, and later claims and copies change nothing (their devices hear
    CONTESTED, which is final). The decision is recorded with its operator and time,
    and logged. It returns how many other contents were held aside. DecisionRefused
    if there is no conflict under that id, or no such content.
    """
    operator_words(device=device_id, record_id=record_id, sha256=sha256,
                   operator=operator)
    key = (device_id, record_id)
    with _tx(conn):
        conflict = conn.execute("SELECT state, decided_sha256 FROM conflicts WHERE "
                                "device_id=? AND record_id=?", key).fetchone()
        if conflict is None:
            raise DecisionRefused(f"record {record_id} of {device_id} is not in conflict: "
                                  "there is nothing to decide")
        held = [r["sha256"] for r in conn.execute(
            "SELECT sha256 FROM records WHERE device_id=? AND record_id=? ORDER BY "
            "received_at", key)]
        if sha256 not in held:
            raise DecisionRefused(f"no content with sha256 {sha256} under record "
                                  f"{record_id} of {device_id}; held: {', '.join(held)}")
        now = time.time()
        conn.execute("UPDATE records SET status='held' WHERE device_id=? AND record_id=?",
                     key)
        conn.execute("UPDATE records SET status='served' WHERE device_id=? AND record_id=? "
                     "AND sha256=?", (*key, sha256))
        conn.execute("UPDATE conflicts SET state='resolved', updated_at=?, decided_sha256=?, "
                     "decided_by=?, decided_at=? WHERE device_id=? AND record_id=?",
                     (now, sha256, operator[:200], now, *key))
        _count(conn, "conflicts_decided")
    log.warning("record %s of %s: operator %r decided for sha256 %s (was %s, earlier "
                "decision %s); %d other content(s) stay held", record_id, device_id,
                operator, sha256, conflict["state"], conflict["decided_sha256"] or "none",
                len(held) - 1)
    return len(held) - 1


def put_record(conn: CentralConnection, device_id: str, msg: wire.RecordMessage) -> RecordResult:
    """Verify and store a record with all its files in one transaction (fsynced: it gets acked)."""
    own = not conn.in_transaction
    if own:
        conn.durable(True)
    with _tx(conn):
        if not msg.body_bytes:
            result = _put_retrying(conn, device_id, msg)
        else:
            conn.execute("SAVEPOINT chunked_body")
            body = _chunked_body(conn, device_id, msg)
            result = (body if isinstance(body, RecordResult)
                      else _put_retrying(conn, device_id, body))
            if result.outcome is Outcome.INCOMPLETE:
                # Its files are not all here yet: the body's chunks stay for the next try.
                conn.execute("ROLLBACK TO chunked_body")
            conn.execute("RELEASE chunked_body")
    if own and result.outcome is Outcome.STORED:
        # Only once committed: in the caller's transaction, the caller says it after its
        # COMMIT (the receiver, per batch), so no line claims what a rollback undid.
        log.info("stored record %s from %s (%s)", msg.record_id, device_id, result.status)
    return result


def _put_retrying(conn: CentralConnection, device_id: str,
                  msg: wire.RecordMessage) -> RecordResult:
    for _attempt in range(RACE_RETRIES):
        try:
            return _put_record(conn, device_id, msg)
        except _Raced:
            continue
    raise CentralStoreError(f"record {msg.record_id} of {device_id}: lost "
                            f"{RACE_RETRIES} races with other receivers")


def _chunked_body(conn: CentralConnection, device_id: str, msg: wire.RecordMessage,
                  ) -> wire.RecordMessage | RecordResult:
    """The record with its body read from the chunks that came before it (the body was
    too big for one message), or what to answer when it cannot be had.

    The body's chunks are a transfer like a file's, named by the record's sha256, with
    the same limits and expiry. They are taken here, whatever comes of the record: its
    body is what gets stored (sealed, in records), or the record is refused. Already
    held with these bytes: the chunks sent again are dropped and the record goes on
    as a duplicate, without its body."""
    held = conn.execute("SELECT 1 FROM records WHERE device_id=? AND record_id=? AND "
                        "sha256=?", (device_id, msg.record_id, msg.sha256)).fetchone()
    if held is not None:
        for row in conn.execute("SELECT count FROM transfers WHERE device_id=? AND "
                                "file_sha256=?", (device_id, msg.sha256)).fetchall():
            _drop_transfer(conn, device_id, msg.sha256, int(row["count"]))
        _drop_pending_file(conn, msg.sha256)
        return msg
    whole = conn.execute("SELECT data FROM files WHERE sha256=? AND size=? AND "
                         "chunk_count IS NULL", (msg.sha256, msg.body_bytes)).fetchone()
    if whole is not None:
        # A body that fit one chunk came as a file sent whole (see _put_whole_file),
        # checked against its sha256 on the way in: read it from there.
        data = _open(conn, whole["data"], f"files:{msg.sha256}")
        _drop_pending_file(conn, msg.sha256)
        return _with_body(conn, device_id, msg, data)
    count = _complete_transfer(conn, device_id, msg.sha256, msg.body_bytes)
    if count is None or _take_transfer(conn, device_id, msg.sha256, count,
                                       complete=True) is None:
        log.info("record %s from %s: body chunks incomplete, waiting for a re-send",
                 msg.record_id, device_id)
        return RecordResult(Outcome.INCOMPLETE, f"missing chunks of the body {msg.sha256}")
    try:
        data = b"".join(_chunks(conn, device_id, msg.sha256, count, msg.body_bytes))
    except _Incomplete as e:
        _drop_chunks(conn, device_id, msg.sha256, count)
        return _reject(conn, device_id, msg, f"record body arrived incomplete: {e}")
    _drop_chunks(conn, device_id, msg.sha256, count)
    return _with_body(conn, device_id, msg, data)


def _with_body(conn: CentralConnection, device_id: str, msg: wire.RecordMessage,
               data: bytes) -> wire.RecordMessage | RecordResult:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return _reject(conn, device_id, msg, f"record body is not UTF-8: {e.reason} at "
                                             f"{e.start}")
    return dataclasses.replace(msg, body_json=text, body_bytes=0, body_utf8=bytes(data))


def _drop_pending_file(conn: CentralConnection, sha: str) -> None:
    """Forget a file sent whole that no stored record names (a record body that came
    as one chunk, now read); a file a record names is kept."""
    freed = conn.execute("DELETE FROM pending_files WHERE sha256=? RETURNING charge",
                         (sha,)).fetchall()
    if freed:
        conn.execute("DELETE FROM files WHERE sha256=? AND chunk_count IS NULL", (sha,))
        _count(conn, "chunk_bytes_held", -sum(int(r[0]) for r in freed))


# What a pending file (see _put_whole_file) is charged besides its bytes: its rows in
# files and pending_files, so that files of a few bytes cannot pile up rows under a
# budget counted in bytes.
PENDING_FILE_CHARGE = 256
# Records of one pack stored with one multi-row INSERT: 9 values each, well within
# SQLite's 32,766 and PostgreSQL's 65,535 parameters.
FRESH_INSERT_ROWS = wire.MAX_PACKED_RECORDS
_RECORD_COLUMNS = ("(device_id, record_id, sha256, body_json, dossier_code, result_codes_json, "
                   "status, received_at, last_copy_at)")


def put_records(conn: CentralConnection, device_id: str,
                msgs: tuple[wire.RecordMessage, ...] | list[wire.RecordMessage],
                ) -> list[RecordResult]:
    """put_record for each record of a pack, inside the caller's transaction; the
    results in the same order.

    Why: per record, put_record looked its id up, inserted it and bumped a counter:
    three statements, and the Python around them, were half a receiver's time per
    small record. The usual record of a pack is new: its id is not held, its bytes
    match their sha256, its body names this device and every file it names is held
    (its file came in the same pack). Those are looked up with one statement, stored
    with one multi-row INSERT and counted once. Every other record (already held, a
    claim, a bad hash or body, a file still in chunks, an id twice in the pack) goes
    through put_record itself, after them: the same checks, the same outcome.
    """
    if not msgs:
        return []
    results: list[RecordResult | None] = [None] * len(msgs)
    own = not conn.in_transaction
    if own:
        conn.durable(True)
    with _tx(conn):
        fresh = _fresh(conn, device_id, msgs)
        if fresh:
            conn.execute("SAVEPOINT fresh_records")
            try:
                _insert_fresh(conn, device_id, [(msgs[i], body) for i, body in fresh])
            except _Raced:
                # Another receiver stored one of these ids between our look and our
                # insert (PostgreSQL): none of them stays, each goes the careful way.
                conn.execute("ROLLBACK TO fresh_records")
                fresh = []
            conn.execute("RELEASE fresh_records")
        stored = RecordResult(Outcome.STORED, status=wire.AckStatus.STORED)
        for i, _body in fresh:
            results[i] = stored
        for i, msg in enumerate(msgs):
            if results[i] is None:
                results[i] = put_record(conn, device_id, msg)
    done = [r for r in results if r is not None]
    if own:
        log_stored(device_id, [m.record_id for m, r in zip(msgs, done, strict=True)
                               if r.outcome is Outcome.STORED])
    return done


def log_stored(device_id: str, record_ids: Sequence[str]) -> None:
    """Say which records of a device are stored, once they are committed: one line for
    many, not one per record (at INFO, a line per record cost the receiver more CPU than
    storing it: 12-20 µs into a file, the journal more); each id at DEBUG."""
    if not record_ids:
        return
    log.info("stored %d new record(s) from %s, %s ... %s", len(record_ids), device_id,
             record_ids[0], record_ids[-1])
    if log.isEnabledFor(logging.DEBUG):
        log.debug("stored records from %s: %s", device_id, ", ".join(record_ids))


def _body_of(device_id: str, msg: wire.RecordMessage) -> wire.RecordBody | str:
    """The checked body of a record sent on `device_id`'s topic, or why it is refused:
    bytes that match their sha256, a body that reads, names this record and this device."""
    try:
        raw = msg.utf8()
    except UnicodeEncodeError as e:  # a lone surrogate, escaped in a JSON envelope
        return f"record body is not Unicode text: {e.reason} at {e.start}"
    if hashlib.sha256(raw).hexdigest() != msg.sha256:
        return "record body does not match its sha256"
    try:
        body = wire.parse_body(msg.body_json, raw)
    except WireError as e:
        return f"record body unreadable: {e}"
    if body.record_id != msg.record_id:
        return "record body names another record_id"
    if body.device_id != device_id:
        return (f"record body is from device {body.device_id!r}, "
                f"sent on the topic of {device_id!r}")
    return body


def _fresh(conn: CentralConnection, device_id: str,
           msgs: tuple[wire.RecordMessage, ...] | list[wire.RecordMessage],
           ) -> list[tuple[int, wire.RecordBody]]:
    """The records of a pack that are plainly new (see put_records), with their bodies."""
    ids = list({m.record_id for m in msgs})
    held = {r["record_id"] for r in conn.execute(
        f"SELECT record_id FROM records WHERE device_id=? AND record_id IN "
        f"({','.join('?' * len(ids))})", (device_id, *ids))}
    seen: set[str] = set()
    candidates: list[tuple[int, wire.RecordBody]] = []
    for i, msg in enumerate(msgs):
        if msg.claim or msg.body_bytes or msg.record_id in held or msg.record_id in seen:
            continue
        seen.add(msg.record_id)
        body = _body_of(device_id, msg)
        if not isinstance(body, str):  # a refusal is put_record's to write down
            candidates.append((i, body))
    named = list({sha for _i, body in candidates for sha, _size in body.files})
    stored: set[str] = set()
    for start in range(0, len(named), FRESH_INSERT_ROWS):
        part = named[start:start + FRESH_INSERT_ROWS]
        stored.update(r["sha256"] for r in conn.execute(
            f"SELECT sha256 FROM files WHERE sha256 IN ({','.join('?' * len(part))})", part))
    return [(i, body) for i, body in candidates
            if all(sha in stored for sha, _size in body.files)]


def _insert_fresh(conn: CentralConnection, device_id: str,
                  fresh: list[tuple[wire.RecordMessage, wire.RecordBody]]) -> None:
    now = time.time()
    for start in range(0, len(fresh), FRESH_INSERT_ROWS):
        part = fresh[start:start + FRESH_INSERT_ROWS]
        values: list[Any] = []
        for msg, body in part:
            values += (device_id, msg.record_id, msg.sha256,
                       _seal_text(conn, msg.body_json,
                                  _body_aad(device_id, msg.record_id, msg.sha256),
                                  msg.body_utf8),
                       body.dossier_code, _codes_json(body.result_codes),
                       "served", now, now)
        cur = conn.execute(
            f"INSERT INTO records{_RECORD_COLUMNS} VALUES "
            + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(part)) + " ON CONFLICT DO NOTHING",
            values)
        if cur.rowcount != len(part):
            raise _Raced
    named = [sha for _msg, body in fresh for sha, _size in body.files]
    if named and not _adopt_files(conn, named):
        raise _Raced
    _count(conn, "records_stored", len(fresh))


def _put_record(conn: CentralConnection, device_id: str, msg: wire.RecordMessage) -> RecordResult:
    now = time.time()
    key = (device_id, msg.record_id)
    # One look at every content held under this id (round trips count on PostgreSQL).
    held = conn.execute("SELECT sha256, status FROM records WHERE device_id=? AND record_id=?",
                        key).fetchall()
    mine = next((r for r in held if r["sha256"] == msg.sha256), None)
    if mine is not None:
        conn.execute("UPDATE records SET copies=copies+1, last_copy_at=? WHERE device_id=? "
                     "AND record_id=? AND sha256=?", (now, *key, msg.sha256))
        if msg.claim and mine["status"] == "held":
            _claim(conn, device_id, msg)
        return RecordResult(Outcome.DUPLICATE, status=_status(conn, *key, msg.sha256))
    body = _body_of(device_id, msg)
    if isinstance(body, str):
        return _reject(conn, device_id, msg, body)
    missing: list[str] = []
    for sha, size in body.files:
        if conn.execute("SELECT 1 FROM files WHERE sha256=?", (sha,)).fetchone():
            continue
        problem = _complete(conn, device_id, sha, size)
        if problem:
            return _reject(conn, device_id, msg, problem)
        if problem == "":
            missing.append(sha)
    if missing:
        log.info("record %s from %s: %d file(s) incomplete, waiting for a re-send",
                 msg.record_id, device_id, len(missing))
        return RecordResult(Outcome.INCOMPLETE, f"missing chunks of {', '.join(missing)}")
    others = len(held)  # none of them is these bytes
    cur = conn.execute(
        f"INSERT INTO records{_RECORD_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (device_id, msg.record_id, msg.sha256,
         _seal_text(conn, msg.body_json, _body_aad(device_id, msg.record_id, msg.sha256),
                    msg.body_utf8),
         body.dossier_code,
         _codes_json(body.result_codes),
         "held" if others else "served", now, now))
    if cur.rowcount == 0:
        # PostgreSQL: another receiver committed these bytes, or a served content for
        # this id, between our look and our insert (its unique index made us wait for
        # it). Look again: it is now a duplicate, or a conflict to keep aside.
        raise _Raced
    if body.files and not _adopt_files(conn, (sha for sha, _size in body.files)):
        raise _Raced
    if others:
        conn.execute("INSERT INTO conflicts(device_id, record_id, state, opened_at, updated_at) "
                     "VALUES (?, ?, 'open', ?, ?) ON CONFLICT(device_id, record_id) DO "
                     "UPDATE SET updated_at=excluded.updated_at", (*key, now, now))
        _count(conn, "conflicts")
        log.warning("record %s of %s arrived with sha256 %s, other content is already held "
                    "under that id: kept aside as a conflict", msg.record_id, device_id,
                    msg.sha256)
        if msg.claim:
            _claim(conn, device_id, msg)
    _count(conn, "records_stored")
    if not others:  # the first content for this id: served, and no conflict can exist
        return RecordResult(Outcome.STORED, status=wire.AckStatus.STORED)
    return RecordResult(Outcome.STORED, status=_status(conn, *key, msg.sha256))


# A file a kept record waits for: its sha256, its size, and whether it is the record's
# own body sent in chunks (held under the record's sha256, stored with that very size).
Need = tuple[str, int, bool]


def record_needs(msg: wire.RecordMessage) -> tuple[Need, ...] | None:
    """The files a record kept for its files waits for, worked out once per message
    (its body parsed) instead of at every look (receiver.files_ready, every 0.1 s);
    None when the body does not parse: put_record then rejects it."""
    if msg.body_bytes:  # the body itself is still in chunks
        return ((msg.sha256, msg.body_bytes, True),)
    try:
        body = wire.parse_body(msg.body_json)
    except WireError:
        return None
    return tuple((sha, size, False) for sha, size in body.files)


def needs_ready(conn: CentralConnection, device_id: str, needs: tuple[Need, ...]) -> bool:
    """Whether every file of record_needs is held, or its chunks all arrived: a plain
    read, outside any transaction (no write lock on SQLite), that tells a receiver
    whether a record it kept for its files is worth another try yet."""
    for sha, size, body in needs:
        if conn.execute("SELECT 1 FROM files WHERE sha256=?" + (" AND size=?" if body else ""),
                        (sha, size) if body else (sha,)).fetchone():
            continue
        if conn.execute("SELECT 1 FROM transfers WHERE device_id=? AND file_sha256=? "
                        "AND size=? AND have=count", (device_id, sha, size)).fetchone():
            continue
        return False
    return True


# --- reading, for tests and a status page -------------------------------------------


def _row(conn: CentralConnection, r: Any) -> dict[str, Any]:
    body_json = _open_text(conn, r["body_json"],
                           _body_aad(r["device_id"], r["record_id"], r["sha256"]))
    return {
        "record_id": r["record_id"],
        "device_id": r["device_id"],
        "dossier_code": r["dossier_code"],
        "sha256": r["sha256"],
        "result_codes": json.loads(r["result_codes_json"]),
        "received_at": r["received_at"],
        "copies": r["copies"],
        "status": r["status"],
        "files": [sha for sha, _size in wire.record_files(body_json)],
        "body_json": body_json,
    }


def contents(conn: CentralConnection, device_id: str,
             record_id: str) -> list[dict[str, Any]]:
    """Every content held under one record id of one device, opened (the connection
    needs the key), oldest first, each with whether it was claimed and whether each of
    its files is held: what an operator compares before `--decide`."""
    out = []
    for r in conn.execute("SELECT * FROM records WHERE device_id=? AND record_id=? "
                          "ORDER BY received_at, " + conn.insertion_order,
                          (device_id, record_id)):
        row = _row(conn, r)
        row["claimed"] = bool(r["claimed"])
        row["files"] = {sha: conn.execute("SELECT 1 FROM files WHERE sha256=?",
                                          (sha,)).fetchone() is not None
                        for sha in row["files"]}
        out.append(row)
    return out


def list_records(db_path: str | Path | CentralConnection) -> list[dict[str, Any]]:
    """Served records (one per device and record id), oldest first."""
    with reading(db_path) as conn:
        return [_row(conn, r) for r in conn.execute(
            "SELECT * FROM records WHERE status='served' ORDER BY received_at, "
            + conn.insertion_order)]


def list_held(db_path: str | Path | CentralConnection) -> list[dict[str, Any]]:
    """Contents kept aside under an id that has other content: conflicts to report."""
    with reading(db_path) as conn:
        return [_row(conn, r) for r in conn.execute(
            "SELECT * FROM records WHERE status='held' ORDER BY received_at, "
            + conn.insertion_order)]


def list_conflicts(db_path: str | Path | CentralConnection) -> list[dict[str, Any]]:
    with reading(db_path) as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM conflicts ORDER BY opened_at")]


def list_rejections(db_path: str | Path | CentralConnection) -> list[dict[str, Any]]:
    with reading(db_path) as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM rejections ORDER BY id")]


def list_dead_letters(db_path: str | Path | CentralConnection) -> list[dict[str, Any]]:
    with reading(db_path) as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM dead_letters ORDER BY id")]


def read_counters(db_path: str | Path | CentralConnection) -> dict[str, int]:
    with reading(db_path) as conn:
        return counters(conn)


def chunk_state(db_path: str | Path | CentralConnection) -> dict[str, int]:
    """Open transfers, their chunk rows and the chunk bytes they hold, and the files
    sent whole that no record names yet (pending) with their charge: what expiry must
    bring to zero (the chunks a stored file is kept as are not counted)."""
    with reading(db_path) as conn:
        row = conn.execute("SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b "
                           "FROM transfers").fetchone()
        chunks = conn.execute(
            "SELECT COUNT(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM files f WHERE "
            "f.sha256=c.file_sha256 AND f.chunk_device=c.device_id AND "
            "f.chunk_count=c.count)").fetchone()[0]
        pending = conn.execute("SELECT COUNT(*) AS n, COALESCE(SUM(charge), 0) AS b "
                               "FROM pending_files").fetchone()
        return {"transfers": int(row["n"]), "chunks": int(chunks), "bytes": int(row["b"]),
                "pending_files": int(pending["n"]), "pending_bytes": int(pending["b"])}


def _file_parts(conn: CentralConnection, sha256: str) -> Iterator[bytes] | None:
    """The clear bytes of a stored file in pieces (one blob, or its chunks in order,
    checked against the file's sha256 as they go), or None when it is not held."""
    row = conn.execute("SELECT size, data, chunk_device, chunk_count FROM files "
                       "WHERE sha256=?", (sha256,)).fetchone()
    if row is None:
        return None
    if row["chunk_count"] is None:
        return iter((_open(conn, row["data"], f"files:{sha256}"),))
    return _verified(sha256, _chunks(conn, row["chunk_device"], sha256,
                                     int(row["chunk_count"]), int(row["size"])))


def _verified(sha256: str, parts: Iterator[bytes]) -> Iterator[bytes]:
    """`parts` passed on; CentralStoreError after the last one if they are not the file
    (a reader that streams must treat an exception at the end as a failed read)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
        yield part
    if digest.hexdigest() != sha256:
        raise CentralStoreError(f"file {sha256} does not match its sha256")


def stream_file(db_path: str | Path | CentralConnection, sha256: str) -> Iterator[bytes]:
    """A stored file's clear bytes, a chunk at a time (a 1 GB file never in memory
    whole); nothing when it is not held. The database stays open while it is read."""
    with reading(db_path) as conn:
        parts = _file_parts(conn, sha256)
        if parts is not None:
            yield from parts


def get_file(db_path: str | Path | CentralConnection, sha256: str) -> bytes | None:
    """A stored file's clear bytes, whole, or None when it is not held."""
    with reading(db_path) as conn:
        parts = _file_parts(conn, sha256)
        return None if parts is None else b"".join(parts)
