"""A SANE close that does not return costs CLOSE_TIMEOUT_S, never the process.

Seen once in a CI run (27 Nov 2026): sane-airscan's sane_close() waited for its scan
job to come to rest and never did, and python-sane calls sane_close() holding the
GIL, so the whole test worker froze where no timeout could reach it. That race could
not be produced on demand; what can be is a real sane-airscan close that waits on
the scanner: an eSCL server whose job DELETE never answers (airscan gives up after
its 30 s HTTP timeout). Before the fix, close() took those 30 s with every other
thread of the process stopped.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from appliance.scanner import device
from appliance.system.process import start_announcing
from tests.scanner.demo_scanner import REPO, stop_process
from tests.scanner.test_redteam_scanner import HOSTILE_SERVER

# The hostile eSCL server of the red team's tests, with a DELETE that never answers.
DELETE_HANGS = HOSTILE_SERVER.replace(
    "    def do_DELETE(self):\n        self.reply(200)",
    "    def do_DELETE(self):\n        time.sleep(3600)")
assert DELETE_HANGS != HOSTILE_SERVER


def start_delete_hangs() -> tuple[subprocess.Popen[str], str]:
    """That server in its own process, with three pages in its feeder: (process, URL)."""
    return start_announcing(
        [sys.executable, "-c", DELETE_HANGS,
         json.dumps({"fmt": "image/jpeg", "pages": ["ok", "ok", "ok"]})],
        "hostile ready: ", "hostile eSCL server", cwd=REPO)


def open_mid_job(sane_rig, url: str) -> tuple[device.Scanner, Iterator[Image.Image]]:
    """A scanner on that server with its feeder job running (one page read), so that
    closing it must cancel the job: a DELETE that never answers."""
    sane_rig.reconfigure([*sane_rig.default_devices(), ("Hostile delete", url)])
    name = next(d.name for d in device.list_devices() if d.name.endswith(":Hostile delete"))
    scanner = device.open_scanner(name, resolution=100)
    pages = scanner.scan("adf")
    assert next(pages).info["page"] == 1
    return scanner, pages


def _threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def test_a_close_that_waits_on_the_scanner_is_given_up_without_freezing_the_process(
        sane_rig, caplog, monkeypatch):
    monkeypatch.setattr(device, "CLOSE_TIMEOUT_S", 2.0)
    proc, url = start_delete_hangs()
    ticks = [0]
    stop = threading.Event()

    def tick() -> None:  # what the worker's watchdog pings need: the GIL now and then
        while not stop.wait(0.05):
            ticks[0] += 1

    ticker = threading.Thread(target=tick, daemon=True)
    try:
        scanner, pages = open_mid_job(sane_rig, url)
        ticker.start()
        before, started = ticks[0], time.monotonic()
        with caplog.at_level(logging.ERROR, logger=device.log.name):
            scanner.close()
        elapsed, during = time.monotonic() - started, ticks[0] - before
        assert 1.5 <= elapsed < 6.0, elapsed  # the timeout, not airscan's 30 s
        assert during >= 15, during  # the other threads ran meanwhile
        assert any("closing the scanner did not return" in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records]
        assert [w.what for w in device._WRITTEN_OFF] == ["close"]
        assert scanner.closed
        pages.close()
        # The server goes away: airscan's DELETE fails, its close returns, and the
        # next re-initialisation closes nothing twice and lets the handle go.
        stop_process(proc)
        deadline = time.monotonic() + 40
        while _threads_named("sane-close") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _threads_named("sane-close")
        sane_rig.reconfigure()
        assert device._WRITTEN_OFF == []
        with device.open_scanner("test:0", resolution=25) as again:
            assert len(list(again.scan("flatbed"))) == 1
    finally:
        stop.set()
        stop_process(proc)
        sane_rig.reconfigure()


def test_an_ordinary_close_is_quick_and_leaves_nothing_behind(sane_rig):
    with device.open_scanner("test:0", resolution=25) as scanner:
        assert len(list(scanner.scan("flatbed"))) == 1
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    assert not _threads_named("sane-close") and device._WRITTEN_OFF == []
    with pytest.raises(device.ScannerInvalid):
        list(scanner.scan("flatbed"))
