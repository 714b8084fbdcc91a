"""`appliance worker`: the only process that opens the scanner; runs scan and OCR jobs.

A scan job is a short pipeline of named steps (scan → OCR → extract → assemble PDF).
Each page is stored (file fsynced, then its row committed) the moment it leaves the
scanner, so a jam, a crash or a kill -9 on page 7 keeps pages 1-6. A failing step
fails the job with a message key the kiosk translates; the stored pages stay.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from appliance.extraction.fields import extract
from appliance.imaging import pages as imaging
from appliance.records import dossiers
from appliance.records.errors import RecordsError
from appliance.store import jobs
from appliance.store.db import connect, set_state, transaction
from appliance.store.errors import DiskFull, StoreError
from appliance.store.files import FileStore
from appliance.system.config import Config

log = logging.getLogger(__name__)

Notify = Callable[[str], Any]


class JobFailed(Exception):
    """A step failed; `key` is what the kiosk shows, the message what the log says."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class ScanOutcome:
    paper_id: int | None
    pages: int
    fault: JobFailed | None


class Worker:
    def __init__(self, config: Config, conn: sqlite3.Connection, ocr: Any | None) -> None:
        self.config = config
        self.conn = conn
        self.files = FileStore(config.paths.files)
        self.ocr = ocr

    # -- step 1: scan, page by page ------------------------------------------------
    def scan(self, job: jobs.Job) -> ScanOutcome:
        from appliance.scanner.device import open_scanner
        from appliance.scanner.errors import ScannerError

        assert job.dossier_id is not None
        paper_id: int | None = job.params.get("paper_id")
        count = 0
        set_state(self.conn, "scanner.state", "busy")
        try:
            with open_scanner(self.config.scanner.device, self.config.scanner.resolution,
                              self.config.scanner.mode) as scanner:
                for image in scanner.scan(job.params.get("source", "flatbed")):
                    paper_id = self._store_page(job, paper_id, image)
                    count += 1
                    jobs.set_progress(self.conn, job.id, step="scanning", pages=count)
            set_state(self.conn, "scanner.state", "ready")
            return ScanOutcome(paper_id, count, None)
        except ScannerError as e:
            set_state(self.conn, "scanner.state", f"error:{e.key}")
            log.warning("scan job %s stopped after %d page(s): %s", job.id, count, e)
            return ScanOutcome(paper_id, count, JobFailed(e.key, str(e)))
        except DiskFull as e:
            set_state(self.conn, "scanner.state", "ready")
            return ScanOutcome(paper_id, count, JobFailed("error.disk_full", str(e)))

    def _store_page(self, job: jobs.Job, paper_id: int | None, image: Image.Image) -> int:
        image = image.convert("RGB")
        png = imaging.encode_png(image, dpi=self._dpi(image))
        sha = self.files.put(png, ".png")
        self.files.put_derived(sha, ".thumb.jpg", imaging.thumbnail_jpeg(image))
        with transaction(self.conn):
            if paper_id is None:
                paper_id = dossiers.add_paper(self.conn, job.dossier_id or 0,
                                              job.params.get("title", ""))
            dossiers.add_page(self.conn, paper_id, sha, image.width, image.height,
                              self._dpi(image), imaging.is_blank(image))
        return paper_id

    def _dpi(self, image: Image.Image) -> int:
        """The resolution the device really used (it may round the requested one up)."""
        dpi = image.info.get("dpi")
        return int(round(dpi[0])) if dpi else self.config.scanner.resolution

    # -- steps 2-4: OCR, extraction, PDF -------------------------------------------
    def finish_paper(self, paper_id: int, title: str, job_id: int | None = None) -> None:
        """OCR the pages still unread, extract fields, and (re)build the paper's PDF;
        progress goes to the job when there is one (recovery at start has none)."""

        def progress(**values: Any) -> None:
            if job_id is not None:
                jobs.set_progress(self.conn, job_id, **values)

        paper_rows = self.conn.execute(
            "SELECT id, sha256, dpi, ocr_json FROM pages WHERE paper_id=? ORDER BY ordinal",
            (paper_id,),
        ).fetchall()
        images: list[Image.Image] = []
        all_lines: list[str] = []
        # least sure character per line; None once any page predates the field
        all_sure: list[float] | None = []
        for n, row in enumerate(paper_rows, start=1):
            image = Image.open(io.BytesIO(self.files.read(row["sha256"], ".png")))
            image.load()
            images.append(image)
            if self.ocr is None:
                continue
            if row["ocr_json"] is None:
                progress(step="reading", page=n, pages=len(paper_rows))
                page_text = self._read(image)
                if page_text is None:
                    continue
                lines = [{"text": ln.text, "box": list(ln.box),
                          "confidence": round(ln.confidence, 4),
                          "min_char_confidence": round(ln.least_sure, 4)}
                         for ln in page_text.lines]
                dossiers.set_page_ocr(self.conn, row["id"], {"lines": lines}, page_text.seconds)
            else:
                lines = json.loads(row["ocr_json"])["lines"]
            all_lines.extend(ln["text"] for ln in lines)
            if all_sure is not None and all("min_char_confidence" in ln for ln in lines):
                all_sure.extend(ln["min_char_confidence"] for ln in lines)
            else:
                all_sure = None
        progress(step="assembling", pages=len(paper_rows))
        fields = extract(all_lines, all_sure).as_dict()
        pdf = imaging.assemble_pdf(images, paper_rows[0]["dpi"],
                                   title=title,
                                   author=self.config.device.agency_name)
        pdf_sha = self.files.put(pdf, ".pdf")
        with transaction(self.conn):
            dossiers.set_paper_result(self.conn, paper_id, pdf_sha, len(pdf), fields)

    def _read(self, image: Image.Image) -> Any | None:
        """OCR one page; a page OCR cannot read is kept, only its text is missing."""
        assert self.ocr is not None
        try:
            return self.ocr.read(image)
        except Exception as e:  # noqa: BLE001 - any OCR failure must not lose the scan
            log.error("OCR failed on a page, page kept without text: %s", e)
            return None

    def run_job(self, job: jobs.Job) -> None:
        log.info("job %s (%s) started for dossier %s", job.id, job.kind, job.dossier_id)
        try:
            if job.kind != "scan":
                raise JobFailed("error.generic", f"unknown job kind {job.kind!r}")
            outcome = self.scan(job)
            if outcome.paper_id is not None:  # a paper exists only once it has a page
                self.finish_paper(outcome.paper_id, job.params.get("title", ""), job.id)
            elif outcome.paper_id is None and outcome.fault is None:
                raise JobFailed("scanner.no_documents", "the scanner returned no page")
            if outcome.fault is not None:
                raise outcome.fault
            jobs.set_progress(self.conn, job.id, step="done", pages=outcome.pages,
                              paper_id=outcome.paper_id)
            jobs.finish(self.conn, job.id)
            log.info("job %s done: %d page(s)", job.id, outcome.pages)
        except JobFailed as e:
            jobs.fail(self.conn, job.id, e.key, str(e))
        except (StoreError, RecordsError, OSError) as e:
            key = "error.disk_full" if isinstance(e, DiskFull) else "error.generic"
            log.exception("job %s failed", job.id)
            jobs.fail(self.conn, job.id, key, str(e))

    def recover_unfinished_papers(self) -> int:
        """Finish papers whose pages were stored but whose job died before the PDF
        (a kill -9 or power cut mid-OCR): the pages are the citizen's, keep them whole."""
        rows = self.conn.execute(
            "SELECT p.id, p.title FROM papers p JOIN dossiers d ON d.id = p.dossier_id "
            "WHERE p.pdf_sha256 IS NULL AND d.status = 'open' "
            "AND EXISTS (SELECT 1 FROM pages WHERE paper_id = p.id)"
        ).fetchall()
        for row in rows:
            log.warning("finishing paper %s left unfinished by an interrupted job", row["id"])
            try:
                self.finish_paper(row["id"], row["title"])
            except (StoreError, OSError) as e:
                log.error("paper %s could not be finished: %s", row["id"], e)
        return len(rows)


