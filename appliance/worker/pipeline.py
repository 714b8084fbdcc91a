"""A scan job as named steps: scan → store page → OCR → extract → assemble.

Each page is stored (file fsynced, then its row committed) the moment it leaves the
scanner, so a jam, a crash or a kill -9 on page 7 keeps pages 1-6. A scanner fault
ends the batch, not the job: the pages kept are still read and assembled into the
paper's PDF, then the job fails with the fault's message key, which the kiosk
translates. `run_job` is the one failure path: whatever a step raises becomes a
`JobFailed`, is logged once and fails the job. The scan step puts the scanner's state
right in its `finally`, whatever ended the batch.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from PIL import Image

from appliance.extraction.fields import extract_pages
from appliance.imaging import pages as imaging
from appliance.ocr.engine import Engine, PageText
from appliance.records import pages
from appliance.records.errors import RecordsError
from appliance.store import jobs, state
from appliance.store.errors import StoreError, is_disk_full
from appliance.store.jobs import JobStep
from appliance.store.state import ScannerState
from appliance.worker import test_scan
from appliance.worker.context import Progress, ScannedPaper, ScanRequest, Tools

if TYPE_CHECKING:
    from appliance.scanner.device import Scanner
from appliance.worker.errors import FailureKey, JobFailed

log = logging.getLogger(__name__)

READING_REPORT_S = 1.0  # how often a page being read reports its progress


# -- step 1: scan ---------------------------------------------------------------------
class _CancelFlag:
    """The job's "stop" request as the scanner's cancel token: read at page boundaries."""

    def __init__(self, tools: Tools, job_id: int) -> None:
        self._tools = tools
        self._job_id = job_id

    def is_set(self) -> bool:
        return jobs.cancel_requested(self._tools.conn, self._job_id)


def scan(tools: Tools, request: ScanRequest, progress: Progress,
         paper_id: Callable[[], int | None]) -> Iterator[Image.Image]:
    """Pages as they leave the scanner; a fault is raised after the pages already given.
    While a page is read, each progress report keeps the job, heartbeat and watchdog
    alive, so a slow page never looks like a stalled worker."""
    from appliance.scanner.device import PageProgress, open_scanner  # SANE: worker only
    from appliance.scanner.settings import preset

    sc = tools.config.scanner
    try:
        what = preset(request.preset).settings if request.preset else request.source
    except ValueError as e:
        raise JobFailed(FailureKey.GENERIC, str(e)) from e

    last = [0.0]

    def reading(page: PageProgress) -> None:
        # A committed row is an fsync on the SD card: once a second is plenty.
        if time.monotonic() - last[0] >= READING_REPORT_S:
            last[0] = time.monotonic()
            fraction = page.fraction
            progress(JobStep.SCANNING, paper_id(), page=page.page,
                     **({} if fraction is None else {"percent": round(100 * fraction)}))

    # The scanner the technician chose on the panel (its stable identity), else the
    # configured one.
    wanted = state.chosen_scanner(tools.conn) or sc.device
    with open_scanner(wanted, sc.resolution, sc.mode) as scanner:
        publish_capabilities(tools, scanner)
        yield from scanner.scan(what, cancel=_CancelFlag(tools, request.job_id),
                                progress=reading)


def publish_capabilities(tools: Tools, scanner: Scanner) -> None:
    """Tell the web what the opened device can do (sources, duplex, resolutions, sizes,
    the presets it honours), so the screens offer only those. Never fails the scan:
    a device that cannot say keeps the screens on their fixed presets."""
    from appliance.scanner.errors import ScannerError

    try:
        state.set_scanner_capabilities(tools.conn, scanner.capabilities().to_dict())
    except (ScannerError, sqlite3.Error, OSError, ValueError) as e:
        log.warning("scanner capabilities not published: %s", e)


def scan_into_paper(tools: Tools, request: ScanRequest, progress: Progress) -> ScannedPaper:
    """Steps 1 and 2: each page from `scan` goes straight to `store_page`."""
    from appliance.scanner.errors import ScannerCancelled, ScannerError

    paper_id = request.paper_id
    count = 0
    fault: ScannerError | None = None
    after = request.after_ordinal
    state.set_scanner(tools.conn, ScannerState.BUSY)
    try:
        # late binding intended: progress names the paper the next page joins
        for image in scan(tools, request, progress, lambda: paper_id):  # noqa: B023
            paper_id, page_id = store_page(tools, request, paper_id, image)
            if after is not None:  # an extra image of one page: right after that page
                after = pages.place_page(tools.conn, paper_id, page_id, after + 1)
            count += 1
            progress(JobStep.SCANNING, paper_id, pages=count)
    except ScannerError as e:
        fault = e  # logged once, by run_job, when the fault fails the job
    finally:
        # Whatever ended the batch (the last page, a fault, a full disk, a storage
        # error, a cancel), the scanner is no longer busy: free during OCR, and shown so
        # before the job is marked done or failed. A fault stays shown until the next scan.
        try:
            if fault is None or isinstance(fault, ScannerCancelled):
                state.set_scanner(tools.conn, ScannerState.READY)
            else:
                state.set_scanner(tools.conn, ScannerState.ERROR, fault.key)
        except sqlite3.Error as e:  # a full disk: the job's own failure says so
            if not is_disk_full(e):
                raise
            log.warning("scanner state not written, the data disk is full: %s", e)
    return ScannedPaper(paper_id, count,
                        None if fault is None else JobFailed(fault.key, str(fault)))


# -- step 2: store page ---------------------------------------------------------------
def store_page(tools: Tools, request: ScanRequest, paper_id: int | None,
               image: Image.Image) -> tuple[int, int]:
    """Store one page; (the paper it went into, the page's id)."""
    stored = pages.store_page(tools.conn, tools.files, request.dossier_id, paper_id, image,
                              request.title, dpi=_dpi(tools, image))
    if stored.check.skewed:
        log.info("page %s of paper %s is %.1f degrees off straight; flagged for the officer",
                 stored.page_id, stored.paper_id, stored.check.skew_degrees)
    if stored.check.flags:
        log.info("page %s of paper %s flagged for whoever scans it: %s", stored.page_id,
                 stored.paper_id, ", ".join(f.value for f in stored.check.flags))
    return stored.paper_id, stored.page_id


def _dpi(tools: Tools, image: Image.Image) -> int:
    """The resolution the device really used (it may round the requested one up)."""
    dpi = image.info.get("dpi")
    return int(round(dpi[0])) if dpi else tools.config.scanner.resolution


# -- step 3: OCR ----------------------------------------------------------------------
def read_page(engine: Engine, image: Image.Image) -> PageText | None:
    """OCR one page; a page OCR cannot read is kept, only its text is missing."""
    try:
        return engine.read(image)
    except Exception as e:  # noqa: BLE001 - any OCR failure must not lose the scan
        log.error("OCR failed on a page, page kept without text: %s", e)
        return None


# -- step 4: extract ------------------------------------------------------------------
def extract_fields(texts: list[PageText],
                   images: list[Image.Image] | None = None) -> dict[str, object]:
    """Fields of the paper from all its pages' lines with their boxes, so labels and
    values are matched by position (two columns on one row, a value under its label).
    Each line's least sure character flags doubtful values. The QR codes and barcodes
    on the page images are read too, and a CCCD QR cross-checks the fields; stored
    with them ("qr")."""
    result = extract_pages([text.lines for text in texts])
    if images:
        from appliance.extraction import qr

        try:
            result = qr.apply(result, images)
        except Exception as e:  # noqa: BLE001 - an unreadable code must not lose the scan
            log.error("QR codes not read on a paper: %s", e)
    return result.as_dict()


# -- step 5: assemble -----------------------------------------------------------------
def assemble(tools: Tools, images: list[Image.Image], dpi: int | list[int],
             title: str) -> bytes:
    return imaging.assemble_pdf(images, dpi, title=title,
                                author=tools.config.device.agency_name)


def finish_paper(tools: Tools, paper_id: int, title: str, progress: Progress) -> None:
    """Steps 3-5 for a paper: OCR the pages still unread, extract fields, (re)build the
    PDF. Also run at start-up for papers an interrupted job left without a PDF."""
    rows = pages.paper_pages(tools.conn, paper_id)
    images: list[Image.Image] = []
    texts: list[PageText] = []
    for n, row in enumerate(rows, start=1):
        image = pages.load_image(tools.files, row.sha256)
        images.append(image)
        if tools.ocr is None:
            continue
        text = row.text
        if text is None:
            progress(JobStep.READING, paper_id, page=n, pages=len(rows))
            text = read_page(tools.ocr, image)
            if text is None:
                continue
            pages.set_page_text(tools.conn, row.id, text)
        texts.append(text)
    progress(JobStep.ASSEMBLING, paper_id, pages=len(rows))
    fields = extract_fields(texts, images)
    pdf = assemble(tools, images, [r.dpi for r in rows], title)
    pages.store_paper_pdf(tools.conn, tools.files, paper_id, pdf, fields)


# -- the job --------------------------------------------------------------------------
def scan_job(tools: Tools, request: ScanRequest, progress: Progress) -> ScannedPaper:
    """The steps in order; raises JobFailed when the job must fail."""
    scanned = scan_into_paper(tools, request, progress)
    if scanned.paper_id is None:  # a paper exists only once it has a page
        raise scanned.fault or JobFailed(FailureKey.NO_PAGE, "the scanner returned no page")
    finish_paper(tools, scanned.paper_id, request.title, progress)
    if scanned.fault is not None:
        raise scanned.fault
    progress(JobStep.DONE, scanned.paper_id, pages=scanned.pages)
    return scanned


def _as_job_failed(e: Exception) -> JobFailed:
    """The one boundary where other layers' errors become a message key."""
    if isinstance(e, JobFailed):
        return e
    if is_disk_full(e):
        return JobFailed(FailureKey.DISK_FULL, str(e))
    return JobFailed(FailureKey.GENERIC, str(e))


def run_job(tools: Tools, job: jobs.Job) -> None:
    """Run one job to done or failed; never raises for a failure of the job itself."""
    if job.kind in test_scan.KINDS:  # a technician's scanner list or test scan
        test_scan.run(tools, job)
        return
    log.info("job %s (%s) started for dossier %s", job.id, job.kind, job.dossier_id)
    progress = tools.progress(job.id)
    try:
        request = ScanRequest.from_job(job)
        scanned = scan_job(tools, request, progress)
        tools.until_written(lambda: jobs.finish(tools.conn, job.id), f"job {job.id}'s end")
        log.info("job %s done: %d page(s)", job.id, scanned.pages)
    except (JobFailed, StoreError, RecordsError, OSError, sqlite3.Error) as e:
        if isinstance(e, sqlite3.Error) and not is_disk_full(e):
            raise
        failed = _as_job_failed(e)
        if failed is e:  # an expected fault (jam, empty feeder): no traceback
            log.warning("job %s failed (%s): %s", job.id, failed.key, e)
        else:
            log.error("job %s failed (%s): %s", job.id, failed.key, e, exc_info=e)
        # On a full disk this waits for space: the job must not stay "running" for good.
        tools.until_written(lambda: jobs.fail(tools.conn, job.id, failed.key, str(failed)),
                            f"job {job.id}'s failure")


def recover_unfinished_papers(tools: Tools, given_up: set[int] | None = None) -> int:
    """Finish papers whose pages were stored but whose job died before the PDF
    (a kill -9 or power cut mid-OCR, a disk that filled after the pages): the pages are
    the citizen's, keep them whole, and the dossier submittable.

    Run at start-up and, by an idle worker, again and again: a paper that failed for
    want of space is tried again once there is space; one that failed for another
    reason is added to `given_up` and left for the next start (no log flood)."""
    unfinished = [p for p in pages.unfinished_papers(tools.conn)
                  if given_up is None or p.id not in given_up]
    for paper in unfinished:
        paper_id = paper.id
        try:
            if paper.submitted:
                # An officer's correction whose PDF could not be rebuilt: only the PDF,
                # the fields are the officer's.
                log.warning("rebuilding the PDF of paper %s after a correction", paper_id)
                pages.refresh_pdf(tools.conn, tools.files, paper_id,
                                  tools.config.device.agency_name)
            else:
                log.warning("finishing paper %s left unfinished by an interrupted job",
                            paper_id)
                finish_paper(tools, paper_id, paper.title, tools.progress(None))
        except (StoreError, OSError, sqlite3.Error) as e:
            if is_disk_full(e):
                log.warning("paper %s waits for space on the data disk: %s", paper_id, e)
                continue
            if isinstance(e, sqlite3.Error):
                raise
            log.error("paper %s could not be finished: %s", paper_id, e)
            if given_up is not None:
                given_up.add(paper_id)
    return len(unfinished)
