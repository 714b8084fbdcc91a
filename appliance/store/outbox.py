"""The durable outbox: which signed records still have to reach the central office.

A record counts as sent only when the central receiver has acknowledged it, after
committing it to its own disk; a broker PUBACK proves nothing because mosquitto
acknowledges messages it has not yet saved. So the only truth about delivery lives
here, in SQLite, and every crash (of the sync service, the broker, the receiver or
the power) ends with the row still 'pending' or 'sending', never lost.

Rows are claimed oldest first, so records leave in the order they were signed; a row
whose previous attempt failed waits for its back-off and does not block younger rows
(one damaged file must not stop a whole office). Delivered rows stay as history: the
PDFs are the bulk of the disk, and dropping a row silently is what users of
TTL-based edge hubs complain about.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple

from appliance.store import audit
from appliance.store.db import aad, get_state, open_text_utf8, set_state, transaction
from appliance.store.errors import StoreError
from appliance.system.text import json_string, storable

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
DEAD_LETTER_STATE_KEY = "sync.dead_letters"
# Dead letters kept for inspection; older ones are dropped, the counters keep counting.
DEAD_LETTERS_KEPT = 10_000
DEAD_LETTER_HEAD_BYTES = 256
# How far back (in rows) a redelivered dead letter is looked for: the broker sends
# again at most its in-flight window, and packet ids come back only after 65,535 more.
REDELIVERY_WINDOW = 4096


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"


# The states' texts, read once: an enum member's .value is a descriptor call, and the
# drain's loops read them per record.
_PENDING = OutboxState.PENDING.value
_SENDING = OutboxState.SENDING.value
_DELIVERED = OutboxState.DELIVERED.value


class DeadLetterKind(StrEnum):
    """Why the sync service set a message aside; each has its own counter."""

    MALFORMED = "malformed"            # not a well-formed ack within the wire limits
    UNEXPECTED_TOPIC = "unexpected_topic"
    RETAINED = "retained"              # the central never retains acks
    OTHER_DEVICE = "other_device"      # an ack signed for another device (replayed)
    FORGED = "forged"                  # signature missing or wrong
    UNKNOWN_RECORD = "unknown_record"  # no such record on this device
    WRONG_HASH = "wrong_hash"          # signed, but for other bytes than this record's
    STALE = "stale"                    # a resume answer to no open query (old, replayed)
    INTERNAL = "internal"              # a bug while handling it; logged with its trace


class OutboxItem(NamedTuple):
    """A claimed row together with the record it carries, read in the claiming transaction.

    A named tuple, not a dataclass: the sync service claims hundreds at a time, and a
    frozen dataclass cost several times as much to make.
    """

    record_id: str
    body_json: str
    sha256: str
    attempts: int
    created_at: float
    # The record's dossier, read with it: handed back with its ack (mark_received_many),
    # it spares reading the record again to write the audit line.
    dossier_id: int | None = None
    # body_json's UTF-8 bytes as they were opened (b"" when not given): hashed and sent
    # as they are, not encoded again (twice per record, at about 1.7 us per KB of a body
    # with Vietnamese text).
    body_utf8: bytes = b""

    def utf8(self) -> bytes:
        return self.body_utf8 or self.body_json.encode("utf-8")


def backoff_seconds(attempts: int) -> float:
    """Delay before the next try; grows so a long outage does not hammer the link."""
    exponent = max(0, min(attempts - 1, 16))
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**exponent)


def enqueue(conn: sqlite3.Connection, record_id: str, *, now: float | None = None) -> None:
    """Add a record to the outbox inside the caller's transaction.

    It refuses to run outside one: the record row and its outbox row must commit
    together, otherwise a crash between two commits leaves a signed record that is
    never sent.
    """
    if not conn.in_transaction:
        raise StoreError("outbox.enqueue must run inside the transaction that writes the record")
    conn.execute(
        "INSERT INTO outbox(record_id, state, attempts, created_at, next_attempt_at) "
        "VALUES (?, ?, 0, ?, 0) ON CONFLICT(record_id) DO NOTHING",
        (record_id, _PENDING, time.time() if now is None else now),
    )


def reset_stale(conn: sqlite3.Connection) -> int:
    """Return 'sending' rows to 'pending'; called when the (single) sync service starts.

    A row can only be 'sending' at start if the previous process died mid-attempt;
    whether the receiver got it is unknown, so it is sent again (the receiver
    deduplicates by record_id).
    """
    with transaction(conn):
        cur = conn.execute(
            "UPDATE outbox SET state=?, next_attempt_at=0 WHERE state=?",
            (_PENDING, _SENDING),
        )
    if cur.rowcount:
        log.info("outbox: %d interrupted deliveries will be retried", cur.rowcount)
    return cur.rowcount


def claim_next(conn: sqlite3.Connection, *, now: float | None = None) -> OutboxItem | None:
    """Mark the oldest due pending row 'sending' and return it with its record, or None.

    A row scheduled further ahead than the longest back-off is due too: the wall clock
    went backwards (a Raspberry Pi without RTC boots with an old time, then NTP fixes
    it), and waiting for the clock to catch up could take days.
    """
    t = time.time() if now is None else now
    with transaction(conn):
        row = conn.execute(
            "UPDATE outbox SET state=?, attempts=attempts+1, last_attempt_at=? "
            "WHERE id=(SELECT id FROM outbox WHERE state=? "
            "AND (next_attempt_at<=? OR next_attempt_at>?) ORDER BY id LIMIT 1) "
            "RETURNING record_id, attempts, created_at",
            (_SENDING, t, _PENDING, t,
             t + BACKOFF_CAP_SECONDS + 1),
        ).fetchone()
        if row is None:
            return None
        rec = conn.execute(
            "SELECT body_json, sha256, dossier_id FROM records WHERE record_id=?",
            (row["record_id"],)).fetchone()
        if rec is None:  # cannot happen with the foreign key; refuse rather than send nothing
            raise StoreError(f"outbox row {row['record_id']} has no record")
    return _opened(conn, row["record_id"], rec["body_json"], rec["sha256"], row["attempts"],
                   row["created_at"], rec["dossier_id"])


def _opened(conn: sqlite3.Connection, record_id: str, sealed_body: str, sha256: str,
            attempts: int, created_at: float, dossier_id: int | None) -> OutboxItem:
    """A claimed record as sync sends it. Its body is sealed at rest (store/db.py); the
    wire carries the signed clear bytes, opened once and kept as text and as UTF-8."""
    utf8 = open_text_utf8(conn, sealed_body, aad("records", "body_json", record_id))
    return OutboxItem(record_id, utf8.decode("utf-8"), sha256, attempts, created_at,
                      dossier_id, utf8)


def claim_many(conn: sqlite3.Connection, limit: int, *, exclude: Collection[str] = (),
               now: float | None = None) -> list[OutboxItem]:
    """claim_next for up to `limit` rows in one transaction, oldest first.

    Why: one commit per claimed record was a third of the device's time per small
    record; the sync service keeps hundreds of records in flight and claims them in
    groups. Same due rule as claim_next. `exclude`: record ids passed over this time
    (scans waiting for room in the bulk lane, so the small records behind them go).
    """
    t = time.time() if now is None else now
    with transaction(conn):
        claimed = conn.execute(
            "UPDATE outbox SET state=?, attempts=attempts+1, last_attempt_at=? "
            "WHERE id IN (SELECT id FROM outbox WHERE state=? "
            "AND (next_attempt_at<=? OR next_attempt_at>?) "
            "AND record_id NOT IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?) "
            "RETURNING id",
            (_SENDING, t, _PENDING, t,
             t + BACKOFF_CAP_SECONDS + 1, json.dumps(list(exclude)), max(0, limit)),
        ).fetchall()
        if not claimed:
            return []
        cur = conn.cursor()
        cur.row_factory = None  # tuples: a Row per claimed record cost more than its use
        ids = sorted(r[0] for r in claimed)
        rows = cur.execute(
            "SELECT o.record_id, r.body_json, r.sha256, o.attempts, o.created_at, r.dossier_id "
            "FROM outbox o LEFT JOIN records r ON r.record_id=o.record_id "
            f"WHERE o.id IN ({','.join('?' * len(ids))}) ORDER BY o.id", ids).fetchall()
        if any(row[2] is None for row in rows):
            raise StoreError("an outbox row has no record")
    return [_opened(conn, *row) for row in rows]


def unclaim(conn: sqlite3.Connection, record_ids: list[str]) -> None:
    """Give claimed rows back as if they had not been claimed (the attempt is not
    counted): due at once, for a later claim."""
    with transaction(conn):
        conn.executemany(
            "UPDATE outbox SET state=?, attempts=MAX(0, attempts-1) "
            "WHERE record_id=? AND state=?",
            [(_PENDING, rid, _SENDING)
             for rid in record_ids])


def retry_many(conn: sqlite3.Connection, record_ids: list[str], *, delay: float = 0,
               now: float | None = None) -> None:
    """Give many claimed rows back at once, due after `delay` (a lost connection)."""
    t = time.time() if now is None else now
    with transaction(conn):
        conn.executemany(
            "UPDATE outbox SET state=?, next_attempt_at=? WHERE record_id=? AND state=?",
            [(_PENDING, t + delay, rid, _SENDING)
             for rid in record_ids])


def retry_later(
    conn: sqlite3.Connection,
    record_id: str,
    *,
    delay: float | None = None,
    now: float | None = None,
) -> None:
    """Give a claimed row back, due after `delay` (default: back-off by its attempts)."""
    t = time.time() if now is None else now
    with transaction(conn):
        row = conn.execute(
            "SELECT attempts FROM outbox WHERE record_id=? AND state=?",
            (record_id, _SENDING),
        ).fetchone()
        if row is None:
            return  # delivered meanwhile (a late ack) or never claimed
        wait = backoff_seconds(row["attempts"]) if delay is None else delay
        conn.execute(
            "UPDATE outbox SET state=?, next_attempt_at=? WHERE record_id=? AND state=?",
            (_PENDING, t + wait, record_id, _SENDING),
        )


def mark_delivered(
    conn: sqlite3.Connection, record_id: str, ack: dict[str, Any], *, now: float | None = None
) -> bool:
    """Record the receiver's acknowledgement; True if this ack completed the delivery.

    The ack must name the record's own sha256: an ack for different bytes (an old
    version, a bug at the receiver) does not prove that this record arrived. A late
    ack for a row already given back for retry still counts.
    """
    t = time.time() if now is None else now
    with transaction(conn):
        rec = conn.execute(
            "SELECT sha256, dossier_id FROM records WHERE record_id=?", (record_id,)
        ).fetchone()
        if rec is None:
            log.warning("outbox: ack for unknown record %s ignored", record_id)
            return False
        if ack.get("sha256") != rec["sha256"]:
            log.warning(
                "outbox: ack for record %s names sha256 %s, expected %s; ignored",
                record_id, ack.get("sha256"), rec["sha256"],
            )
            return False
        cur = conn.execute(
            "UPDATE outbox SET state=?, delivered_at=?, ack_json=? WHERE record_id=? AND state!=?",
            (
                _DELIVERED,
                t,
                json.dumps(ack, ensure_ascii=False, sort_keys=True),
                record_id,
                _DELIVERED,
            ),
        )
        if cur.rowcount == 1:  # the audit trail's "send": committed with the delivery
            audit.append(conn, audit.AuditAction.SEND, "central", rec["dossier_id"],
                         {"record_id": record_id, "sha256": rec["sha256"]})
    return cur.rowcount == 1


# When a delivery counts from, for retention (SQL over
# `outbox o`, with :now): the later of this device's stamp (o.delivered_at) and the
# central's commit time its signed ack gives, unless that one is still in the future.
# A Raspberry Pi has no real-time clock; after a long time switched off it may start
# with the clock fake-hwclock saved, months behind but after EARLIEST_PLAUSIBLE, and
# take acks before NTP answers. By its stamp alone such a delivery was months old as
# soon as the clock was put right, and the next retention run purged the local copies
# a minute after the central stored them (red team 8). Believing the central's time
# whatever it said instead let a central clock two years ahead keep the copies two
# years past their retention (red team 9): a time later than this device's clock now
# is not believed.
COUNTED_FROM = (
    "MAX(o.delivered_at, COALESCE(CASE WHEN json_extract(o.ack_json, '$.received_at') "
    "<= :now THEN json_extract(o.ack_json, '$.received_at') END, o.delivered_at))")


def mark_delivered_many(conn: sqlite3.Connection, acks: Sequence[tuple[str, Mapping[str, Any]]],
                        *, now: float | None = None) -> list[str]:
    """mark_delivered for many acks in one transaction; the record ids it completed.

    Why: the sync service receives acks in bursts (the receiver commits in groups), and
    one transaction per ack was a commit per record on the device as well. The sync
    service itself uses mark_received_many, which writes the same rows without a dict
    per ack.
    """
    t = time.time() if now is None else now
    with transaction(conn):
        due = _deliverable(conn, [(record_id, ack.get("sha256"), None)
                                  for record_id, ack in acks])
        updates: list[tuple[str, float, str, int, str]] = []
        sent: list[tuple[int | None, dict[str, Any]]] = []
        for n, row_id, sha, dossier_id in due:
            record_id, ack = acks[n]
            updates.append((_DELIVERED, t, json.dumps(ack, ensure_ascii=False, sort_keys=True),
                            row_id, _DELIVERED))
            sent.append((dossier_id, _send_line(record_id, sha, ack)))
        conn.executemany(_MARK_DELIVERED, updates)
        # One audit line per record still (an auditor looks a record up by its dossier),
        # written together: the chain's head is read and rewritten once per batch.
        audit.append_many(conn, audit.AuditAction.SEND, "central", sent)
    return [acks[n][0] for n, _row, _sha, _dossier in due]


def _send_line(record_id: str, sha256: str, ack: Mapping[str, Any]) -> dict[str, Any]:
    """The audit "send" line's detail: the record, and which ack (the receiver's time and
    verdict; its signature is kept in the outbox row's ack_json)."""
    line = {"record_id": record_id, "sha256": sha256}
    if "received_at" in ack:
        line["ack_received_at"] = ack["received_at"]
    if "status" in ack:
        line["ack_status"] = ack["status"]
    return line


