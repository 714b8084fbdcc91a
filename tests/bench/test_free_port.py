"""free_port gives ports below the kernel's ephemeral range: a port from bind(0) is
an ephemeral one, which an outgoing connection made by a test running beside may be
given before the child process binds it (a CI run where two restarted demo scanners
found theirs taken)."""

from __future__ import annotations

import socket
from pathlib import Path

from appliance.bench.local import LOWEST_PORT, free_port

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def test_free_ports_are_bindable_and_below_the_ephemeral_range():
    low = int(RANGE.read_text(encoding="ascii").split()[0])
    ports = [free_port() for _ in range(50)]
    assert all(LOWEST_PORT <= port < low for port in ports), ports
    for port in ports[:10]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    # What an outgoing connection or a bind(0) is given lies in the range instead.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        assert s.getsockname()[1] >= low
