"""The audit trail's storage: who scanned, viewed, corrected, signed, sent, deleted or purged what.

Why: the personal-data rules (Law 91/2025/QH15; access logs per TCVN 11930:2017) ask
that every touch of a citizen's data is accounted for, and an account a local
attacker could quietly rewrite would be worth nothing. So the log is append-only
(triggers refuse UPDATE and DELETE on the table) and hash-chained: each entry carries
the sha256 of the one before it, and its own sha256 over a canonical JSON of the
entry (sorted keys, no spaces, UTF-8), so an edited, deleted or reordered entry breaks
the chain. The newest entry is also kept in `audit_head`, so cutting entries off the
end, which leaves a shorter but consistent chain, is detected too.

An entry names the dossier by its row id and carries no personal data (no name, no
CCCD): the actor is a role or an officer's name, the detail codes and hashes. The
entries of a dossier travel to the central office inside its signed record (see
`records/signing.py`), so the central office holds the trail up to the sign-off.

`append` runs inside the caller's transaction when there is one, so an action and its
audit line commit together, or not at all. It lives in the store layer because the
outbox (which marks a record sent) must write its line in its own transaction and may
not import the records layer; `records/audit.py` is the interface the use cases call.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from appliance.store.db import now, transaction

GENESIS = "0" * 64


class AuditAction(StrEnum):
    SCAN = "scan"              # a page stored from the scanner
    VIEW = "view"              # an officer opened a dossier, a page image or a PDF
    CORRECTION = "correction"  # a page removed or moved, a paper rebuilt
    SIGN = "sign"              # an officer signed the dossier off (codes issued)
    SEND = "send"              # the central office acknowledged the record
    DELETE = "delete"          # erased on the citizen's request before sending
    PURGE = "purge"            # local copies removed after delivery plus retention


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    actor: str
    action: str
    dossier_id: int | None
    detail: dict[str, Any]
    prev_sha256: str
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        """The entry as it is hashed and as it travels in a record body."""
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action,
                "dossier_id": self.dossier_id, "detail": self.detail,
                "prev_sha256": self.prev_sha256, "sha256": self.sha256}


def entry_hash(seq: int, at: float, actor: str, action: str, dossier_id: int | None,
               detail: Mapping[str, Any], prev_sha256: str) -> str:
    """sha256 of the canonical JSON of an entry without its own hash."""
    body = {"seq": seq, "at": at, "actor": actor, "action": action,
            "dossier_id": dossier_id, "detail": dict(detail), "prev_sha256": prev_sha256}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(detail: Mapping[str, Any]) -> str:
    return json.dumps(dict(detail), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def append(conn: sqlite3.Connection, action: AuditAction | str, actor: str,
           dossier_id: int | None, detail: Mapping[str, Any] | None = None) -> AuditEntry:
    """Add one entry at the end of the chain; inside the caller's transaction if any."""
    if conn.in_transaction:
        return _append(conn, AuditAction(action), actor, dossier_id, detail or {})
    with transaction(conn):
        return _append(conn, AuditAction(action), actor, dossier_id, detail or {})


