"""What the kiosk screens and the JSON API both do, written once.

The kiosk posts forms and the API takes JSON, but asking for a scan, describing a
job or a dossier must give the same answer on both, or a citizen would see one thing
and the lead's end-to-end tests another.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from flask import url_for

from appliance.records import dossiers, procedures
from appliance.records.dossiers import Dossier
from appliance.store import jobs
from appliance.store.db import get_state, transaction
from appliance.store.jobs import Job, JobState
from appliance.web.errors import WebError
from appliance.web.i18n import t

SOURCES: tuple[str, ...] = ("flatbed", "adf")
# The worker beats every loop (~0.3 s idle) but not while a long page is being read;
# OCR of one page can take 15 s+ on a Pi, so only a much longer silence is a fault.
WORKER_STALE_SECONDS = 60.0


def dossier_json(d: Dossier) -> dict[str, Any]:
    return {
        "id": d.id,
        "code": d.code,
        "procedure": d.procedure_code,
        "status": d.status,
        "language": d.language,
        "created_at": d.created_at,
        "signed_by": d.signed_by,
        "record_id": d.record_id,
        "delivery": d.delivery,
        "papers": [
            {
                "id": p.id,
                "ordinal": p.ordinal,
                "title": p.title,
                "result_code": p.result_code,
                "pdf_sha256": p.pdf_sha256,
                "pdf_url": url_for("api.paper_pdf", sha=p.pdf_sha256) if p.pdf_sha256 else None,
                "fields": p.fields,
                "pages": [
                    {
                        "ordinal": pg.ordinal,
                        "sha256": pg.sha256,
                        "blank": pg.blank,
                        "width": pg.width,
                        "height": pg.height,
                        "dpi": pg.dpi,
                        "ocr_text": pg.ocr_text,
                        "thumbnail_url": url_for("api.page_thumbnail", sha=pg.sha256),
                        "image_url": url_for("api.page_image", sha=pg.sha256),
                    }
                    for pg in p.pages
                ],
            }
            for p in d.papers
        ],
    }


def _next_title(dossier: Dossier) -> str:
    """Name a new paper after the procedure's list, so the officer knows what it is.

    Titles are Vietnamese whatever the screen language: they go into the record.
    """
    proc = procedures.find(dossier.procedure_code)
    expected = proc.papers if proc else ()
    n = len(dossier.papers)
    if n < len(expected):
        return expected[n][0]
    return f"Giấy tờ số {n + 1}"


def start_scan(conn: sqlite3.Connection, dossier_id: int, source: Any,
               paper_id: Any = None) -> int:
    """Queue a scan for the worker; refuse a second one while one is queued or running.

    The check and the insert share one write transaction so two quick taps (or two
    clients) cannot queue two scans of the same feeder.
    """
    if source not in SOURCES:
        raise WebError("error.bad_source", 400)
    if paper_id is not None and (isinstance(paper_id, bool) or not isinstance(paper_id, int)):
        raise WebError("error.bad_paper", 400)
    with transaction(conn):
        dossier = dossiers.get(conn, dossier_id)
        if dossier.status != "open":
            raise WebError("error.invalid_state", 409)
        if jobs.active_for_dossier(conn, dossier_id) is not None:
            raise WebError("error.job_active", 409)
        params: dict[str, Any] = {"source": source}
        if paper_id is not None:
            paper = next((p for p in dossier.papers if p.id == paper_id), None)
            if paper is None:
                raise WebError("error.bad_paper", 400)
            params.update(paper_id=paper_id, title=paper.title)
        else:
            params["title"] = _next_title(dossier)
        return jobs.enqueue(conn, "scan", dossier_id, params)


def latest_job(conn: sqlite3.Connection, dossier_id: int) -> Job | None:
    row = conn.execute(
        "SELECT * FROM jobs WHERE dossier_id=? ORDER BY id DESC LIMIT 1", (dossier_id,)
    ).fetchone()
    return Job.from_row(row) if row else None


def retry_paper_id(conn: sqlite3.Connection, job: Job) -> int | None:
    """The paper a failed scan was filling, so "scan on" appends to it.

    The one named in its params, else the one its progress names (the worker writes
    the paper id with every progress report). None means the scan failed before the
    first page: start a fresh paper.
    """
    for paper_id in (job.params.get("paper_id"), job.progress.get("paper_id")):
        if isinstance(paper_id, int):
            return paper_id
    return None


def worker_stalled(conn: sqlite3.Connection, at: float | None = None) -> bool:
    """True when the worker has published a heartbeat but not recently.

    A queued scan then waits for nobody, and the citizen should be told to ask for
    help instead of watching a spinner. No heartbeat at all means "not known yet"
    (first start), which is not reported as a fault.
    """
    found = get_state(conn, "worker.heartbeat")
    if found is None:
        return False
    try:
        beat = float(found[0])
    except ValueError:
        return False
    return (time.time() if at is None else at) - beat > WORKER_STALE_SECONDS


def job_message(job: Job, stalled: bool = False) -> str:
    """One sentence for the citizen: what is happening now, or what to do next."""
    if job.state == JobState.QUEUED and stalled:
        return t("job.worker_stalled")
    if job.state == JobState.FAILED:
        return t(job.error_key or "error.generic")
    p = job.progress
    if job.state == JobState.DONE:
        return t("job.done", pages=p.get("pages", 0))
    step = p.get("step")
    if step == "scanning":
        return t("job.scanning", pages=p.get("pages", 0))
    if step == "reading":
        return t("job.reading", page=p.get("page", 0), pages=p.get("pages", 0))
    if step == "assembling":
        return t("job.assembling")
    return t("job.queued")


def job_json(job: Job, stalled: bool = False) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "dossier_id": job.dossier_id,
        "state": job.state.value,
        "progress": job.progress,
        "error_key": job.error_key,
        "message": job_message(job, stalled),
    }
