"""The eSCL emulator as a child process (`python -m appliance.demo.escl_emulator`),
for tests that need an eSCL scanner outside the test process (see conftest.py for
why), stopped by PID."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from appliance.system.process import start_announcing
from appliance.system.process import stop_process as stop_process  # the tests' name for it

REPO = Path(__file__).resolve().parents[2]
DEMO_SCANNER = (
    "import argparse, sys\n"
    "from appliance.demo.commands import add_demo_scanner_arguments, cmd_demo_scanner\n"
    "parser = argparse.ArgumentParser()\n"
    "add_demo_scanner_arguments(parser)\n"
    "sys.exit(cmd_demo_scanner(parser.parse_args(sys.argv[1:])))\n"
)
EMULATOR = "appliance.demo.escl_emulator"


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_demo_scanner(*args: str, port: int = 0,
                       command: bool = False) -> tuple[subprocess.Popen[str], str]:
    """Start the eSCL emulator on `port` (0: a free one); returns the process and the
    eSCL URL it printed once it was listening. `command=True` starts it through the
    `appliance demo-scanner` command instead (its own options only)."""
    argv = ["-c", DEMO_SCANNER] if command else ["-m", EMULATOR]
    return start_announcing([sys.executable, *argv, "--port", str(port), *args],
                            "demo scanner ready: ", "demo scanner", cwd=REPO)