@dataclass(frozen=True)
class Receipt:
    """What one ack message from the receiver says of every record it names: the time it
    committed them, the device it answers, and its signature (base64, as kept in each
    record's ack_json; for a batch it verifies only over the whole batch).

    Why: the JSON each acknowledged record keeps (ack_json) and its audit line share
    these fields; encoded once per message, not once per record.
    """

    received_at: float
    device_id: str
    sig: str
    # The id of the key that verified the ack (acksig.TrustedKeys.verified_by; "" when
    # acks are believed without a key): a receipt says which key its signature checks
    # against. Never the ack's own "kid", which is outside the signature.
    kid: str = ""

    @cached_property
    def _json(self) -> tuple[str, str, str]:
        """Pieces of ack_json around record_id, sha256, status, and the audit line's head."""
        kid = f'"kid": {json.dumps(self.kid, ensure_ascii=False)}, ' if self.kid else ""
        return (f'{{"device_id": {json.dumps(self.device_id, ensure_ascii=False)}, {kid}'
                f'"received_at": {json.dumps(self.received_at)}, "record_id": ',
                f', "sig": {json.dumps(self.sig, ensure_ascii=False)}, "status": ',
                '{"ack_received_at":' + json.dumps(self.received_at, ensure_ascii=False,
                                                   separators=(",", ":")) + ',"ack_status":')

    def ack(self, record_id: str, sha256: str, status: str) -> dict[str, Any]:
        """The ack as a dict, as mark_delivered_many takes it (json.dumps of it is the
        ack_json mark_received_many writes)."""
        return {"record_id": record_id, "sha256": sha256, "received_at": self.received_at,
                "device_id": self.device_id, "status": status, "sig": self.sig,
                **({"kid": self.kid} if self.kid else {})}


