"""Dossiers, their papers and pages, and the step that turns a checked dossier into a record.

Lifecycle: open (citizen scanning) → submitted (citizen done) → signed (an officer
checked the papers against the originals; codes issued, record and outbox row
written in one transaction). What a citizen scans counts only after that sign-off
(Decision 1333: citizens are not among those who digitize).

Personal columns (a paper's fields, a page's OCR text, the record body) are sealed
with the installation key on write and opened on read here, through `store.db`, so
callers see clear values and the database file holds none (issue 8). Sign-off writes
its audit line in the same transaction and carries the dossier's audit trail in the
record body, which is how the trail reaches the central office.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance.imaging.flags import PageFlag, format_flags, is_skewed, parse_flags
from appliance.records import audit, codes, procedures, signing
from appliance.records.errors import (
    DossierNotFound,
    InvalidState,
    NothingScanned,
    UnknownProcedure,
)
from appliance.store import outbox
from appliance.store.db import aad, now, open_text, seal_text, transaction
from appliance.system.config import Config
from appliance.system.text import one_line

RECORD_SCHEMA = signing.RECORD_SCHEMA  # where it always was, for existing importers


@dataclass(frozen=True)
class Page:
    id: int
    ordinal: int
    sha256: str
    width: int
    height: int
    dpi: int
    blank: bool
    ocr_text: str | None
    ocr_seconds: float | None
    skew_degrees: float | None = None  # None for pages stored before skew was measured
    flags: tuple[PageFlag, ...] = ()  # scan-time flags (too dark, cut off...), in order

    @property
    def skewed(self) -> bool:
        """Crooked enough for the officer to look at (imaging decides how much is enough)."""
        return is_skewed(self.skew_degrees)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every reason to look at this page again, most urgent first, as the names
        the screens turn into message keys (kiosk.<name>_page, kiosk.<name>_note):
        the scan-time flags, then blank, then skewed."""
        return (tuple(f.value for f in self.flags) + (("blank",) if self.blank else ())
                + (("skewed",) if self.skewed else ()))


@dataclass(frozen=True)
class Paper:
    id: int
    ordinal: int
    title: str
    result_code: str | None
    pdf_sha256: str | None
    pdf_size: int | None
    fields: dict[str, Any]
    pages: tuple[Page, ...]


@dataclass(frozen=True)
class Dossier:
    id: int
    code: str
    procedure_code: str
    status: str
    language: str
    created_at: float
    signed_by: str | None
    papers: tuple[Paper, ...]
    record_id: str | None
    delivery: str | None  # outbox state of its record, if any
    erased_at: float | None = None  # erased on the citizen's request (records/erasure.py)
    purged_at: float | None = None  # local copies purged after delivery + retention
    public_id: str | None = None  # unguessable name for URLs (secrets.token_urlsafe)

    @property
    def page_count(self) -> int:
        return sum(len(p.pages) for p in self.papers)


def create(conn: sqlite3.Connection, config: Config, procedure_code: str,
           language: str = "vi") -> int:
    """Open a dossier and give it its code at once: the code is the receipt number."""
    if procedures.find(procedure_code) is None:
        raise UnknownProcedure(f"unknown procedure {procedure_code!r}")
    at = now()
    with transaction(conn):
        code = codes.next_dossier_code(conn, config.device, config.codes, at)
        cur = conn.execute(
            "INSERT INTO dossiers(code, procedure_code, status, language, created_at, "
            "public_id) VALUES (?, ?, 'open', ?, ?, ?)",
            (code, procedure_code, language, at, secrets.token_urlsafe(16)),
        )
    return int(cur.lastrowid or 0)


def _pages(conn: sqlite3.Connection, paper_id: int) -> tuple[Page, ...]:
    rows = conn.execute(
        "SELECT * FROM pages WHERE paper_id=? ORDER BY ordinal", (paper_id,)
    ).fetchall()
    out = []
    # Imported here: the engine module loads onnxruntime, which the web process (the
    # main reader of dossiers) must not carry just to show a page's text.
    from appliance.ocr.engine import PageText

    for r in rows:
        text = (PageText.from_json(json.loads(open_text(
            conn, r["ocr_json"], aad("pages", "ocr_json", r["id"])))).text
            if r["ocr_json"] else None)
        out.append(Page(r["id"], r["ordinal"], r["sha256"], r["width"], r["height"], r["dpi"],
                        bool(r["blank"]), text, r["ocr_seconds"], r["skew_degrees"],
                        parse_flags(r["flags"])))
    return tuple(out)


