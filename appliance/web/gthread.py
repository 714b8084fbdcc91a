"""gunicorn's gthread worker, but a request thread is given only whole request heads.

Why: gthread hands each new connection to a request thread, which then reads the
request line and headers with blocking reads and no time limit. A client that sends
half a request and stalls holds that thread until it hangs up; `web.threads` (4 on
a Pi) such clients took every thread, and nobody else got an answer: not the kiosk's
progress polls, not the arbiter's health probe (so systemd restarted the unit, and
the attacker could do it again). Measured by tests/web/test_redteam_screens.py.

Here a request thread first reads, without waiting, whatever the client has sent and
keeps it with the connection. Until the blank line that ends the head has arrived,
the connection goes back to gunicorn's poller (gthread's own "pending" path), which
holds it without a thread and closes it when it stays silent for the keepalive
time; a head that trickles in never takes longer than HEAD_SECONDS in all. Once the
head is whole, gunicorn's parser reads it from what was kept, then the body from the
socket, where every read waits at most READ_SECONDS for data (a stalled body or a
stalled keep-alive request then frees its thread too).

After a "Connection: close" answer the server lingers, reading what the client may
still send before it closes (RFC 9112 9.6), so that its last answer is not cut by a
reset. gunicorn lingers with a blocking read of up to 2 s on its main loop: every
client that kept its socket held every other client that long, one after another,
and a connection put on the poller meanwhile was then found expired and closed unread
(a reset). Here the lingering socket waits on the poller like any other, and the
main loop's round of expiries closes it when its time is up.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers import gthread

from appliance.system.config import seconds_from_env

# The whole request head must arrive within this time of its first byte. The
# environment may set it (seconds) for a server a test starts, so that a head trickled
# in until it is closed takes seconds, not the full ten.
HEAD_SECONDS_ENV = "APPLIANCE_HEAD_SECONDS"
HEAD_SECONDS: float = seconds_from_env(HEAD_SECONDS_ENV, 10.0)
# Read ahead at most this much before giving the head to the parser anyway (it then
# refuses an over-long head with its own limits: 431/400).
MAX_HEAD_BYTES = 64 * 1024
# Once a request is being parsed, one read waits this long for data at most.
READ_SECONDS = 30.0
_END_OF_HEAD = b"\r\n\r\n"
# After a "Connection: close" answer: how long, and for how many bytes at most, to go
# on reading before closing (gunicorn's own figures for its close_graceful).
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024


class _ReadAhead:
    """The client socket as gunicorn's parser sees it: the bytes read ahead first,
    then the socket itself, each blocking read bounded by READ_SECONDS. Everything
    else (send, fileno for the poller, setblocking, close) is the socket's own."""

    def __init__(self, sock: socket.socket, head: bytes) -> None:
        self._sock = sock
        self._head = head

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self._head:
            out, self._head = self._head[:size], self._head[size:]
            return out
        # Only a blocking read with no time limit of its own is bounded here: gunicorn's
        # graceful close reads with its own short timeout (on its main loop; waiting
        # READ_SECONDS there held every other client), a non-blocking read never waits.
        if self._sock.gettimeout() is None and not _readable(self._sock, READ_SECONDS):
            # As a client gone mid-request (gthread logs it at debug and closes).
            raise NoMoreData(f"nothing for {READ_SECONDS:.0f} s")
        return self._sock.recv(size, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _readable(sock: socket.socket, seconds: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(seconds))


class _Lingering:
    """A socket whose answer is sent and whose write side is shut: read and dropped
    until the client closes, LINGER_MAX_BYTES came, or `deadline` (monotonic)."""

    def __init__(self, sock: Any, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.drained = 0


class HeadFirstWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """See the module docstring; gunicorn's worker_class for `appliance web`."""

    def init_process(self) -> None:
        # Deadlines are all LINGER_SECONDS after their start, so the deque stays sorted.
        self.lingering: deque[_Lingering] = deque()
        super().init_process()

    def finish_request(self, conn: Any, fs: Future[Any]) -> None:
        """gunicorn's, except that a finished exchange the connection does not outlive
        lingers on the poller (the module docstring says why)."""
        if fs.cancelled() or fs.exception() is not None or fs.result():
            super().finish_request(conn, fs)  # kept alive, deferred, or failed
            return
        # Still counted in nr_conns until it is closed: worker_connections then bounds
        # the lingering sockets too (gunicorn stops accepting at it). Uncounted, clients
        # that kept their sockets piled them up until accept() failed with EMFILE and
        # the worker died (red team 23).
        self._linger(conn.sock)

    def _linger(self, sock: Any) -> None:
        entry = _Lingering(sock, time.monotonic() + LINGER_SECONDS)
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:  # gone already, or closed by handle()
            self._stop_lingering(entry)
            return
        self.lingering.append(entry)
        self.poller.register(sock, selectors.EVENT_READ, lambda _sock: self._drain(entry))

    def _drain(self, entry: _Lingering) -> None:
        try:
            data = entry.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        entry.drained += len(data)
        if not data or entry.drained >= LINGER_MAX_BYTES:
            self._stop_lingering(entry)

    def _stop_lingering(self, entry: _Lingering) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):  # already off the poller
            self.poller.unregister(entry.sock)
        with contextlib.suppress(OSError):
            entry.sock.close()
        self.nr_conns -= 1
        entry.deadline = 0.0  # done; dropped from the deque at its turn

    def murder_pending(self) -> None:
        """gunicorn's round of expiries on the main loop, plus the lingering sockets."""
        super().murder_pending()
        now = time.monotonic()
        while self.lingering and self.lingering[0].deadline <= now:
            entry = self.lingering.popleft()
            if entry.deadline:
                self._stop_lingering(entry)

    def handle(self, conn: Any) -> Any:
        if not conn.initialized:
            head = getattr(conn, "appliance_head", b"")
            started = getattr(conn, "appliance_started", None) or time.monotonic()
            try:
                chunk = conn.sock.recv(MAX_HEAD_BYTES, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                chunk = None
            except OSError:
                return False  # reset by the client: gunicorn closes it
            if chunk == b"":
                return False  # the client hung up
            head += chunk or b""
            if _END_OF_HEAD not in head and len(head) < MAX_HEAD_BYTES:
                if time.monotonic() - started > HEAD_SECONDS:
                    self.log.info("closing a connection from %s: no whole request head "
                                  "in %.0f s", conn.client, HEAD_SECONDS)
                    # Closed here, at once, not lingered on as a finished exchange is
                    # (finish_request): this client never sent a whole request.
                    conn.close()
                    return False
                conn.appliance_head, conn.appliance_started = head, started
                conn.data_ready = False
                return gthread._DEFER  # noqa: SLF001 - gthread's own "wait on the poller"
            conn.sock = _ReadAhead(conn.sock, head)
            conn.data_ready = True  # gthread would otherwise wait for more on the socket
        return super().handle(conn)
