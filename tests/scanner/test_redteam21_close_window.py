"""Red team: while Scanner.close() waits on its "sane-close" helper thread (up to
CLOSE_TIMEOUT_S), the handle is in neither `_OPEN` (discarded before the close) nor
`_WRITTEN_OFF` (only added once the timeout has passed), and the GIL is free (the
close runs through ctypes). So another thread's shutdown_sane()/reload_sane() (or
open_scanner(), which reloads when `_OPEN` is empty) goes straight to sane_exit()
while sane_close() is still inside the backend on that handle: the backend's state
freed under a running close. Before the change the GIL held by python-sane's close
kept every other thread out of SANE for the whole close.

The spy on sane.exit records whether a close was still running, then lets that
close finish (the hostile server is stopped, airscan's DELETE fails) before the real
sane_exit, so the test itself never exits SANE under a running close.
"""

from __future__ import annotations

import threading
import time

from appliance.scanner import device
from tests.scanner.demo_scanner import stop_process
from tests.scanner.test_close_bounded import open_mid_job, start_delete_hangs


def _closers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sane-close")]


def test_no_sane_exit_while_a_close_is_inside_the_backend(sane_rig, monkeypatch):
    monkeypatch.setattr(device, "CLOSE_TIMEOUT_S", 60.0)
    proc, url = start_delete_hangs()
    exits_during_close: list[bool] = []
    real_exit = device.sane.exit

    def spy_exit() -> None:
        running = bool(_closers())
        exits_during_close.append(running)
        if running:  # let the close return before SANE really goes
            stop_process(proc)
            deadline = time.monotonic() + 45
            while _closers() and time.monotonic() < deadline:
                time.sleep(0.1)
        real_exit()

    closer_caller: threading.Thread | None = None
    try:
        scanner, pages = open_mid_job(sane_rig, url)  # close waits on the DELETE
        closer_caller = threading.Thread(target=scanner.close, name="closes-scanner")
        closer_caller.start()
        deadline = time.monotonic() + 5
        while not _closers() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert _closers(), "the close returned at once; nothing to race"
        monkeypatch.setattr(device.sane, "exit", spy_exit)
        device.shutdown_sane()  # e.g. a technician's device list, another thread
        monkeypatch.setattr(device.sane, "exit", real_exit)
        closer_caller.join(60)
        pages.close()
        assert True not in exits_during_close, (
            "sane_exit() ran while sane_close() was inside the backend")
    finally:
        monkeypatch.setattr(device.sane, "exit", real_exit)
        stop_process(proc)
        if closer_caller is not None:
            closer_caller.join(60)
        deadline = time.monotonic() + 45
        while _closers() and time.monotonic() < deadline:
            time.sleep(0.1)
        sane_rig.reconfigure()
