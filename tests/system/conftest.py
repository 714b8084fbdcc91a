"""A real notification socket for the sd_notify tests.

The tests bind an AF_UNIX datagram socket themselves and point NOTIFY_SOCKET at it,
exactly what systemd does for a Type=notify service, so libsystemd's real sending
code runs; credentials (SO_PASSCRED) tell which process sent each message.
"""

from __future__ import annotations

import logging
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

UCRED = struct.Struct("3i")


@dataclass(frozen=True)
class Message:
    text: str
    pid: int


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))

    def recv(self, timeout: float = 5.0) -> Message:
        self.sock.settimeout(timeout)
        data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
        pid = -1
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = UCRED.unpack(payload[: UCRED.size])[0]
        return Message(data.decode(), pid)

    def drain(self, timeout: float = 0.2) -> list[Message]:
        """Everything that arrives until the socket stays quiet for ``timeout``."""
        out: list[Message] = []
        while True:
            try:
                out.append(self.recv(timeout))
            except TimeoutError:
                return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    # A short directory of its own: AF_UNIX paths are limited to 108 bytes and
    # pytest's tmp_path can be longer than that.
    folder = Path(tempfile.mkdtemp(prefix="sdn-", dir="/tmp"))
    ns = NotifySocket(folder / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(ns.path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield ns
    finally:
        ns.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """Tests that install the service's log handler leave the root logger as they found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)

