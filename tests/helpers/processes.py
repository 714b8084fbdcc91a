"""Start the appliance's real processes for a test and stop every one of them by PID."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.bench.local import free_port  # noqa: F401 (re-exported to tests)
from appliance.scanner.sane_env import write_sane_config
from appliance.system import config as config_mod
from appliance.system.config import Config
from appliance.system.process import die_with_parent, stop_process

REPO = Path(__file__).resolve().parents[2]




def peak_kib(pid: int) -> int:
    """A process's peak resident memory (VmHWM), in KiB: what MemoryMax is held to."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def memory_max_kib(unit: str) -> int:
    """The MemoryMax (in M) systemd/<unit> sets, in KiB."""
    found = re.search(r"^MemoryMax=(\d+)M$", (REPO / "systemd" / unit).read_text(),
                      re.MULTILINE)
    assert found, f"{unit} sets MemoryMax in M"
    return int(found.group(1)) * 1024


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
              interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


class Processes:
    """Every child a test starts, each in its own process group, killed at teardown."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    @classmethod
    def for_config(cls, folder: Path, config: Config) -> Processes:
        """Children that run with `config`: written as folder/appliance.toml (named by
        APPLIANCE_CONFIG), logs in folder/logs, no systemd notify socket inherited."""
        path = folder / "appliance.toml"
        path.write_text(config_mod.dump(config), encoding="utf-8")
        (folder / "logs").mkdir()
        env = dict(os.environ, APPLIANCE_CONFIG=str(path), PYTHONUNBUFFERED="1")
        env.pop("NOTIFY_SOCKET", None)
        return cls(folder / "logs", env)

    def start(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", *argv], env=self.env, cwd=REPO,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()
        self.children[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        proc = self.children.pop(name, None)
        if proc is not None:
            stop_process(proc, sig, timeout)

    def stop_all(self, timeout: float = 10) -> None:
        """SIGTERM to every child's group at once, then wait for each (SIGKILL after
        `timeout`): their shutdowns overlap instead of adding up."""
        children = list(self.children.values())
        self.children.clear()
        for proc in children:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in children:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.log_dir.glob("*.log")))


def demo_scanner_sane(folder: Path, scanner_port: int) -> str:
    """A SANE configuration in folder/sane that finds the demo scanner on
    `scanner_port` through sane-airscan; returns it for [scanner] sane_config_dir."""
    sane_dir = folder / "sane"
    write_sane_config(sane_dir, airscan_url=f"http://127.0.0.1:{scanner_port}/eSCL")
    return str(sane_dir)


def start_scanning_appliance(procs: Processes, web_port: int, scanner_port: int,
                             adf_pages: int, *services: str) -> str:
    """The demo scanner with `adf_pages` in its feeder, the web server, the worker and
    `services` (each `appliance <name>`) under `procs`; returns the web's base URL once
    it answers /api/health."""
    procs.start("demo-scanner", "demo-scanner", "--port", str(scanner_port),
                "--adf-pages", str(adf_pages))
    for name in ("web", "worker", *services):
        procs.start(name, name)
    base = f"http://127.0.0.1:{web_port}"
    wait_for(lambda: http("GET", f"{base}/api/health")[0] == 200, 60, "the web server")
    return base


def http(method: str, url: str, body: dict[str, Any] | None = None,
         timeout: float = 10) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
