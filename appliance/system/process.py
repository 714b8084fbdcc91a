"""Child processes that cannot outlive their parent."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a `preexec_fn`).

    A supervisor or test killed with SIGKILL runs no clean-up; without this its
    children would keep the kiosk's ports and the scanner busy for the next start.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
