"""A full data disk, for real: the data folder is a small tmpfs (8 MB) holding the
database, the page files and the outbox, with the real worker and sync processes, the
eSCL emulator behind sane-airscan, a real mosquitto and the central receiver.

The disk fills in the middle of a feeder batch (after page 1 is stored, before page 2
and the PDF). Then: both processes are still running and say why they wait, the
kiosk refuses new scans with the disk-full message, officers see the backlog and the
free disk. Once space is freed: the interrupted paper gets its PDF so the dossier can
be submitted, the scan that was queued meanwhile runs, and every record queued for
the central office arrives exactly once: nothing was dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance import worker as worker_mod
from appliance.central.receiver import run_receiver
from appliance.records import dossiers
from appliance.store import jobs, space
from appliance.store.db import connect
from appliance.system import config as config_mod
from appliance.web import create_app, usecases
from appliance.web.errors import WebError
from tests.helpers.processes import Processes, demo_scanner_sane, free_port, wait_for
from tests.helpers.small_disk import fill, mounted_tmpfs
from tests.helpers.sync_rig import (  # noqa: F401 - fixtures
    Service,
    all_delivered,
    assert_exactly_once,
    broker,
    brokers,
    enqueue,
    make_config,
    services,
)

pytestmark = pytest.mark.timeout(300)

SIZE = "8m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs for the data folder (root only; skipped where it cannot mount)."""
    with mounted_tmpfs(tmp_path / "data", SIZE) as folder:
        yield folder


@dataclass
class Rig:
    config: config_mod.Config
    procs: Processes
    disk: Path

    def fill(self, leave: int = 0) -> Path:
        """Fill the disk with a file the test owns, to the last byte or until only
        `leave` bytes are free."""
        return fill(self.disk, leave)


@pytest.fixture
def rig(tmp_path: Path, small_disk: Path, broker) -> Iterator[Rig]:  # noqa: F811
    scanner_port = free_port()
    config = config_mod.with_overrides(
        make_config(tmp_path, broker.port),
        paths={"data_dir": str(small_disk)},
        scanner={"sane_config_dir": demo_scanner_sane(tmp_path, scanner_port)},
        ocr={"enabled": False},
        health={"scan_min_free_mb": 1},
    )
    procs = Processes.for_config(tmp_path, config)
    # worker and sync try the full disk again every second (5 s in service): each
    # fill and each freeing below waits one retry, for nothing but the clock; the
    # worker looks for the interrupted paper every 2 s (10 s in service)
    procs.env[space.RETRY_ENV] = "1"
    procs.env[worker_mod.RECOVER_ENV] = "2"
    connect(config.paths.database).close()  # schema made before the disk fills
    procs.start("scanner", "demo-scanner", "--port", str(scanner_port), "--adf-pages", "3",
                "--page-delay", "2")
    try:
        yield Rig(config, procs, small_disk)
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()


def _log(rig: Rig, name: str) -> str:
    return (rig.procs.log_dir / f"{name}.log").read_text(encoding="utf-8", errors="replace")


def test_a_full_disk_stops_nothing_and_loses_nothing(rig: Rig, services):  # noqa: F811
    config = rig.config
    conn = connect(config.paths.database)
    records = enqueue(config, 3)  # queued for the central office, receiver not up yet
    app = create_app(config, {"TESTING": True})  # the web is up before the disk fills
    worker = rig.procs.start("worker", "worker")
    sync = rig.procs.start("sync", "sync")
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    scan = jobs.enqueue(conn, "scan", dossier_id, {"source": "adf", "title": "Tờ khai"})

    # the disk fills after the first page is stored, before the second and the PDF
    wait_for(lambda: dossiers.get(conn, dossier_id).page_count >= 1, 120, "page 1")
    filler = rig.fill()
    receiver: Service = services(run_receiver, config)  # acks now need a write
    wait_for(lambda: "data disk full" in _log(rig, "worker"), 60, "the worker's log line")
    wait_for(lambda: "data disk full" in _log(rig, "sync"), 60, "sync's log line")
    assert worker.poll() is None and sync.poll() is None, "both keep running"

    with app.test_request_context():  # the kiosk refuses a new scan, with the message
        with pytest.raises(WebError) as refused:
            usecases.start_scan(conn, dossier_id, "flatbed")
        assert (refused.value.key, refused.value.status) == ("error.disk_full", 507)
    # officers see the backlog (3 records waiting) and the free disk on every screen
    officer = app.test_client().get("/officer")
    assert officer.status_code == 200, officer.status_code
    text = officer.get_data(as_text=True)
    assert "Chờ gửi về trung ương: 3" in text
    free = re.search(r"Bộ nhớ trống: (\d+) MiB", text)  # MiB below 1 GiB, not 0.0 GiB
    assert free is not None and int(free.group(1)) < 5, free

    # space comes back: the job ends, its paper is finished, queued work resumes
    filler.unlink()
    ended = wait_for(lambda: (j := jobs.get(conn, scan)) and j.state in (
        jobs.JobState.DONE, jobs.JobState.FAILED) and j, 120, "the scan job's end")
    assert ended.error_key in (None, "error.disk_full"), ended
    wait_for(lambda: all(p.pdf_sha256 for p in dossiers.get(conn, dossier_id).papers),
             120, "the interrupted paper's PDF")
    [paper] = dossiers.get(conn, dossier_id).papers
    assert len(paper.pages) >= 1
    # below the threshold (but not full), a queued scan waits for space, never dropped
    low = rig.fill(leave=512 * 1024)
    more = jobs.enqueue(conn, "scan", dossier_id, {"source": "flatbed", "paper_id": paper.id})
    wait_for(lambda: "queued scans wait for space" in _log(rig, "worker"), 60,
             "the worker's low-disk line")
    assert jobs.get(conn, more).state == jobs.JobState.QUEUED
    low.unlink()
    done = wait_for(lambda: (j := jobs.get(conn, more)) and j.state in (
        jobs.JobState.DONE, jobs.JobState.FAILED) and j, 120, "the next scan")
    assert done.state == jobs.JobState.DONE, done
    dossiers.submit(conn, dossier_id)  # "nothing scanned" no more
    wait_for(lambda: all_delivered(config, records), 120, "every queued record delivered")
    assert_exactly_once(config, records)
    assert worker.poll() is None and sync.poll() is None
    assert receiver.running()
    conn.close()