def mark_received_many(
        conn: sqlite3.Connection,
        acks: Sequence[tuple[str, str, str, Receipt, OutboxItem | None]], *,
        now: float | None = None) -> list[str]:
    """mark_delivered_many for acks given as (record_id, sha256, status, receipt, item):
    the same checks, the same rows and audit lines, byte for byte, as for
    `receipt.ack(record_id, sha256, status)` there (tests/store/test_outbox_receipts.py).

    item: the record as claim_many (or claim_next) read it, or None. Its sha256 and
    dossier are the record's (a record row never changes them and is never deleted), so
    the ack is checked against them and the record is not read a second time: only
    its outbox row is (a record's row is a page of its own, its body inline, and reading
    it back was a tenth of the cost of marking it delivered).

    Why: this is the device's busiest path while a backlog drains, and per record a dict,
    json.dumps of it (sorted), a second dict for the audit line and its own JSON round
    trips were most of the cost of marking it delivered. Here ack_json and the audit
    line's canonical text are composed from pieces encoded once per ack message.
    """
    t = time.time() if now is None else now
    quote = json_string
    with transaction(conn):
        due = _deliverable(conn, [(record_id, sha, item)
                                  for record_id, sha, _s, _r, item in acks])
        updates: list[tuple[str, float, str, int, str]] = []
        sent: list[tuple[int | None, str]] = []
        for n, row_id, sha, dossier_id in due:
            record_id, _sha, status, receipt, _item = acks[n]
            head, middle, line = receipt._json  # noqa: SLF001 - its own cache
            rid, status_text = quote(record_id), quote(status)
            updates.append((_DELIVERED, t,
                            f'{head}{rid}, "sha256": {quote(sha)}{middle}{status_text}}}',
                            row_id, _DELIVERED))
            sent.append((dossier_id,
                         f'{line}{status_text},"record_id":{rid},"sha256":{quote(sha)}}}'))
        conn.executemany(_MARK_DELIVERED, updates)
        audit.append_canonical_many(conn, audit.AuditAction.SEND, "central", sent)
    return [acks[n][0] for n, _row, _sha, _dossier in due]


