"""Readiness, status and watchdog messages to systemd (sd_notify) through systemd-python.

The worker and the sync service run as ``Type=notify`` with ``WatchdogSec=``: systemd
starts what depends on them only after ``READY=1`` and restarts them when ``WATCHDOG=1``
stops arriving. Outside systemd (tests, a technician running ``appliance worker`` in a
shell) there is no ``NOTIFY_SOCKET`` and every call here does nothing, so services never
need to ask whether they run under systemd.

Why the watchdog is kicked from the main loop and never from a helper thread: the
watchdog exists to catch a service that is alive but stuck - a SANE call that never
returns, a deadlocked SQLite transaction, a wedged MQTT loop. A thread that kicks on a
timer keeps kicking while the main loop is stuck, so systemd would never notice and the
kiosk would wait forever. Kicking only after a loop iteration has completed makes
"WATCHDOG=1 arrived" mean "the service did useful work recently". ``run_watched_loop``
and ``WatchdogKicker`` below implement that.

Long work inside one iteration (OCR of a four-page paper takes a minute on a Pi, longer
than ``WatchdogSec=``) proves liveness from its own progress instead: call
``notifier.kick_if_due()`` from the job's progress callback, after each page or line
batch that really completed. It sends ``WATCHDOG=1`` at most once per half interval
(a ``WatchdogKicker`` the notifier owns), so calling it often is cheap, and it does
nothing when systemd does not watch the process. A callback that only receives a
plain ``Callable[[str], None]`` (tests pass ``list.append``) can use
``kick_watchdog_if_due(notify)``, which kicks through a ServiceNotifier and does
nothing for anything else.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"


class ServiceNotifier:
    """One process's channel to systemd's notification socket.

    Also usable as a plain ``Callable[[str], None]`` (``notifier("READY=1")``), the form
    the worker and sync loops accept, so they can be tested with a list's ``append``.

    A notification is a courtesy to the supervisor, never a reason to die: a missing or
    stale socket (``FileNotFoundError``, ``ConnectionRefusedError``) is logged once per
    notifier and then ignored, because a service that crashes over its status line would
    be restarted in a loop by the very supervisor it failed to reach.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        pid: int | None = None,
    ) -> None:
        # environ/pid are injectable so watchdog_interval() can be tested without
        # touching the real environment; sending always uses the process environment,
        # which is what libsystemd reads.
        self._environ = environ if environ is not None else os.environ
        self._pid = pid if pid is not None else os.getpid()
        self._failure_logged = False
        self._lock = threading.Lock()
        # Built on first use: the interval is read from the environment only then.
        self._kicker: WatchdogKicker | None = None
        self._kick_lock = threading.Lock()

    def __call__(self, message: str) -> None:
        self.send(message)

    def send(self, message: str) -> bool:
        """Send raw ``KEY=value`` lines; True only when systemd got them."""
        if not os.environ.get(NOTIFY_SOCKET_ENV):
            # What sd_notify() itself does without a socket; skipping the import keeps
            # libsystemd out of processes that systemd does not supervise.
            return False
        from systemd import daemon

        try:
            return bool(daemon.notify(message))
        except OSError as e:
            with self._lock:
                first = not self._failure_logged
                self._failure_logged = True
            if first:
                log.warning(
                    "Cannot reach the systemd notification socket %r (%s); "
                    "readiness and watchdog messages are ignored from now on",
                    os.environ.get(NOTIFY_SOCKET_ENV, ""),
                    e.strerror or type(e).__name__,
                )
            return False

    def ready(self, status: str = "") -> bool:
        """Tell systemd start-up is complete, so dependants (and the kiosk) may start."""
        return self.send(_with_status("READY=1", status))

    def watchdog(self) -> bool:
        """Prove liveness; call only from the loop that does the work (see module doc)."""
        return self.send("WATCHDOG=1")

    @property
    def kicker(self) -> WatchdogKicker:
        """The rate limiter behind ``kick_if_due``, shared by every caller in the process."""
        with self._kick_lock:
            if self._kicker is None:
                self._kicker = WatchdogKicker(self.send, self.watchdog_interval())
            return self._kicker

    def kick_if_due(self) -> bool:
        """Send ``WATCHDOG=1`` when half the watchdog interval has passed since the last kick.

        For long jobs: call it from progress callbacks (after a page, after a line batch)
        so a minute of OCR does not get the worker killed, while a job that stops making
        progress still stops the kicks. Thread-safe; a no-op when not watched. True when
        a kick was sent.
        """
        kicker = self.kicker
        with self._kick_lock:
            return kicker.kick_if_due()

    def stopping(self, status: str = "") -> bool:
        """Tell systemd a clean shutdown has begun, so a slow stop is not seen as a hang."""
        return self.send(_with_status("STOPPING=1", status))

    def status(self, text: str) -> bool:
        """A one-line state shown by ``systemctl status``; IDs only, no personal data."""
        return self.send(_with_status("", text))

    def watchdog_interval(self) -> float | None:
        """Seconds within which systemd expects ``WATCHDOG=1``, or None when not watched.

        There is no binding for sd_watchdog_enabled(), so the environment is read the
        same way: ``WATCHDOG_USEC`` must be a positive integer, and when ``WATCHDOG_PID``
        is set it must be this process - a child that inherited the variables must not
        think it is the watched one.
        """
        raw = self._environ.get(WATCHDOG_USEC_ENV, "").strip()
        if not raw:
            return None
        try:
            usec = int(raw)
        except ValueError:
            log.warning("Ignoring %s=%r: not an integer", WATCHDOG_USEC_ENV, raw)
            return None
        if usec <= 0:
            return None
        owner = self._environ.get(WATCHDOG_PID_ENV, "").strip()
        if owner:
            try:
                owner_pid = int(owner)
            except ValueError:
                log.warning("Ignoring watchdog: %s=%r is not a process id", WATCHDOG_PID_ENV, owner)
                return None
            if owner_pid != self._pid:
                return None
        return usec / 1_000_000


