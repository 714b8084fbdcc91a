"""Child processes that cannot outlive their parent."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a `preexec_fn`).

    A supervisor or test killed with SIGKILL runs no clean-up; without this its
    children would keep the kiosk's ports and the scanner busy for the next start.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start_announcing(argv: Sequence[str], ready: str, name: str = "the child process",
                     cwd: str | os.PathLike[str] | None = None,
                     env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start `argv` in its own session (it dies with this process) and wait for its
    first line on stdout, which must start with `ready`; returns the process and the
    rest of that line (say the URL it listens on). Raises RuntimeError, the child
    stopped, when it says anything else first."""
    proc = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, start_new_session=True, preexec_fn=die_with_parent)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(ready):
        stop_process(proc)
        raise RuntimeError(f"{name} did not start: {line!r}")
    return proc, line[len(ready):].strip()


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM,
                 timeout: float = 10, *, group: bool = True) -> None:
    """Send `sig` to a child started with `start_new_session` (to its whole process
    group, or with `group=False` to the child alone, which stops its own children),
    give it `timeout` seconds, then SIGKILL the group; closes a piped stdout."""
    if proc.poll() is None:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