# By the outbox row's id, which _deliverable looked up with the record.
_MARK_DELIVERED = "UPDATE outbox SET state=?, delivered_at=?, ack_json=? WHERE id=? AND state!=?"


def _deliverable(
        conn: sqlite3.Connection,
        acks: Sequence[tuple[str, object, OutboxItem | None]],
) -> list[tuple[int, int, str, int | None]]:
    """Of acks given as (record_id, the sha256 it names, the claimed item or None):
    (position, outbox row id, the record's sha256, its dossier) of each one that
    completes a delivery, first ack of a record only.

    An ack for an unknown record or for other bytes is logged and ignored; one for a
    record not in the outbox or delivered before changes nothing.
    """
    cur = conn.cursor()
    cur.row_factory = None  # tuples: a Row per acknowledged record cost more than its use
    # One look at the outbox rows of all the acknowledged records, one at the records
    # not claimed here (two statements per record before: a third of the device's time
    # per small record was here).
    known: dict[str, tuple[str, int | None]] = {}
    unknown: list[str] = []
    for record_id, _named, item in acks:
        if item is not None and item.dossier_id is not None and item.record_id == record_id:
            known[record_id] = (item.sha256, item.dossier_id)
        else:
            unknown.append(record_id)
    if unknown:
        known.update((row[0], (row[1], row[2])) for row in cur.execute(
            "SELECT record_id, sha256, dossier_id FROM records "
            "WHERE record_id IN (SELECT value FROM json_each(?))", (json.dumps(unknown),)))
    rows = {row[0]: row for row in cur.execute(
        "SELECT record_id, state, id FROM outbox "
        "WHERE record_id IN (SELECT value FROM json_each(?))",
        (json.dumps([record_id for record_id, _named, _item in acks]),))}
    due: list[tuple[int, int, str, int | None]] = []
    seen: set[str] = set()
    for n, (record_id, named, _item) in enumerate(acks):
        rec = known.get(record_id)
        if rec is None or named != rec[0]:
            log.warning("outbox: ack for record %s does not name its sha256; ignored",
                        record_id)
            continue
        row = rows.get(record_id)
        if row is None or row[1] == _DELIVERED or record_id in seen:
            continue  # not in the outbox, or acknowledged before: nothing to mark
        seen.add(record_id)
        due.append((n, row[2], rec[0], rec[1]))
    return due


