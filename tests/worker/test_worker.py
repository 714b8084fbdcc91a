"""The worker as a real process against the eSCL emulator through sane-airscan:
a jam keeps the pages already scanned, a retry continues the same paper, and a
kill -9 in the middle of a batch loses no stored page."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from appliance.records import dossiers
from appliance.records import pages as page_store
from appliance.store import jobs, state
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.store.state import ScannerState, StateKey
from appliance.system import config as config_mod
from tests.helpers.processes import REPO, Processes, demo_scanner_sane, free_port, wait_for

pytestmark = pytest.mark.timeout(300)


@dataclass
class Rig:
    config: config_mod.Config
    procs: Processes
    conn: sqlite3.Connection
    scanner_port: int

    def start_scanner(self, *extra: str) -> None:
        self.procs.start("scanner", "demo-scanner", "--port", str(self.scanner_port), *extra)
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.scanner_port), 1).close()
                 or True, 30, "the demo scanner's port")

    def wait_job(self, job_id: int, timeout: float = 180) -> jobs.Job:
        return wait_for(lambda: (j := jobs.get(self.conn, job_id)) and
                        j.state in (jobs.JobState.DONE, jobs.JobState.FAILED) and j,
                        timeout, f"job {job_id}", interval=0.3)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    scanner_port = free_port()
    config = config_mod.with_overrides(
        config_mod.Config(), paths={"data_dir": str(tmp_path / "data")},
        scanner={"sane_config_dir": demo_scanner_sane(tmp_path, scanner_port)})
    procs = Processes.for_config(tmp_path, config)
    conn = connect(config.paths.database)
    try:
        yield Rig(config, procs, conn, scanner_port)
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
        conn.close()


def paper_pages(conn: sqlite3.Connection, paper_id: int) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM pages WHERE paper_id=? ORDER BY ordinal",
                        (paper_id,)).fetchall()


def test_jam_keeps_scanned_pages_and_retry_continues_the_paper(rig: Rig):
    rig.start_scanner("--adf-pages", "4", "--jam-after", "2")
    rig.procs.start("worker", "worker")
    dossier_id = dossiers.create(rig.conn, rig.config, "tk1-ts")
    job = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id,
                                    {"source": "adf", "title": "Tờ khai TK1-TS"}))
    assert job.state == jobs.JobState.FAILED
    assert job.error_key == "scanner.jammed"
    [paper] = dossiers.get(rig.conn, dossier_id).papers
    assert [p.ordinal for p in paper.pages] == [1, 2]
    # the failed job names the paper it was filling, so "scan on" needs no guessing
    assert job.progress["paper_id"] == paper.id
    # the fault's key sits under its own state key, not packed into the state
    assert state.read(rig.conn, StateKey.SCANNER) == ScannerState.ERROR
    assert state.read(rig.conn, StateKey.SCANNER_ERROR) == "scanner.jammed"
    # every stored page went through the skew check
    assert all(p.skew_degrees is not None for p in paper.pages)
    assert paper.pdf_sha256, "a PDF of the pages kept is built even after a jam"
    files = FileStore(rig.config.paths.files)
    for page in paper.pages:  # sealed at rest: opened through the store
        with Image.open(io.BytesIO(files.read(page.sha256, ".png"))) as img:
            assert img.size == (page.width, page.height)
    retry = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id,
                                      {"source": "flatbed", "paper_id": paper.id}))
    assert retry.state == jobs.JobState.DONE, retry
    assert state.read(rig.conn, StateKey.SCANNER) == ScannerState.READY
    [paper] = dossiers.get(rig.conn, dossier_id).papers
    assert [p.ordinal for p in paper.pages] == [1, 2, 3]
    assert paper.pdf_size and paper.pdf_size > 0
    assert paper.pages[0].ocr_text, "OCR read the first page"
    # each line keeps its least sure character, which flags doubtful field values
    first = page_store.paper_pages(rig.conn, paper.id)[0].text
    assert first is not None
    lines = first.to_json()["lines"]
    assert lines and all(0.0 <= ln["min_char_confidence"] <= ln["confidence"] <= 1.0
                         for ln in lines)
    assert isinstance(paper.fields["uncertain"], list)


def test_unreachable_scanner_fails_with_a_clear_key_and_worker_goes_on(rig: Rig):
    rig.procs.start("worker", "worker")  # no scanner process is running
    dossier_id = dossiers.create(rig.conn, rig.config, "khac")
    job = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id, {"source": "flatbed"}))
    assert job.state == jobs.JobState.FAILED
    assert job.error_key in ("scanner.io_error", "scanner.not_found")
    assert dossiers.get(rig.conn, dossier_id).papers == ()
    rig.start_scanner()
    again = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id, {"source": "flatbed"}))
    assert again.state == jobs.JobState.DONE, again


def test_kill_9_mid_batch_loses_no_stored_page(rig: Rig):
    rig.start_scanner("--adf-pages", "4")
    worker = rig.procs.start("worker", "worker")
    dossier_id = dossiers.create(rig.conn, rig.config, "tk1-ts")
    job_id = jobs.enqueue(rig.conn, "scan", dossier_id, {"source": "adf"})

    def some_pages_stored() -> bool:
        job = jobs.get(rig.conn, job_id)
        return job is not None and job.progress.get("step") in ("scanning", "reading") and \
            rig.conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0] >= 2

    wait_for(some_pages_stored, 120, "two stored pages", interval=0.05)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    rig.procs.children.pop("worker")
    stored = rig.conn.execute("SELECT sha256 FROM pages ORDER BY id").fetchall()
    files = FileStore(rig.config.paths.files)
    for row in stored:  # every committed row names a whole, verified file
        files.read(row["sha256"], ".png")
    rig.procs.start("worker", "worker")
    job = rig.wait_job(job_id)
    assert job.state == jobs.JobState.FAILED and job.error_key == "error.worker_restarted"
    [paper] = wait_for(lambda: (d := dossiers.get(rig.conn, dossier_id)).papers and
                       d.papers[0].pdf_sha256 and d.papers, 120, "the recovered paper's PDF")
    assert len(paper.pages) == len(stored) >= 2


def test_a_failure_that_is_not_the_scanners_leaves_the_scanner_ready(rig: Rig):
    """Storage trouble fails the job but must not leave `scanner.state` at "busy" (it
    did for every error other than a scanner fault or a full disk)."""
    rig.start_scanner()
    Path(rig.config.paths.files).parent.mkdir(parents=True, exist_ok=True)
    Path(rig.config.paths.files).write_text("not a folder")  # no page can be stored
    rig.procs.start("worker", "worker")
    dossier_id = dossiers.create(rig.conn, rig.config, "khac")
    job = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id, {"source": "flatbed"}))
    assert job.state == jobs.JobState.FAILED and job.error_key == "error.generic"
    assert state.read(rig.conn, StateKey.SCANNER) == ScannerState.READY
    assert dossiers.get(rig.conn, dossier_id).papers == ()


# WatchdogSec of the test's "unit": the worker kicks at most every 5 s, after a step
# that completed, so two kicks are at most 5 s plus one page's OCR apart. A page takes
# the added 1.5 s plus the real OCR (under 1 s here, up to 3 s on a loaded machine),
# so the kicks stay under 10 s apart while the paper's 7 pages take over 10.5 s (the
# added time alone outlasts the watchdog: no more pages are needed for that).
WATCHDOG_SECONDS = 10.0
PAGES = 7
OCR_SECONDS_PER_PAGE = 1.5


def test_watchdog_is_kicked_while_a_long_paper_is_read(rig: Rig):
    """A paper whose OCR takes longer than WatchdogSec must not get the worker killed:
    WATCHDOG=1 keeps arriving during the job, never more than WatchdogSec apart (it
    used to be sent only between jobs)."""
    from tests.system.conftest import NotifySocket

    folder = Path(tempfile.mkdtemp(prefix="sdn-", dir="/tmp"))  # AF_UNIX path limit
    sock = NotifySocket(folder / "notify")
    heard: list[tuple[float, str]] = []
    listening = threading.Event()
    listening.set()

    def listen() -> None:
        while listening.is_set():
            try:
                message = sock.recv(0.2)
            except (TimeoutError, OSError):
                continue
            heard.append((time.time(), message.text))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    rig.start_scanner("--adf-pages", str(PAGES))
    env = dict(rig.procs.env, NOTIFY_SOCKET=str(sock.path),
               WATCHDOG_USEC=str(int(WATCHDOG_SECONDS * 1_000_000)),
               SLOW_OCR_SECONDS=str(OCR_SECONDS_PER_PAGE))
    env.pop("WATCHDOG_PID", None)
    log = open(rig.procs.log_dir / "slow-worker.log", "ab")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "-m", "tests.worker.slow_ocr_worker"],
                              env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_for(lambda: any(text == "READY=1" for _, text in heard), 120, "READY=1")
        dossier_id = dossiers.create(rig.conn, rig.config, "tk1-ts")
        job_id = jobs.enqueue(rig.conn, "scan", dossier_id, {"source": "adf"})
        job = rig.wait_job(job_id)
        assert job.state == jobs.JobState.DONE, job
        started, finished = rig.conn.execute(
            "SELECT started_at, finished_at FROM jobs WHERE id=?", (job_id,)).fetchone()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        log.close()
        listening.clear()
        listener.join(5)
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert finished - started > WATCHDOG_SECONDS, "the paper must outlast the watchdog"
    kicks = [at for at, text in heard if text == "WATCHDOG=1"]
    during = [at for at in kicks if started < at < finished]
    assert len(during) >= 2, (kicks, started, finished)
    ready_at = next(at for at, text in heard if text == "READY=1")
    watched = [ready_at, *(at for at in kicks if ready_at <= at <= finished), finished]
    gaps = [b - a for a, b in zip(watched, watched[1:], strict=False)]
    assert max(gaps) < WATCHDOG_SECONDS, gaps


def test_a_scan_cancelled_mid_batch_stops_at_a_page_boundary_and_keeps_the_pages(rig: Rig):
    rig.start_scanner("--adf-pages", "8", "--page-delay", "1.0")
    rig.procs.start("worker", "worker")
    dossier_id = dossiers.create(rig.conn, rig.config, "tk1-ts")
    job_id = jobs.enqueue(rig.conn, "scan", dossier_id, {"preset": "feeder_batch"})
    wait_for(lambda: rig.conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0] >= 2,
             120, "two stored pages", interval=0.1)
    assert jobs.request_cancel(rig.conn, job_id, "scanner.cancelled")
    job = rig.wait_job(job_id)
    assert job.state == jobs.JobState.FAILED and job.error_key == "scanner.cancelled"
    [paper] = dossiers.get(rig.conn, dossier_id).papers
    assert 2 <= len(paper.pages) < 8, "stopped before the feeder ran out"
    assert [p.ordinal for p in paper.pages] == list(range(1, len(paper.pages) + 1))
    assert paper.pdf_sha256, "the pages kept are read and assembled"
    assert job.progress["paper_id"] == paper.id
    # a cancel is not a fault: the scanner is ready for the next citizen
    assert state.read(rig.conn, StateKey.SCANNER) == ScannerState.READY
    assert not jobs.request_cancel(rig.conn, job_id, "scanner.cancelled"), "already ended"


def test_a_queued_scan_cancelled_never_reaches_the_scanner(rig: Rig):
    rig.start_scanner()
    dossier_id = dossiers.create(rig.conn, rig.config, "khac")
    job_id = jobs.enqueue(rig.conn, "scan", dossier_id, {"source": "flatbed"})
    assert jobs.request_cancel(rig.conn, job_id, "scanner.cancelled")
    rig.procs.start("worker", "worker")
    later = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id, {"source": "flatbed"}))
    assert later.state == jobs.JobState.DONE
    job = jobs.get(rig.conn, job_id)
    assert job is not None and job.state == jobs.JobState.FAILED
    assert job.error_key == "scanner.cancelled"
    assert len(dossiers.get(rig.conn, dossier_id).papers) == 1, "only the later scan ran"


def test_an_unknown_preset_fails_the_job_with_a_clear_reason(rig: Rig):
    rig.start_scanner()
    rig.procs.start("worker", "worker")
    dossier_id = dossiers.create(rig.conn, rig.config, "khac")
    job = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id, {"preset": "no-such"}))
    assert job.state == jobs.JobState.FAILED and "no-such" in (job.error_detail or "")
    assert state.read(rig.conn, StateKey.SCANNER) == ScannerState.READY
