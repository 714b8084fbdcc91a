"""A child started with die_with_parent is gone when its parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

PARENT = """
import subprocess, sys, time
from appliance.system.process import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_child_dies_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return
            with open(f"/proc/{child}/stat") as fh:
                if fh.read().split()[2] == "Z":
                    return
            time.sleep(0.05)
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the child outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()
