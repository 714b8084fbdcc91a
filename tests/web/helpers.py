"""Dossiers, scanned papers and jobs made through the product's own functions.

No worker or scanner runs in the web tests: the web only reads what the worker wrote,
so the tests store pages, text and PDFs with the same `records` functions the worker
calls (only the scanner and the OCR engine are left out), and move jobs through the
job queue's own verbs.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from PIL import Image, ImageDraw

from appliance.imaging.pages import assemble_pdf
from appliance.ocr.engine import PageText, TextLine
from appliance.records import dossiers
from appliance.records import pages as page_store
from appliance.store import jobs
from appliance.store.files import FileStore
from appliance.system.config import Config

DPI = 200


def page_image(seed: int, blank: bool = False) -> Image.Image:
    image = Image.new("RGB", (420, 594), "white")
    if not blank:
        draw = ImageDraw.Draw(image)
        draw.rectangle((30, 30, 390, 60), fill="black")
        for i in range(12):
            width = 120 + (seed * 37 + i * 53) % 240
            draw.rectangle((30, 90 + i * 36, 30 + width, 104 + i * 36), fill=(40, 40, 40))
    return image


def page_text(n: int) -> PageText:
    """What OCR might read on the form: a name line and the page number."""
    return PageText(0.1, (TextLine("Họ và tên: Nguyễn Văn An", (0, 0, 1, 1), 0.9, ()),
                          TextLine(f"Trang {n}", (0, 0, 1, 1), 0.9, ())))


def add_scanned_paper(conn: sqlite3.Connection, config: Config, dossier_id: int,
                      title: str = "Tờ khai TK1-TS", pages: int = 2, blank: tuple[int, ...] = (),
                      fields: dict[str, Any] | None = None, finished: bool = True,
                      seed: int = 0) -> int:
    """A paper with `pages` stored pages (PNG + thumbnail), OCR text and, if finished, a PDF.

    Pages listed in `blank` are white, so the page check flags them as the worker would.
    """
    files = FileStore(config.paths.files)
    images = []
    paper_id: int | None = None
    for n in range(1, pages + 1):
        image = page_image(seed * 100 + n, blank=n in blank)
        images.append(image)
        stored = page_store.store_page(conn, files, dossier_id, paper_id, image, title, dpi=DPI)
        paper_id = stored.paper_id
        page_store.set_page_text(conn, stored.page_id, page_text(n))
    assert paper_id is not None, "a paper needs at least one page"
    if finished:
        pdf = assemble_pdf(images, DPI, title=title, author=config.device.agency_name)
        page_store.store_paper_pdf(conn, files, paper_id, pdf, fields or {
            "values": {"full_name": "NGUYỄN VĂN AN", "cccd": "001203004567"},
            "problems": ["birth_date"], "uncertain": ["cccd"],
        })
    return paper_id


def add_job(conn: sqlite3.Connection, dossier_id: int, state: str = "running",
            progress: dict[str, Any] | None = None, error_key: str | None = None,
            params: dict[str, Any] | None = None) -> int:
    job_id = jobs.enqueue(conn, "scan", dossier_id, params or {"source": "adf", "title": "x"})
    update_job(conn, job_id, state, progress or {}, error_key)
    return job_id


def update_job(conn: sqlite3.Connection, job_id: int, state: str,
               progress: dict[str, Any], error_key: str | None = None) -> None:
    """Move a job the way the worker does: claim it, report progress, finish or fail."""
    job = jobs.get(conn, job_id)
    assert job is not None, f"no job {job_id}"
    if state == jobs.JobState.QUEUED:
        assert job.state == jobs.JobState.QUEUED, f"job {job_id} is already {job.state}"
        return
    if job.state == jobs.JobState.QUEUED:
        claimed = jobs.claim_next(conn, os.getpid())
        assert claimed is not None and claimed.id == job_id, "another job was queued first"
    jobs.set_progress(conn, job_id, **progress)
    if state == jobs.JobState.DONE:
        jobs.finish(conn, job_id)
    elif state == jobs.JobState.FAILED:
        jobs.fail(conn, job_id, error_key or "error.generic", error_key or "")


def submitted_dossier(conn: sqlite3.Connection, config: Config, pages: int = 2,
                      blank: tuple[int, ...] = ()) -> int:
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    add_scanned_paper(conn, config, dossier_id, pages=pages, blank=blank)
    dossiers.submit(conn, dossier_id)
    return dossier_id


def public_id(conn: sqlite3.Connection, dossier_id: int) -> str:
    """The id a browser sees for a dossier (its row id never leaves the server)."""
    return str(conn.execute("SELECT public_id FROM dossiers WHERE id=?",
                            (dossier_id,)).fetchone()["public_id"])


def row_id(conn: sqlite3.Connection, public: str) -> int:
    """The row id behind a public id, for tests that look into the tables."""
    return dossiers.by_public_id(conn, public)
