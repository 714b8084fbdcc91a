"""Red-team, the whole path: a real worker process scanning from a hostile eSCL server
(tests/scanner/test_redteam_scanner.HOSTILE_SERVER) through sane-airscan, storing into
a real store. Servers and the worker are stopped by PID. xfail(strict) = a real bug.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from appliance.records import dossiers
from appliance.records import pages as page_store
from appliance.scanner.sane_env import write_sane_config
from appliance.store import jobs, state
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.store.state import ScannerState, StateKey
from appliance.system import config as config_mod
from tests.helpers.processes import Processes, wait_for
from tests.scanner.demo_scanner import stop_process
from tests.scanner.test_redteam_scanner import start_hostile

pytestmark = pytest.mark.timeout(120)


@dataclass
class Rig:
    config: config_mod.Config
    procs: Processes
    conn: sqlite3.Connection

    def wait_job(self, job_id: int, timeout: float = 60) -> jobs.Job:
        return wait_for(lambda: (j := jobs.get(self.conn, job_id)) and
                        j.state in (jobs.JobState.DONE, jobs.JobState.FAILED) and j,
                        timeout, f"job {job_id}", interval=0.3)


def _rig(tmp_path: Path, kinds: tuple[str, ...], fmt: str) -> Iterator[Rig]:
    server: subprocess.Popen[str] | None = None
    server, url = start_hostile(kinds, fmt)
    sane_dir = write_sane_config(tmp_path / "sane", airscan_devices=[("Hostile", url)])
    config = config_mod.with_overrides(
        config_mod.Config(), paths={"data_dir": str(tmp_path / "data")},
        scanner={"sane_config_dir": str(sane_dir), "device": "airscan:e0:Hostile"},
        ocr={"enabled": False})
    procs = Processes.for_config(tmp_path, config)
    conn = connect(config.paths.database)
    try:
        procs.start("worker", "worker")
        yield Rig(config, procs, conn)
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
        conn.close()
        stop_process(server)


@pytest.fixture
def undecodable_page_3(tmp_path: Path) -> Iterator[Rig]:
    """Pages 1 and 2 good, page 3 a CMYK JPEG airscan cannot decode, then more."""
    yield from _rig(tmp_path, ("ok", "ok", "cmyk", "ok"), "image/jpeg")


@pytest.fixture
def truncated_page_2(tmp_path: Path) -> Iterator[Rig]:
    """Page 2 of 3 is a JPEG cut off halfway."""
    yield from _rig(tmp_path, ("ok", "truncated", "ok"), "image/jpeg")


def test_an_undecodable_page_mid_batch_keeps_the_pages_before_it_and_scan_on_works(
        undecodable_page_3: Rig):
    rig = undecodable_page_3
    dossier_id = dossiers.create(rig.conn, rig.config, "khac")
    job = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id,
                                    {"source": "adf", "title": "Giấy tờ"}))
    assert job.state == jobs.JobState.FAILED
    assert job.error_key == "scanner.io_error"  # translated on the kiosk
    [paper] = dossiers.get(rig.conn, dossier_id).papers
    assert [p.ordinal for p in paper.pages] == [1, 2], "no half page, none lost"
    assert paper.pdf_sha256, "the pages kept are assembled"
    assert state.read(rig.conn, StateKey.SCANNER) == ScannerState.ERROR
    assert state.read(rig.conn, StateKey.SCANNER_ERROR) == "scanner.io_error"
    assert dossiers.get(rig.conn, dossier_id).status == "open", "never stuck"
    # "Scan on" into the same paper: the flatbed serves a good page
    again = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id,
                                      {"source": "flatbed", "paper_id": paper.id}))
    assert again.state == jobs.JobState.DONE, again
    assert state.read(rig.conn, StateKey.SCANNER) == ScannerState.READY
    [paper] = dossiers.get(rig.conn, dossier_id).papers
    assert [p.ordinal for p in paper.pages] == [1, 2, 3]


def test_a_page_cut_off_mid_transfer_never_enters_the_dossier_silently(truncated_page_2: Rig):
    rig = truncated_page_2
    dossier_id = dossiers.create(rig.conn, rig.config, "khac")
    job = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id,
                                    {"source": "adf", "title": "Giấy tờ"}))
    [paper] = dossiers.get(rig.conn, dossier_id).papers
    files = FileStore(rig.config.paths.files, sealer=rig.conn.sealer)
    grey_bottoms = []
    for page in paper.pages:
        image = np.asarray(page_store.load_image(files, page.sha256).convert("L"))
        bottom = image[image.shape[0] * 3 // 4:]
        grey_bottoms.append(bool((bottom == 128).mean() > 0.9))
    if job.state == jobs.JobState.FAILED:  # refused: the page before it is kept
        assert [p.ordinal for p in paper.pages] == [1]
        assert not any(grey_bottoms)
        return
    # passed on: then at least flagged for whoever scans it
    assert grey_bottoms == [False, True, False]
    assert paper.pages[1].flags, "the cut-off page is flagged"