def _append(conn: sqlite3.Connection, action: AuditAction, actor: str,
            dossier_id: int | None, detail: Mapping[str, Any]) -> AuditEntry:
    actor = (actor or "").strip()[:200] or "unknown"
    # Round-trips through JSON unchanged, so the hash recomputes from the stored row.
    detail = json.loads(_canonical(detail))
    head = conn.execute("SELECT seq, sha256 FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq = 1 if head is None else int(head["seq"]) + 1
    prev = GENESIS if head is None else str(head["sha256"])
    at = now()
    sha = entry_hash(seq, at, actor, action.value, dossier_id, detail, prev)
    conn.execute(
        "INSERT INTO audit_log(seq, at, actor, action, dossier_id, detail_json, prev_sha256, "
        "sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, at, actor, action.value, dossier_id, _canonical(detail), prev, sha))
    conn.execute("INSERT INTO audit_head(id, seq, sha256) VALUES (1, ?, ?) "
                 "ON CONFLICT(id) DO UPDATE SET seq=excluded.seq, sha256=excluded.sha256",
                 (seq, sha))
    return AuditEntry(seq, at, actor, action.value, dossier_id, detail, prev, sha)


def append_many(conn: sqlite3.Connection, action: AuditAction | str, actor: str,
                items: Sequence[tuple[int | None, Mapping[str, Any]]]) -> list[AuditEntry]:
    """Add one entry per (dossier_id, detail) at the end of the chain, in one transaction
    (the caller's if any): the same entries, linked the same way, as that many `append`
    calls at the same moment.

    Why: the outbox marks a whole batch of acknowledged records delivered at once, and an
    `append` per record looked the head up, inserted and rewrote the head each time: three
    statements per record on the device's busiest path. Here the head is read once, the
    entries go in with one executemany, and the head is written once.
    """
    if not items:
        return []
    if conn.in_transaction:
        return _append_many(conn, AuditAction(action), actor, items)
    with transaction(conn):
        return _append_many(conn, AuditAction(action), actor, items)


def _append_many(conn: sqlite3.Connection, action: AuditAction, actor: str,
                 items: Sequence[tuple[int | None, Mapping[str, Any]]]) -> list[AuditEntry]:
    actor = (actor or "").strip()[:200] or "unknown"
    head = conn.execute("SELECT seq, sha256 FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq = 0 if head is None else int(head["seq"])
    prev = GENESIS if head is None else str(head["sha256"])
    at = now()
    made: list[AuditEntry] = []
    rows: list[tuple[Any, ...]] = []
    for dossier_id, raw in items:
        seq += 1
        text = _canonical(raw)
        detail = json.loads(text)
        sha = entry_hash(seq, at, actor, action.value, dossier_id, detail, prev)
        rows.append((seq, at, actor, action.value, dossier_id, text, prev, sha))
        made.append(AuditEntry(seq, at, actor, action.value, dossier_id, detail, prev, sha))
        prev = sha
    conn.executemany(
        "INSERT INTO audit_log(seq, at, actor, action, dossier_id, detail_json, prev_sha256, "
        "sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("INSERT INTO audit_head(id, seq, sha256) VALUES (1, ?, ?) "
                 "ON CONFLICT(id) DO UPDATE SET seq=excluded.seq, sha256=excluded.sha256",
                 (seq, prev))
    return made


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(int(row["seq"]), float(row["at"]), str(row["actor"]), str(row["action"]),
                      row["dossier_id"], json.loads(row["detail_json"]),
                      str(row["prev_sha256"]), str(row["sha256"]))


def entries(conn: sqlite3.Connection, dossier_id: int | None = None) -> list[AuditEntry]:
    """The whole log, or one dossier's entries, in order."""
    if dossier_id is None:
        rows = conn.execute("SELECT * FROM audit_log ORDER BY seq")
    else:
        rows = conn.execute("SELECT * FROM audit_log WHERE dossier_id=? ORDER BY seq",
                            (dossier_id,))
    return [_entry(r) for r in rows.fetchall()]


@dataclass(frozen=True)
class Verification:
    entries: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(conn: sqlite3.Connection) -> Verification:
    """Walk the chain: every entry's own hash, its link to the one before, numbering
    without gaps, and the newest entry against the head. Lists every problem found."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    last: sqlite3.Row | None = None
    for row in conn.execute("SELECT * FROM audit_log ORDER BY rowid"):
        count += 1
        seq = int(row["seq"])
        if seq != expected_seq:
            problems.append(f"entry {seq}: expected entry {expected_seq} here "
                            "(an entry was deleted or the order changed)")
        if row["prev_sha256"] != prev:
            problems.append(f"entry {seq}: does not follow the entry before it "
                            "(deleted, inserted or reordered entries)")
        try:
            detail = json.loads(row["detail_json"])
        except (TypeError, ValueError):
            detail = None
        if not isinstance(detail, dict) or entry_hash(
                seq, float(row["at"]), str(row["actor"]), str(row["action"]),
                row["dossier_id"], detail, str(row["prev_sha256"])) != row["sha256"]:
            problems.append(f"entry {seq}: its content was changed (hash mismatch)")
        prev = str(row["sha256"])
        expected_seq = seq + 1
        last = row
    head = conn.execute("SELECT seq, sha256 FROM audit_head WHERE id=1").fetchone()
    if last is None and head is not None:
        problems.append(f"the log is empty but its head names entry {head['seq']}: "
                        "entries were deleted")
    elif last is not None and head is None:
        problems.append("the log's head record is missing")
    elif last is not None and head is not None and (
            int(head["seq"]) != int(last["seq"]) or head["sha256"] != last["sha256"]):
        problems.append(f"the log ends at entry {last['seq']} but its head names entry "
                        f"{head['seq']}: entries were cut off the end or the head changed")
    return Verification(count, problems)

