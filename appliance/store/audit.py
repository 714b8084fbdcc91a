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
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from appliance.store.db import now, transaction
from appliance.system.text import json_string

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
    texts: list[tuple[int | None, str]] = []
    hashed: list[str] = []
    details: list[dict[str, Any]] = []
    for dossier_id, raw in items:
        text = _canonical(raw)
        detail = json.loads(text)
        texts.append((dossier_id, text))
        # What `verify` hashes: the stored detail read back and encoded again. The same
        # text, unless a key was not a string (json sorts 9 before 10, then "10" before
        # "9" once they are strings).
        hashed.append(_canonical(detail))
        details.append(detail)
    return [AuditEntry(seq, at, who, what, dossier_id, detail, prev, sha)
            for (seq, at, who, what, dossier_id, _text, prev, sha), detail
            in zip(_chain(conn, action.value, actor, texts, hashed), details, strict=True)]


def append_canonical_many(conn: sqlite3.Connection, action: AuditAction | str, actor: str,
                          items: Sequence[tuple[int | None, str]]) -> int:
    """append_many for details given as the texts `_canonical` writes (string keys);
    returns how many entries it wrote.

    Why: the outbox writes one "send" line per delivered record, thousands a minute
    while a backlog drains, and there json.dumps, json.loads and json.dumps again per
    line (and an AuditEntry nobody read) were half the cost of marking a record
    delivered. The rows, their hashes and the chain are byte for byte those append_many
    writes for the same details (tests/store/test_audit_chain_fast.py). A text that is
    not canonical would fail `verify`, never pass unseen.
    """
    if not items:
        return 0
    what = AuditAction(action).value
    if conn.in_transaction:
        return len(_chain(conn, what, actor, items))
    with transaction(conn):
        return len(_chain(conn, what, actor, items))


def _scalar(value: object) -> str | None:
    """A scalar as json.dumps writes it (ensure_ascii=False); None for anything else
    (subclasses included: json writes an IntEnum as its number, a StrEnum as its text)."""
    kind = type(value)
    if kind is str:
        return json_string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return _float(value)
    return None


def _value(value: object) -> str:
    """Any value as json.dumps writes it in the canonical form: scalars without its
    set-up, anything else by json.dumps itself."""
    text = _scalar(value)
    if text is None:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text


def _float(value: float) -> str:
    """A float as json.dumps writes it (allow_nan, its default)."""
    if value != value:  # noqa: PLR0124 - NaN is the one value not equal to itself
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _chain(conn: sqlite3.Connection, action: str, actor: str,
           items: Sequence[tuple[int | None, str]],
           hashed: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """Link entries with these canonical details (stored as given; hashed as `hashed`
    where given) onto the end of the chain, inside the caller's transaction: the head
    read once, the rows written with one executemany, the head written once. Returns
    the rows written.

    Each hash is over the text `entry_hash` makes (sorted keys, no spaces), composed
    here from pieces encoded once per batch, since action, actor and time are the same
    for all of it: json.dumps of the whole entry per line was most of its cost.
    """
    actor = (actor or "").strip()[:200] or "unknown"
    head = conn.execute("SELECT seq, sha256 FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq = 0 if head is None else int(head["seq"])
    prev = GENESIS if head is None else str(head["sha256"])
    at = now()
    # The keys in sorted order: action, actor, at, detail, dossier_id, prev_sha256, seq.
    lead = (f'{{"action":{json_string(action)},"actor":{json_string(actor)},'
            f'"at":{_value(at)},"detail":')
    rows: list[tuple[Any, ...]] = []
    for n, (dossier_id, text) in enumerate(items):
        seq += 1
        dossier = int.__repr__(dossier_id) if type(dossier_id) is int else _value(dossier_id)
        body = (f'{lead}{text if hashed is None else hashed[n]},"dossier_id":{dossier},'
                f'"prev_sha256":{json_string(prev)},"seq":{seq}}}')
        sha = hashlib.sha256(body.encode("utf-8")).hexdigest()
        rows.append((seq, at, actor, action, dossier_id, text, prev, sha))
        prev = sha
    conn.executemany(
        "INSERT INTO audit_log(seq, at, actor, action, dossier_id, detail_json, prev_sha256, "
        "sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("INSERT INTO audit_head(id, seq, sha256) VALUES (1, ?, ?) "
                 "ON CONFLICT(id) DO UPDATE SET seq=excluded.seq, sha256=excluded.sha256",
                 (seq, prev))
    return rows


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

