"""The demo-scanner command as a child process, for tests that need an eSCL scanner
outside the test process (see conftest.py for why), stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from appliance.system.process import die_with_parent

REPO = Path(__file__).resolve().parents[2]
DEMO_SCANNER = (
    "import argparse, sys\n"
    "from appliance.demo.commands import add_demo_scanner_arguments, cmd_demo_scanner\n"
    "parser = argparse.ArgumentParser()\n"
    "add_demo_scanner_arguments(parser)\n"
    "sys.exit(cmd_demo_scanner(parser.parse_args(sys.argv[1:])))\n"
)


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_demo_scanner(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the demo-scanner command on a free port; returns the process and the
    eSCL URL it printed once it was listening."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DEMO_SCANNER, "--port", "0", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True, preexec_fn=die_with_parent,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("demo scanner ready: "):
        stop_process(proc)
        raise AssertionError(f"demo scanner did not start: {line!r}")
    return proc, line.split(": ", 1)[1].strip()


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