def state_of(conn: sqlite3.Connection, record_id: str) -> OutboxState | None:
    row = conn.execute("SELECT state FROM outbox WHERE record_id=?", (record_id,)).fetchone()
    return OutboxState(row["state"]) if row else None


def stats(conn: sqlite3.Connection, *, now: float | None = None) -> dict[str, Any]:
    """Backlog figures for the screen and the status page.

    Keys: queue_depth (undelivered rows), pending, sending, delivered_count,
    oldest_undelivered_age_seconds (None when empty), last_delivery_at (Unix time or
    None), attempts_undelivered (sum of tries spent on the backlog).
    """
    t = time.time() if now is None else now
    counts = {s.value: 0 for s in OutboxState}
    for row in conn.execute("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state"):
        counts[row["state"]] = row["n"]
    row = conn.execute(
        "SELECT MIN(created_at) AS oldest, COALESCE(SUM(attempts), 0) AS tries "
        "FROM outbox WHERE state!=?",
        (_DELIVERED,),
    ).fetchone()
    # The device's own stamps: the screens poll this, and COUNTED_FROM's json_extract
    # on every delivered row cost 3.6 times the whole of stats() with 100,000 of them
    # (red team 10); after a Pi's clock was put right it may say "long ago" until the
    # next delivery, never in the future because of the central's clock.
    last = conn.execute("SELECT MAX(delivered_at) AS t FROM outbox").fetchone()["t"]
    return {
        "queue_depth": counts["pending"] + counts["sending"],
        "pending": counts["pending"],
        "sending": counts["sending"],
        "delivered_count": counts["delivered"],
        "oldest_undelivered_age_seconds": (
            max(0.0, t - row["oldest"]) if row["oldest"] is not None else None
        ),
        "last_delivery_at": last,
        "attempts_undelivered": row["tries"],
    }