def get(conn: sqlite3.Connection, dossier_id: int) -> Dossier:
    row = conn.execute("SELECT * FROM dossiers WHERE id=?", (dossier_id,)).fetchone()
    if row is None:
        raise DossierNotFound(f"dossier {dossier_id} not found")
    papers = tuple(
        Paper(p["id"], p["ordinal"], p["title"], p["result_code"], p["pdf_sha256"],
              p["pdf_size"], paper_fields(conn, p["id"], p["fields_json"]),
              _pages(conn, p["id"]))
        for p in conn.execute(
            "SELECT * FROM papers WHERE dossier_id=? ORDER BY ordinal", (dossier_id,)
        ).fetchall()
    )
    rec = conn.execute(
        "SELECT r.record_id, o.state FROM records r LEFT JOIN outbox o USING (record_id) "
        "WHERE r.dossier_id=? ORDER BY r.id DESC LIMIT 1",
        (dossier_id,),
    ).fetchone()
    return Dossier(row["id"], row["code"], row["procedure_code"], row["status"],
                   row["language"], row["created_at"], row["signed_by"], papers,
                   rec["record_id"] if rec else None, rec["state"] if rec else None,
                   row["erased_at"], row["purged_at"], row["public_id"])


def by_public_id(conn: sqlite3.Connection, public_id: str) -> int:
    """The row id of the dossier a browser names by its public id."""
    row = conn.execute("SELECT id FROM dossiers WHERE public_id=?", (public_id,)).fetchone()
    if row is None:
        raise DossierNotFound("no dossier with that public id")
    return int(row["id"])


def public_id_of(conn: sqlite3.Connection, dossier_id: int) -> str | None:
    """The public id of a dossier, the only id of it a browser may be told (issue 8)."""
    row = conn.execute("SELECT public_id FROM dossiers WHERE id=?", (dossier_id,)).fetchone()
    return str(row["public_id"]) if row is not None and row["public_id"] else None


def paper_fields(conn: sqlite3.Connection, paper_id: int, stored: str) -> dict[str, Any]:
    """A paper's fields from their (sealed) column value."""
    value = json.loads(open_text(conn, stored, aad("papers", "fields_json", paper_id)))
    return value if isinstance(value, dict) else {}


def list_ids(conn: sqlite3.Connection, status: str | None = None, limit: int = 50) -> list[int]:
    if status:
        rows = conn.execute("SELECT id FROM dossiers WHERE status=? ORDER BY id DESC LIMIT ?",
                            (status, limit))
    else:
        rows = conn.execute("SELECT id FROM dossiers ORDER BY id DESC LIMIT ?", (limit,))
    return [r["id"] for r in rows.fetchall()]


def add_paper(conn: sqlite3.Connection, dossier_id: int, title: str) -> int:
    """Start a paper; called by the worker as a scan begins (inside its transaction)."""
    ordinal = conn.execute(
        "SELECT COALESCE(MAX(ordinal), 0) + 1 FROM papers WHERE dossier_id=?", (dossier_id,)
    ).fetchone()[0]
    cur = conn.execute(
        "INSERT INTO papers(dossier_id, ordinal, title, created_at) VALUES (?, ?, ?, ?)",
        (dossier_id, ordinal, title, now()),
    )
    return int(cur.lastrowid or 0)


def add_page(conn: sqlite3.Connection, paper_id: int, sha256: str, width: int, height: int,
             dpi: int, blank: bool, *, skew_degrees: float | None = None,
             flags: tuple[PageFlag, ...] = ()) -> int:
    """The row of a page whose file is already stored; `records.pages.store_page` is
    the one caller that also writes the file, and the one the worker uses."""
    ordinal = conn.execute(
        "SELECT COALESCE(MAX(ordinal), 0) + 1 FROM pages WHERE paper_id=?", (paper_id,)
    ).fetchone()[0]
    cur = conn.execute(
        "INSERT INTO pages(paper_id, ordinal, sha256, width, height, dpi, blank, skew_degrees, "
        "flags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (paper_id, ordinal, sha256, width, height, dpi, int(blank), skew_degrees,
         format_flags(flags), now()),
    )
    return int(cur.lastrowid or 0)


def set_paper_result(conn: sqlite3.Connection, paper_id: int, pdf_sha256: str, pdf_size: int,
                     fields: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE papers SET pdf_sha256=?, pdf_size=?, fields_json=? WHERE id=?",
        (pdf_sha256, pdf_size,
         seal_text(conn, json.dumps(fields, ensure_ascii=False),
                   aad("papers", "fields_json", paper_id)), paper_id),
    )


def submit(conn: sqlite3.Connection, dossier_id: int) -> None:
    with transaction(conn):
        dossier = get(conn, dossier_id)
        if dossier.status != "open":
            raise InvalidState(f"dossier {dossier.code} is {dossier.status}, not open")
        if dossier.page_count == 0 or any(p.pdf_sha256 is None for p in dossier.papers):
            raise NothingScanned(f"dossier {dossier.code} has no finished paper")
        conn.execute("UPDATE dossiers SET status='submitted', submitted_at=? WHERE id=?",
                     (now(), dossier_id))


