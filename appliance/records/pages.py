"""Storing what the scanner and OCR produce for a paper: its pages, their text, its PDF.

One function per fact, used by the worker and by every test that needs scanned data,
so a page on screen in a test is stored exactly as a scanned one is: the PNG master
(written and fsynced first), its thumbnail, its checks (blank, skew, the scan-time
flags), and only then the row that names it, so a crash leaves either a whole page or
none.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from PIL import Image

from appliance.imaging import pages as imaging
from appliance.imaging.flags import PageFlag
from appliance.ocr.engine import PageText
from appliance.records import audit, dossiers
from appliance.store.db import aad, open_text, seal_text, transaction
from appliance.store.files import FileStore

PNG = ".png"
THUMBNAIL = ".thumb.jpg"
PDF = ".pdf"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredPage:
    """A page committed to the store; `paper_id` is the paper it went into (new or given)."""

    paper_id: int
    page_id: int
    sha256: str
    check: imaging.PageCheck


@dataclass(frozen=True)
class PageRow:
    """A stored page as the OCR and assembly steps need it."""

    id: int
    ordinal: int
    sha256: str
    dpi: int
    text: PageText | None  # None until OCR has read the page


def store_page(conn: sqlite3.Connection, files: FileStore, dossier_id: int,
               paper_id: int | None, image: Image.Image, title: str, *, dpi: int,
               actor: str = "citizen") -> StoredPage:
    """Keep one scanned page for good; starts the paper with its first page.

    A paper exists only once it has a page, so an empty feeder leaves no empty paper.
    The page is checked here (blank, skew, incomplete, too dark or light, cut off, hand
    or lid) and flagged, never dropped or altered:
    the PNG is the page as the scanner delivered it (on white paper where it had
    transparency, in 8 bits where it had 16). Raises ValueError, storing nothing, for an
    image that is no page (no pixels, grey values of no known scale).
    """
    image = imaging.page_image(image)
    image = image if image.mode == "RGB" else image.convert("RGB")
    check = imaging.check_page(image)
    if PageFlag.INCOMPLETE in check.flags:
        # The scanner reported no error: this line and the flag are all anyone gets.
        log.warning("page of dossier %s came incomplete from the scanner: its bottom %d of "
                    "%d rows are the decoder's flat grey (a transfer cut off); kept, "
                    "flagged to scan it again", dossier_id, imaging.incomplete_rows(image),
                    image.height)
    png, thumbnail = imaging.encode_png(image, dpi=dpi), imaging.thumbnail_jpeg(image)
    sha = files.put(png, PNG)
    files.put_derived(sha, THUMBNAIL, thumbnail)
    with transaction(conn):
        # Held again under the row's write lock (FileStore.hold): a removal (erasure,
        # the orphan sweep) that fell between a put finding the same content already
        # stored and this row left the row naming two missing files (red team 8).
        files.hold(sha, PNG, png)
        files.hold(sha, THUMBNAIL, thumbnail)
        if paper_id is None:
            paper_id = dossiers.add_paper(conn, dossier_id, title)
        page_id = dossiers.add_page(conn, paper_id, sha, image.width, image.height, dpi,
                                    check.blank, skew_degrees=check.skew_degrees,
                                    flags=check.flags)
        audit.append(conn, audit.AuditAction.SCAN, actor, dossier_id,
                     {"paper_id": paper_id, "page_id": page_id, "sha256": sha})
    return StoredPage(paper_id, page_id, sha, check)


def place_page(conn: sqlite3.Connection, paper_id: int, page_id: int, ordinal: int) -> int:
    """Put a page of `paper_id` at `ordinal` (1-based, clamped to the paper), the pages
    from there on one place later; the ordinal it got. For an extra image of one page
    (handwritten notes scanned as their own image, Circular 01/2023 Art. 8), which must
    follow the page it belongs to, not the end of the paper."""
    with transaction(conn):
        ids = [int(r[0]) for r in conn.execute(
            "SELECT id FROM pages WHERE paper_id=? ORDER BY ordinal", (paper_id,))]
        if page_id not in ids:
            raise ValueError(f"page {page_id} is not in paper {paper_id}")
        ids.remove(page_id)
        target = min(max(ordinal, 1), len(ids) + 1)
        ids.insert(target - 1, page_id)
        dossiers.renumber(conn, "pages", "paper_id", paper_id, ids)
    return target


def paper_pages(conn: sqlite3.Connection, paper_id: int) -> list[PageRow]:
    rows = conn.execute(
        "SELECT id, ordinal, sha256, dpi, ocr_json FROM pages WHERE paper_id=? ORDER BY ordinal",
        (paper_id,),
    ).fetchall()
    return [PageRow(r["id"], r["ordinal"], r["sha256"], r["dpi"],
                    PageText.from_json(json.loads(open_text(
                        conn, r["ocr_json"], aad("pages", "ocr_json", r["id"]))))
                    if r["ocr_json"] else None)
            for r in rows]


def load_image(files: FileStore, sha256: str) -> Image.Image:
    """A stored page's master image, verified against its hash and fully decoded."""
    image = Image.open(io.BytesIO(files.read(sha256, PNG)))
    image.load()
    return image