def record_sha256(conn: sqlite3.Connection, record_id: str) -> str | None:
    """The sha256 the device signed for a record, or None for an unknown id."""
    row = conn.execute("SELECT sha256 FROM records WHERE record_id=?", (record_id,)).fetchone()
    return row["sha256"] if row else None


def put_dead_letter(conn: sqlite3.Connection, topic: str, kind: DeadLetterKind, reason: str,
                    payload: bytes, *, delivery: str = "", redelivered: bool = False,
                    and_then: Callable[[sqlite3.Connection], None] | None = None,
                    ) -> int | None:
    """Set a message aside with its reason and count it; returns the total count, or
    None when it is a redelivery of one already set aside (nothing written).

    The counters live in device_state (sync.dead_letters and sync.dead_letters.<kind>)
    so the status heartbeat and the technician's screen read them like any other fact.
    Only the payload's first bytes are kept: enough to see what it was.

    `delivery` names how the message came: sync's MQTT session epoch (one more each
    time the broker starts the session afresh and numbers packets from 1 again) and
    the packet id the broker gave it. A message the broker sends again (MQTT's DUP
    flag: the link cut, or sync killed, between this commit and its PUBACK) comes in
    the same session with the same packet id and is not counted again: counted twice,
    the heartbeat's counters and the doctor's forged acks said more than was sent (red
    team 15). Junk sent anew has other packet ids, so it still counts. The receiver
    keeps its dead letters the same way (appliance.central.store.put_dead_letter).
    `and_then` runs in the same transaction, only for a message newly set aside: what
    else counts it (sync's refused acks) is counted with it or not at all.
    """
    came = (hashlib.sha256(delivery.encode("utf-8") + b"\0" + payload).hexdigest()
            if delivery else "")
    with transaction(conn):
        if redelivered and came and conn.execute(
                "SELECT 1 FROM sync_dead_letters WHERE delivery=? AND id > (SELECT "
                "COALESCE(MAX(id), 0) FROM sync_dead_letters) - ?",
                (came, REDELIVERY_WINDOW)).fetchone():
            return None
        cur = conn.execute(
            "INSERT INTO sync_dead_letters(topic, kind, reason, size, head, at, delivery) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (storable(topic, 300), kind.value, storable(reason, 500), len(payload),
             bytes(payload[:DEAD_LETTER_HEAD_BYTES]), time.time(), came))
        if cur.lastrowid and cur.lastrowid % 1000 == 0:
            conn.execute("DELETE FROM sync_dead_letters WHERE id <= ?",
                         (cur.lastrowid - DEAD_LETTERS_KEPT,))
        if and_then is not None:
            and_then(conn)
        counts = {}
        for key in (DEAD_LETTER_STATE_KEY, f"{DEAD_LETTER_STATE_KEY}.{kind.value}"):
            found = get_state(conn, key)
            counts[key] = (int(found[0]) if found and found[0].isdigit() else 0) + 1
            set_state(conn, key, str(counts[key]))
    return counts[DEAD_LETTER_STATE_KEY]


def dead_letter_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """{'total': n, '<kind>': n, ...} from the counters (kept even after old rows go)."""
    out: dict[str, int] = {}
    for row in conn.execute("SELECT key, value FROM device_state WHERE key=? OR key LIKE ?",
                            (DEAD_LETTER_STATE_KEY, DEAD_LETTER_STATE_KEY + ".%")):
        name = row["key"][len(DEAD_LETTER_STATE_KEY) + 1:] or "total"
        out[name] = int(row["value"]) if row["value"].isdigit() else 0
    return out


def inspect(conn: sqlite3.Connection, limit: int = 20) -> dict[str, Any]:
    """What a technician looks at when "nothing arrives at the central office": the
    oldest records still waiting (with their tries and next attempt) and the most
    recent messages the sync service set aside, with their reasons."""
    waiting = [dict(row) for row in conn.execute(
        "SELECT record_id, state, attempts, created_at, last_attempt_at, next_attempt_at "
        "FROM outbox WHERE state!=? ORDER BY created_at, id LIMIT ?",
        (_DELIVERED, limit))]
    dead = [dict(row) for row in conn.execute(
        "SELECT id, at, kind, topic, reason, size FROM sync_dead_letters "
        "ORDER BY id DESC LIMIT ?", (limit,))]
    return {"waiting": waiting, "dead_letters": dead}