def load_ocr(config: Config) -> Any | None:
    if not config.ocr.enabled:
        return None
    from appliance.ocr.engine import OcrEngine

    try:
        return OcrEngine.load(None, threads=config.ocr.threads,
                              recognizer=config.ocr.recognizer)
    except Exception as e:  # noqa: BLE001 - scanning must work without OCR
        log.error("OCR engine unavailable, pages will be stored without text: %s", e)
        return None


def run_worker(config: Config, stop: threading.Event, notify: Notify | None = None) -> None:
    if config.scanner.sane_config_dir:
        # sane.init() reads this once per process: set before the first scanner use.
        os.environ["SANE_CONFIG_DIR"] = config.scanner.sane_config_dir
    conn = connect(config.paths.database)
    abandoned = jobs.fail_abandoned(conn)
    if abandoned:
        log.warning("%d job(s) left running by a previous worker were failed", abandoned)
    set_state(conn, "scanner.state", "ready")
    worker = Worker(config, conn, load_ocr(config))
    set_state(conn, "ocr.state", "ready" if worker.ocr is not None else "unavailable")
    worker.recover_unfinished_papers()
    if notify:
        notify("READY=1")
    log.info("worker ready")
    while not stop.is_set():
        if notify:
            notify("WATCHDOG=1")
        set_state(conn, "worker.heartbeat", str(time.time()))
        job = jobs.claim_next(conn, os.getpid())
        if job is None:
            stop.wait(0.3)
            continue
        worker.run_job(job)
    if notify:
        notify("STOPPING=1")
    conn.close()
