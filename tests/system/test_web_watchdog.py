"""The web unit's readiness and watchdog, through a NOTIFY_SOCKET this test binds.

The real `appliance web` (gunicorn's arbiter + one gthread worker) runs as a child:
READY=1 must come only once the app answers on its port, WATCHDOG=1 must keep coming
while it answers, and must stop when the worker hangs (SIGSTOP), then resume.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.system.config import Config, dump, with_overrides
from appliance.web.server import HEALTH_PATH, answers

pytestmark = pytest.mark.timeout(150)

WATCHDOG_SECONDS = 2.0  # pings every 1 s


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _pings(messages: list) -> list:
    return [m for m in messages if "WATCHDOG=1" in m.text.splitlines()]


def collect(ns, seconds: float, *, first_ping: bool = False) -> list:
    """Every message that arrives in the next `seconds` (drain() waits for quiet, and
    a watched service is never quiet)."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(ns.recv(timeout=left))
        except TimeoutError:
            break
        if first_ping and _pings(out):
            break
    return out


def test_unit_is_notify_with_a_watchdog_and_main_access():
    unit = (Path(__file__).resolve().parents[2] / "systemd" / "appliance-web.service"
            ).read_text(encoding="utf-8")
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines()
             if "=" in line and not line.startswith("#")}
    assert lines["Type"] == "notify" and lines["WatchdogSec"] == "60"
    assert lines["NotifyAccess"] == "main"


def test_ready_after_serving_pings_while_answering_none_while_hung(tmp_path, notify_socket,
                                                                   monkeypatch):
    # Port 0: the kernel picks a free one (no race with other tests for a "free" port);
    # READY's status names the URL actually served.
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")},
                            web={"bind": "127.0.0.1:0", "threads": 2})
    (tmp_path / "appliance.toml").write_text(dump(config), encoding="utf-8")
    env = dict(os.environ, WATCHDOG_USEC=str(int(WATCHDOG_SECONDS * 1_000_000)),
               APPLIANCE_CONFIG=str(tmp_path / "appliance.toml"))
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "appliance.web.server"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        try:
            first = notify_socket.recv(timeout=90)
        except TimeoutError:
            pytest.fail("no READY in 90 s:\n" + (tmp_path / "web.log").read_text()[-3000:])
        # The very first message is our READY, not gunicorn's "arbiter booted" one, and
        # at that moment the app already answers.
        assert first.text.startswith("READY=1") and "serving" in first.text, first
        assert "arbiter booted" not in first.text
        assert first.pid == proc.pid  # from the main process (NotifyAccess=main)
        url = first.text.split("STATUS=serving ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith(HEALTH_PATH)
        assert answers(url, 10.0)  # generous: this CPU is shared with other test runs

        pings = _pings(collect(notify_socket, 2.5 * WATCHDOG_SECONDS))
        assert len(pings) >= 2, "pings do not keep coming while the app answers"
        assert {m.pid for m in pings} == {proc.pid}

        (worker,) = _children(proc.pid)
        os.kill(worker, signal.SIGSTOP)  # the app hangs; the arbiter itself is fine
        assert not answers(url, 1.0)
        # One probe may have been under way when the worker stopped: allow its ping.
        collect(notify_socket, WATCHDOG_SECONDS)
        silent = _pings(collect(notify_socket, 2 * WATCHDOG_SECONDS))
        assert silent == [], "watchdog pinged while the app did not answer"

        os.kill(worker, signal.SIGCONT)
        resumed = _pings(collect(notify_socket, 3 * WATCHDOG_SECONDS, first_ping=True))
        assert resumed, "pings did not resume once the app answered again"
    finally:
        if worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0, (tmp_path / "web.log").read_text()[-2000:]
