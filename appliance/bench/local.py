"""What the benches share to run the appliance's processes on this machine."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Where free_port looks when the kernel's ephemeral range is known: above the
# well-known ports, below that range.
LOWEST_PORT = 10000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A loopback TCP port free right now, for a child to bind a moment later.

    Taken below the kernel's ephemeral range where there is room: a port from bind(0)
    is an ephemeral one, which any outgoing connection made meanwhile (by a test beside
    this one, say) may be given before the child binds it (a CI run where restarted
    scanners found theirs taken). A port below the range goes only to an explicit bind.
    """
    try:
        low = int(_EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for _ in range(100 if low - 1 > LOWEST_PORT else 0):
        port = random.randint(LOWEST_PORT, low - 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.25) -> Any:
    """Poll `predicate` until it returns something true (returned) or `timeout`
    seconds pass (TimeoutError naming `what`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
