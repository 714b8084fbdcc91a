"""A citizen's corrections to their own open dossier: delete a page, move it, start again.

A crooked or wrong page must be fixable without cancelling the whole dossier, but the
rules that keep a dossier whole still hold: only an *open* dossier changes, never while
a scan job is queued or running for it (the worker is then writing the same paper),
ordinals stay 1..n with no gap, and a paper's PDF and fields always describe exactly
the pages it holds, so a paper is rebuilt from its stored masters after every change.
A paper left with no page is removed (a paper exists only once it has a page). The
stored image files are kept: the file store is content-addressed and shared.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from appliance.records import audit, dossiers, pages
from appliance.records.errors import InvalidState, RecordsError, ScanInProgress
from appliance.store import jobs
from appliance.store.db import transaction
from appliance.store.files import FileStore
from appliance.system.config import Config


class PageNotFound(RecordsError):
    """No such page in this dossier (a stale screen, or a forged id)."""

    key = "error.page_not_found"


@dataclass(frozen=True)
class PageRef:
    """Where a page sits: its paper, its place in it, and how many pages that paper has."""

    page_id: int
    paper_id: int
    ordinal: int
    paper_pages: int
    title: str


def locate(conn: sqlite3.Connection, dossier_id: int, page_id: int) -> PageRef:
    """The page `page_id` of dossier `dossier_id`; a page of another dossier is not found."""
    row = conn.execute(
        "SELECT pg.id, pg.paper_id, pg.ordinal, pa.title, "
        "(SELECT COUNT(*) FROM pages WHERE paper_id = pg.paper_id) AS n "
        "FROM pages pg JOIN papers pa ON pa.id = pg.paper_id "
        "WHERE pg.id = ? AND pa.dossier_id = ?", (page_id, dossier_id)).fetchone()
    if row is None:
        raise PageNotFound(f"page {page_id} is not in dossier {dossier_id}")
    return PageRef(int(row["id"]), int(row["paper_id"]), int(row["ordinal"]), int(row["n"]),
                   str(row["title"]))


def _check_editable(conn: sqlite3.Connection, dossier_id: int) -> None:
    row = conn.execute("SELECT status FROM dossiers WHERE id=?", (dossier_id,)).fetchone()
    if row is None or row["status"] != "open":
        raise InvalidState(f"dossier {dossier_id} is not open")
    if jobs.active_for_dossier(conn, dossier_id) is not None:
        raise ScanInProgress(f"dossier {dossier_id} has a scan in progress")


def rebuild_paper(conn: sqlite3.Connection, files: FileStore, config: Config,
                  paper_id: int) -> None:
    """The paper's PDF and fields again from the pages it holds now, in their order.

    The same steps the worker ends a scan with (fields from the stored OCR lines with
    their boxes, page by page, the PDF from the PNG masters), without reading any page
    again; the codes read at scan time cross-check the fields again
    (corrections.derive_fields).
    """
    from appliance.records import catalogue, corrections

    pdf = pages.masters_pdf(conn, files, paper_id, config.device.agency_name)
    if pdf is None:
        return
    row = conn.execute("SELECT fields_json FROM papers WHERE id=?", (paper_id,)).fetchone()
    old = dossiers.paper_fields(conn, paper_id, row["fields_json"])
    fields = corrections.derive_fields(conn, paper_id, None, catalogue.default(), keep=old)
    pages.store_paper_pdf(conn, files, paper_id, pdf, fields)


def delete_page(conn: sqlite3.Connection, files: FileStore, config: Config, dossier_id: int,
                page_id: int) -> int | None:
    """Take a page out of the citizen's open dossier; the paper it left, or None when
    that paper had no other page and went with it."""
    with transaction(conn):
        _check_editable(conn, dossier_id)
        ref = locate(conn, dossier_id, page_id)
        audit.append(conn, audit.AuditAction.CORRECTION, "citizen", dossier_id,
                     {"op": "delete_page", "page_id": page_id, "paper_id": ref.paper_id})
        conn.execute("DELETE FROM pages WHERE id=?", (page_id,))
        if ref.paper_pages == 1:
            conn.execute("DELETE FROM papers WHERE id=?", (ref.paper_id,))
            dossiers.renumber(conn, "papers", "dossier_id", dossier_id)
        else:
            dossiers.renumber(conn, "pages", "paper_id", ref.paper_id)
            pages.outdate_pdf(conn, ref.paper_id)
    if ref.paper_pages == 1:
        return None
    rebuild_paper(conn, files, config, ref.paper_id)
    return ref.paper_id


def move_page(conn: sqlite3.Connection, files: FileStore, config: Config, dossier_id: int,
              page_id: int, offset: int) -> int:
    """Move a page `offset` places (-1 earlier, +1 later) within its paper; the new
    ordinal. Moving past either end leaves it where it is."""
    with transaction(conn):
        _check_editable(conn, dossier_id)
        ref = locate(conn, dossier_id, page_id)
        target = min(max(ref.ordinal + offset, 1), ref.paper_pages)
        if target == ref.ordinal:
            return target
        other = conn.execute("SELECT id FROM pages WHERE paper_id=? AND ordinal=?",
                             (ref.paper_id, target)).fetchone()[0]
        audit.append(conn, audit.AuditAction.CORRECTION, "citizen", dossier_id,
                     {"op": "move_page", "page_id": page_id, "from": ref.ordinal, "to": target})
        conn.execute("UPDATE pages SET ordinal=0 WHERE id=?", (page_id,))
        conn.execute("UPDATE pages SET ordinal=? WHERE id=?", (ref.ordinal, other))
        conn.execute("UPDATE pages SET ordinal=? WHERE id=?", (target, page_id))
        pages.outdate_pdf(conn, ref.paper_id)
    rebuild_paper(conn, files, config, ref.paper_id)
    return target
