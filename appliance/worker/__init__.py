"""`appliance worker`: the only process that opens the scanner; runs scan and OCR jobs.

The job itself is `pipeline.run_job` (named steps over one `Tools` and one progress
call); this module is the process around it: start-up (abandoned jobs, device state,
the OCR engine, papers left unfinished), the claim loop, and readiness and liveness
for systemd.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable

from appliance.ocr.engine import Engine
from appliance.records import erasure
from appliance.status import disk_below_scan_floor
from appliance.store import jobs, state
from appliance.store.db import connect
from appliance.store.errors import StoreError, is_disk_full
from appliance.store.files import FileStore
from appliance.store.space import open_when_space, start_when_space
from appliance.store.state import OcrState, ScannerState
from appliance.system.config import Config, seconds_from_env
from appliance.worker.context import DISK_RETRY_SECONDS, Liveness, Notify, Tools
from appliance.worker.errors import JobFailed
from appliance.worker.pipeline import recover_unfinished_papers, run_job

log = logging.getLogger(__name__)

__all__ = ["JobFailed", "load_ocr", "release_freed_memory", "run_worker"]

IDLE_SECONDS = 0.3  # how long an idle worker waits before looking for a job again
# How often an idle worker runs the retention purge (records/erasure.purge_due): local
# copies of dossiers acknowledged more than retention.delivered_days ago.
RETENTION_SECONDS = 3600.0
# How often an idle worker looks for papers left without a PDF (a disk that filled
# after their pages): one SELECT when there are none. The environment may shorten it
# for a worker a test starts, which would otherwise wait out the pass after each fill.
RECOVER_ENV = "APPLIANCE_RECOVER_SECONDS"
RECOVER_SECONDS: float = seconds_from_env(RECOVER_ENV, 10.0)


def load_ocr(config: Config) -> Engine | None:
    """The configured engine, or None: scanning must work without OCR."""
    if not config.ocr.enabled:
        return None
    from appliance.ocr.engine import OcrEngine

    try:
        return OcrEngine.load(None, threads=config.ocr.threads,
                              recognizer=config.ocr.recognizer)
    except Exception as e:  # noqa: BLE001 - scanning must work without OCR
        log.error("OCR engine unavailable, pages will be stored without text: %s", e)
        return None


def release_freed_memory() -> bool:
    """Give the heap pages freed by the last job back to the system (glibc malloc_trim).

    A scan leaves its page images and OCR buffers freed but still resident: glibc only
    returns the top of the heap on free(), and the freed chunks below the live ones
    (the sqlite cache, the models' small allocations) stay counted in RSS for the life
    of the process. Trimming after each job took the worker from 162 to 109 MB RSS
    after a scan (`appliance bench memory`), on a 2 GB Pi where every MB is Chromium's.
    A few ms per job. True when memory went back; False when none could, and on a
    libc without malloc_trim (musl, macOS), where it does nothing.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


def purge_retained(tools: Tools) -> int:
    """One retention run between jobs; a failure is logged and tried again next hour,
    it must never stop scanning."""
    try:
        return len(erasure.purge_due(tools.conn, tools.files, tools.config))
    except (StoreError, OSError, sqlite3.Error) as e:
        # sqlite3.Error too: "database is locked" past the busy timeout (its batches
        # take the write lock beside the web's), a disk I/O error (red team 11).
        if tools.conn.in_transaction:
            tools.conn.execute("ROLLBACK")
        log.error("retention purge failed, will retry: %s", e)
        return 0


def run_worker(config: Config, stop: threading.Event, notify: Notify | None = None, *,
               engine: Callable[[Config], Engine | None] = load_ocr) -> None:
    """Run jobs until `stop` is set. `engine` builds the OCR engine (tests slow it down
    to a Pi's pace to see the watchdog kicked during a long paper)."""
    if config.scanner.sane_config_dir:
        # sane.init() reads this once per process: set before the first scanner use.
        os.environ["SANE_CONFIG_DIR"] = config.scanner.sane_config_dir
    tell = notify or (lambda _msg: None)

    def prepare(conn: sqlite3.Connection) -> None:
        abandoned = jobs.fail_abandoned(conn)
        if abandoned:
            log.warning("%d job(s) left running by a previous worker were failed",
                        abandoned)
        state.set_scanner(conn, ScannerState.READY)

    # A missing or wrong encryption key stops the worker here (KeyProblem: exit 2); a
    # full disk waits (store/space.py).
    opened = open_when_space(
        lambda: connect(config.paths.database, key_file=config.paths.key_file),
        prepare, stop, tell, "worker")
    if opened is None:
        return
    conn = opened
    ocr = engine(config)
    start_when_space(lambda: state.set_ocr(
        conn, OcrState.READY if ocr is not None else OcrState.UNAVAILABLE), stop, tell,
        "worker")
    tools = Tools(config, conn, FileStore(config.paths.files, sealer=conn.sealer), ocr,
                  Liveness(conn, notify), stop)
    given_up: set[int] = set()
    # Papers a previous worker left without their PDF are made at the loop's first turn,
    # where a full disk waits instead of ending the worker.
    if notify:
        notify("READY=1")
    log.info("worker ready")
    next_purge = next_recover = 0.0
    was_low = False
    try:
        while not stop.is_set():
            try:
                tools.liveness.alive()
                if time.monotonic() >= next_recover:
                    next_recover = time.monotonic() + RECOVER_SECONDS
                    recover_unfinished_papers(tools, given_up)
                low = disk_below_scan_floor(config)
                if low != was_low:  # said once when it starts and once when it ends
                    was_low = low
                    if low:
                        log.warning("data disk below health.scan_min_free_mb (%d MB); "
                                    "queued scans wait for space",
                                    config.health.scan_min_free_mb)
                    else:
                        log.info("data disk has room again; scans resume")
                job = None if low else jobs.claim_next(conn, os.getpid())
                if job is None:
                    # The retention run goes on while the disk is low: it is what
                    # frees space (delivered dossiers past retention, orphan files).
                    if time.monotonic() >= next_purge:
                        next_purge = time.monotonic() + RETENTION_SECONDS
                        purge_retained(tools)
                    # queued scans wait for space; none is dropped
                    stop.wait(DISK_RETRY_SECONDS if low else IDLE_SECONDS)
                    continue
                try:
                    run_job(tools, job)
                finally:
                    release_freed_memory()
            except (sqlite3.Error, OSError) as e:
                # A full data disk: wait for space and go on, never exit (a restart
                # every few seconds frees nothing). Anything else still stops here.
                if not is_disk_full(e):
                    raise
                log.warning("data disk full, the worker waits for space (retry in "
                            "%.0f s): %s", DISK_RETRY_SECONDS, e)
                stop.wait(DISK_RETRY_SECONDS)
    finally:
        if notify:
            notify("STOPPING=1")
        conn.close()