def kick_watchdog_if_due(notify: Callable[[str], object] | None) -> bool:
    """``notify.kick_if_due()`` when ``notify`` is a ServiceNotifier, else nothing.

    Lets code that is handed a plain callable (the worker's ``notify`` argument, which
    tests replace with ``list.append``) kick the watchdog without type checks of its own.
    """
    if isinstance(notify, ServiceNotifier):
        return notify.kick_if_due()
    return False


def _with_status(head: str, status: str) -> str:
    # STATUS is one line in the protocol; a newline would start a new assignment.
    lines = [head] if head else []
    if status:
        lines.append("STATUS=" + " ".join(status.splitlines()))
    return "\n".join(lines)


class WatchdogKicker:
    """Rate-limits ``WATCHDOG=1`` so a fast loop doesn't flood systemd.

    Kicks at half the interval, as sd_watchdog_enabled(3) advises, leaving the other
    half as slack for one slow iteration. With no watchdog configured it does nothing.
    """

    def __init__(
        self,
        notify: Callable[[str], object],
        interval: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notify = notify
        self._period = interval / 2 if interval else None
        self._clock = clock
        self._last: float | None = None

    @property
    def period(self) -> float | None:
        return self._period

    def kick_if_due(self) -> bool:
        """Call after each completed iteration of the main loop; True when a kick was sent."""
        if self._period is None:
            return False
        now = self._clock()
        if self._last is not None and now - self._last < self._period:
            return False
        self._notify("WATCHDOG=1")
        self._last = now
        return True


def run_watched_loop(
    step: Callable[[], object],
    notifier: ServiceNotifier,
    stop: threading.Event,
    *,
    pause_seconds: float = 1.0,
    ready_status: str | None = "",
    stopping_status: str = "",
) -> None:
    """Run ``step`` until ``stop`` is set, kicking the watchdog after each completed step.

    ``step`` must return in well under the watchdog interval; if it hangs, no kick is
    sent and systemd restarts the service, which is the point. If it raises, the error
    propagates (no kick, ``STOPPING=1`` still sent) so ``Restart=on-failure`` applies.
    The idle pause is capped at the kick period so sleeping never makes a kick late.
    ``ready_status=None`` skips ``READY=1`` for callers that announced readiness already.
    """
    kicker = WatchdogKicker(notifier, notifier.watchdog_interval())
    pause = pause_seconds
    if kicker.period is not None and pause > kicker.period:
        pause = kicker.period
    if ready_status is not None:
        notifier.ready(ready_status)
    try:
        while not stop.is_set():
            step()
            kicker.kick_if_due()
            stop.wait(pause)
    finally:
        notifier.stopping(stopping_status)


def pause(stop: threading.Event, seconds: float, notify: Callable[[str], None]) -> None:
    """Sleep until `stop` or `seconds`, still feeding the systemd watchdog every second."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        notify("WATCHDOG=1")
        stop.wait(min(left, 1.0))