def renumber(conn: sqlite3.Connection, table: str, parent: str, parent_id: int,
             order: Sequence[int] | None = None) -> None:
    """Ordinals 1..n of `table`'s rows under `parent_id` (pages of a paper, papers of
    a dossier), in `order` (row ids) or their current order. Each row first takes its
    own negated id, unique and unlike any 1..n, so the UNIQUE (parent, ordinal)
    constraint never sees two rows on one number mid-way. The one renumbering every
    page edit uses (the citizen's, the officer's, an extra image placed), inside the
    caller's transaction."""
    ids = list(order) if order is not None else [int(r[0]) for r in conn.execute(
        f"SELECT id FROM {table} WHERE {parent}=? ORDER BY ordinal", (parent_id,))]
    conn.execute(f"UPDATE {table} SET ordinal = -id WHERE {parent}=?", (parent_id,))
    for n, row_id in enumerate(ids, start=1):
        conn.execute(f"UPDATE {table} SET ordinal=? WHERE id=?", (n, row_id))


def cancel(conn: sqlite3.Connection, dossier_id: int) -> None:
    with transaction(conn):
        dossier = get(conn, dossier_id)
        if dossier.status not in ("open", "submitted"):
            raise InvalidState(f"dossier {dossier.code} is {dossier.status}")
        conn.execute("UPDATE dossiers SET status='cancelled' WHERE id=?", (dossier_id,))


def new_record_id(at: float | None = None) -> str:
    """A fresh record id: a UUID version 7 (RFC 9562), its first 48 bits the time in ms.

    Why time-ordered and not uuid4: the central office indexes records by (device,
    record id). Random ids land on a random page of that index each, so every group
    commit rewrote most of the index (34 µs per record at 10,000 records, 59 µs at
    30,000, growing with the table); ids that grow with time append at each device's
    end of it (14-19 µs). The other 74 bits stay random, so two devices, or two
    sign-offs in one millisecond, never meet.
    """
    ms = int((time.time() if at is None else at) * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) \
        | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def sign_off(conn: sqlite3.Connection, config: Config, dossier_id: int, officer: str, *,
             sign_results: bool = True) -> str:
    """Issue the result codes and write the record and its outbox row atomically.

    Either all of it commits or nothing does: a crash here leaves a submitted dossier
    that can be signed again, never a code without a record or a record without its
    place in the outbox. First each paper's signed PDF/A and metadata are built and
    stored (records/result.py; `sign_results=False` keeps the stored PDFs, for tests
    whose PDFs are stand-ins), and the record names the signed PDFs' sha256.
    """
    from appliance.records import result  # result builds on records.pages, which imports us

    # As the screens clean it (system.text), for every caller: an NFD name was signed
    # and printed decomposed, a lone surrogate failed deep in the PDF writer.
    officer = one_line(officer)
    if not officer:
        raise InvalidState("an officer's name is required to sign off")
    at = now()
    record_id = new_record_id()
    with result.issuing(conn, config, dossier_id, officer, at,
                        enabled=sign_results) as issued, transaction(conn):
        dossier = get(conn, dossier_id)
        if dossier.status != "submitted":
            raise InvalidState(f"dossier {dossier.code} is {dossier.status}, not submitted")
        result.apply(conn, issued)
        dossier = get(conn, dossier_id)  # the papers now name their signed PDFs
        result_codes = {p.id: codes.result_code(config.codes, dossier.code, p.ordinal)
                        for p in dossier.papers}
        for paper_id, code in result_codes.items():
            conn.execute("UPDATE papers SET result_code=? WHERE id=?", (code, paper_id))
        audit.append(conn, audit.AuditAction.SIGN, officer, dossier_id,
                     {"record_id": record_id, "dossier_code": dossier.code,
                      "result_codes": sorted(result_codes.values())})
        trail = [e.as_dict() for e in audit.entries(conn, dossier_id)]
        record = signing.encode(signing.record_body(
            dossier, record_id=record_id, device=config.device, result_codes=result_codes,
            officer=officer, signed_at=at, audit=trail,
            documents={i.paper_id: i.document for i in issued if i.document is not None}))
        result.check_record_size(record.body_json, config, dossier.code)
        conn.execute(
            "INSERT INTO records(record_id, dossier_id, body_json, sha256, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (record_id, dossier_id,
             seal_text(conn, record.body_json, aad("records", "body_json", record_id)),
             record.sha256, at),
        )
        outbox.enqueue(conn, record_id)
        conn.execute(
            "UPDATE dossiers SET status='signed', signed_at=?, signed_by=? WHERE id=?",
            (at, officer, dossier_id),
        )
    return record_id


def record_of(conn: sqlite3.Connection, record_id: str) -> signing.EncodedRecord:
    """A signed record exactly as committed (the bytes the sync service sends)."""
    row = conn.execute("SELECT body_json, sha256 FROM records WHERE record_id=?",
                       (record_id,)).fetchone()
    if row is None:
        raise DossierNotFound(f"record {record_id} not found")
    return signing.EncodedRecord(
        open_text(conn, row["body_json"], aad("records", "body_json", record_id)), row["sha256"])
