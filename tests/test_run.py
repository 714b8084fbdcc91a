"""`appliance run` — what the README's first command starts — works as a whole."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest

from appliance.system import config as config_mod
from appliance.system.process import stop_process
from tests.helpers.processes import free_port, http, wait_for

pytestmark = pytest.mark.timeout(300)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True)
    return [int(p) for p in out.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_run_starts_everything_and_stops_everything(tmp_path):
    web_port, scanner_port = free_port(), free_port()
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(config_mod.dump(config_mod.with_overrides(
        config_mod.Config(), paths={"data_dir": str(tmp_path / "data")},
        web={"bind": f"127.0.0.1:{web_port}"})))
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115
    env = dict(os.environ, APPLIANCE_CONFIG=str(cfg))
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run",
                             "--demo-scanner-port", str(scanner_port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{web_port}"
    kids: list[int] = []
    try:
        wait_for(lambda: http("GET", f"{base}/api/health")[0] == 200, 60, "the kiosk")
        kids = children_of(proc.pid)
        assert len(kids) == 4, kids  # demo scanner, worker, sync, web
        with urllib.request.urlopen(f"{base}/kiosk") as resp:
            page = resp.read().decode()
        assert "Tờ khai" in page or "thủ tục" in page
        wait_for(lambda: http("GET", f"{base}/api/status")[1]["sync_state"] == "no_broker",
                 30, "the sync service to report that no broker is configured")
        status, dossier = http("POST", f"{base}/api/dossiers", {"procedure": "khac"})
        assert status == 201
        status, job = http("POST", f"{base}/api/dossiers/{dossier['id']}/scans",
                           {"source": "flatbed"})
        assert status == 202
        done = wait_for(lambda: (b := http("GET", f"{base}/api/jobs/{job['job_id']}")[1])
                        ["state"] in ("done", "failed") and b, 180, "the demo scan")
        assert done["state"] == "done", done
    finally:
        stop_process(proc, timeout=30, group=False)
        log.close()
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()
    assert kids and not [k for k in kids if alive(k)]