def set_page_text(conn: sqlite3.Connection, page_id: int, text: PageText) -> None:
    """Store what OCR read on a page, in the form `PageText.to_json` gives it."""
    conn.execute("UPDATE pages SET ocr_json=?, ocr_seconds=? WHERE id=?",
                 (seal_text(conn, json.dumps(text.to_json(), ensure_ascii=False),
                            aad("pages", "ocr_json", page_id)), text.seconds, page_id))


def masters_pdf(conn: sqlite3.Connection, files: FileStore, paper_id: int,
                author: str) -> bytes | None:
    """The paper's (unsigned) PDF again from its PNG masters in their order, titled as
    the paper; None when it has no page (or no row) left. After any page edit, the
    citizen's or the officer's: one way to make it, so both screens show the same."""
    row = conn.execute("SELECT title FROM papers WHERE id=?", (paper_id,)).fetchone()
    rows = paper_pages(conn, paper_id)
    if row is None or not rows:
        return None
    images = [load_image(files, r.sha256) for r in rows]
    return imaging.assemble_pdf(images, [r.dpi for r in rows], title=row["title"],
                                author=author)


def store_paper_pdf(conn: sqlite3.Connection, files: FileStore, paper_id: int, pdf: bytes,
                    fields: dict[str, Any]) -> str:
    """Keep a paper's PDF with the fields read from it: the file put first, then held
    under the row's write lock as store_page does, so no removal falls between."""
    sha = files.put(pdf, PDF)
    with transaction(conn):
        files.hold(sha, PDF, pdf)
        dossiers.set_paper_result(conn, paper_id, sha, len(pdf), fields)
    return sha


def outdate_pdf(conn: sqlite3.Connection, paper_id: int) -> None:
    """The paper's PDF no longer shows its pages: forgotten with the change that made it
    so, in that change's transaction (a citizen's page edit, an officer's correction).
    Before, a rebuild that failed after the commit (a full disk) left the old PDF, with
    a page taken out still in it, on the review screen and the receipt; now the paper
    has no PDF until it is made again, at once by the caller or by the worker
    (recover_unfinished_papers) once there is space."""
    conn.execute("UPDATE papers SET pdf_sha256=NULL, pdf_size=NULL WHERE id=?", (paper_id,))


def refresh_pdf(conn: sqlite3.Connection, files: FileStore, paper_id: int,
                author: str) -> bool:
    """The paper's PDF again from its masters, its fields left as they are (an officer's
    corrections are in them); False when it has no page left."""
    pdf = masters_pdf(conn, files, paper_id, author)
    if pdf is None:
        return False
    sha = files.put(pdf, PDF)
    with transaction(conn):
        files.hold(sha, PDF, pdf)  # as store_paper_pdf
        conn.execute("UPDATE papers SET pdf_sha256=?, pdf_size=? WHERE id=?",
                     (sha, len(pdf), paper_id))
    return True


@dataclass(frozen=True)
class UnfinishedPaper:
    """A paper with pages and no PDF. In an open dossier: left so by a job that died
    between storing pages and building the PDF, or by a citizen's edit whose rebuild
    failed. In a submitted one: by an officer's correction whose rebuild failed, so
    only its PDF is missing (its fields hold the officer's corrections)."""

    id: int
    title: str
    submitted: bool


def unfinished_papers(conn: sqlite3.Connection) -> list[UnfinishedPaper]:
    """Papers of open or submitted dossiers with pages but no PDF (see UnfinishedPaper)."""
    rows = conn.execute(
        "SELECT p.id, p.title, d.status FROM papers p JOIN dossiers d ON d.id = p.dossier_id "
        "WHERE p.pdf_sha256 IS NULL AND d.status IN ('open', 'submitted') "
        "AND EXISTS (SELECT 1 FROM pages WHERE paper_id = p.id)"
    ).fetchall()
    return [UnfinishedPaper(int(r["id"]), str(r["title"]), r["status"] == "submitted")
            for r in rows]
