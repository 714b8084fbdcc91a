"""`appliance web`: serve the app with gunicorn, started from Python.

gthread workers, because a slow request (a large page image on a Pi's SD card) must
not block the kiosk's 500 ms progress polls, and no preload: each worker builds its
own app after the fork, so no SQLite connection crosses a fork. The Config object is
handed over before the fork; a worker that gunicorn restarts later inherits it too.

Readiness and watchdog (the unit is Type=notify with WatchdogSec=): gunicorn's own
READY=1 comes as soon as the arbiter listens, before the worker has built the app, so
it is suppressed (`WatchedArbiter`). Instead the arbiter (the unit's main process)
asks the served socket for a cheap page (/api/health) from its own loop and sends
READY=1 on the first 200, then WATCHDOG=1 after each later 200 only. A worker that hangs
(deadlock, a stuck request pool, SIGSTOP) stops answering, the pings stop, and
systemd restarts the unit - a timer that pinged regardless would hide exactly that.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from appliance.system import config as config_mod
from appliance.system.config import Config
from appliance.system.notify import NOTIFY_SOCKET_ENV, ServiceNotifier
from appliance.system.service import run_service

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 60
# One process is enough for a kiosk and a counter; threads give the concurrency and
# all state is in SQLite, so more processes would only cost a Pi's memory.
WORKERS = 1
HEALTH_PATH = "/api/health"
# Before READY: how long one try of the served socket may take while the worker boots
# (the arbiter's loop tries about once a second).
STARTUP_PROBE_SECONDS = 1.0
# Without a watchdog (no WATCHDOG_USEC): how often the health is still looked at.
UNWATCHED_POLL_SECONDS = 30.0
# Loopback only, never through an http_proxy the unit's environment may carry.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url: str, timeout: float) -> bool:
    """True when `url` answers 200 within `timeout` seconds."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class HealthWatch:
    """READY=1 once the app answers on its socket, then WATCHDOG=1 only while it does.

    Driven from the arbiter's own loop (`WatchedArbiter.murder_workers`), not from a
    thread: the arbiter forks workers, and a thread caught inside an import or a lock
    at that moment leaves the new worker deadlocked on it (seen here: a worker that
    never answered). In the loop, a probe and a fork never overlap, and a stuck arbiter
    stops the pings as surely as a stuck worker.
    """

    def __init__(self, url: str, notifier: ServiceNotifier,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.notifier = notifier
        self.clock = clock
        interval = notifier.watchdog_interval()
        # Ping at half the interval (sd_watchdog_enabled(3)); a slow answer still
        # counts while it comes within most of that half, so a busy CPU is not a hang.
        self.period = interval / 2 if interval else None
        self.timeout = min(5.0, self.period * 0.8) if self.period else 5.0
        self.ready = False
        self.failing = False
        self.next_at = 0.0

    def step(self) -> None:
        """Probe when due; called about once a second by the arbiter's loop."""
        began = self.clock()
        if began < self.next_at:
            return
        ok = answers(self.url, STARTUP_PROBE_SECONDS if not self.ready else self.timeout)
        if ok and not self.ready:
            self.ready = True
            self.notifier.ready(f"serving {self.url}")
            log.info("web: %s answers; READY=1 sent", self.url)
        elif ok and self.period is not None:
            self.notifier.watchdog()
        if self.ready and ok == self.failing:
            self.failing = not ok
            if self.failing:
                log.warning("web: %s does not answer; watchdog pings withheld", self.url)
            else:
                log.info("web: %s answers again", self.url)
        pause = (0.0 if not self.ready
                 else self.period if self.period is not None else UNWATCHED_POLL_SECONDS)
        self.next_at = began + pause  # one probe per period, however long it took


class WatchedArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter, minus its early READY=1, plus the `HealthWatch` probes."""

    health: HealthWatch | None = None

    def start(self) -> None:
        socket_path = os.environ.pop(NOTIFY_SOCKET_ENV, None)
        try:
            super().start()  # binds the sockets; its READY finds no socket to send to
        finally:
            if socket_path is not None:
                os.environ[NOTIFY_SOCKET_ENV] = socket_path
        if socket_path is None or self.health is not None:
            return
        host, port = self.LISTENERS[0].sock.getsockname()[:2]
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        from appliance.system.readiness import url_for

        self.health = HealthWatch(url_for(bind, HEALTH_PATH), ServiceNotifier())

    def murder_workers(self) -> None:
        """Run by the arbiter's loop after each wait for signals (at most 1 s): gunicorn
        kills workers past their timeout, then the health probe runs when due."""
        super().murder_workers()
        if self.health is not None:
            self.health.step()


# glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
# memory freed in one is not reused by another: with the gthread pool that cost the
# web worker 4-5 MB of RSS under load (measured with 8 concurrent clients on the
# screens: 86-88 MB with glibc's default, 82 MB with two arenas). Two arenas keep
# the request threads from contending on one lock.
M_ARENA_MAX = -8  # glibc's mallopt parameter number
WEB_MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = WEB_MALLOC_ARENAS) -> bool:
    """mallopt(M_ARENA_MAX) for this process; False on a libc without it."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


def _post_fork(_server: Any, _worker: Any) -> None:
    """In each new gunicorn worker, before its request threads exist."""
    limit_malloc_arenas()


def gunicorn_options(config: Config) -> dict[str, Any]:
    return {
        "bind": [config.web.bind],
        "workers": WORKERS,
        # gthread that gives its threads only whole request heads (web/gthread.py).
        "worker_class": "appliance.web.gthread.HeadFirstWorker",
        "threads": config.web.threads,
        "timeout": TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "appliance-web",
        # gunicorn 23+ opens a control socket under $HOME; the appliance does not use it,
        # and two instances (tests, a demo beside the service) would fight over it.
        "control_socket_disable": True,
        "post_fork": _post_fork,
    }


class WebServer(BaseApplication):
    """gunicorn driven from code: options from our Config, never from gunicorn's CLI."""

    def __init__(self, config: Config, options: dict[str, Any] | None = None) -> None:
        self.appliance_config = config
        self.options = options if options is not None else gunicorn_options(config)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from appliance.web import create_app

        return create_app(self.appliance_config)

    def run(self) -> None:
        try:
            WatchedArbiter(self).run()
        except RuntimeError as e:  # what BaseApplication.run does with a boot failure
            print(f"\nError: {e}\n", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)


def run_web(config: Config) -> None:
    """Serve until SIGTERM/SIGINT (handled by gunicorn's arbiter)."""
    # The key is checked (and the schema migrated) here, before gunicorn forks: a wrong
    # or missing key is then a configuration error (exit 2), not a worker boot failure.
    from appliance.store.db import connect

    connect(config.paths.database, migrate=True, key_file=config.paths.key_file).close()
    log.info("web: serving on %s with %d threads", config.web.bind, config.web.threads)
    WebServer(config).run()


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", help="HOST:PORT to listen on (overrides web.bind)")
    parser.add_argument("--threads", type=int, help="threads per worker (overrides web.threads)")


def cmd_web(args: argparse.Namespace) -> int:
    """Start through the service bootstrap (logging as ``appliance-web``, the configuration
    validated once, exit 2 when it is wrong); gunicorn's arbiter installs its own signal
    handlers and `WatchedArbiter` sends READY=1, so the bootstrap leaves both to it."""

    def body(config: Config, _stop: object, _notifier: object) -> None:
        overrides: dict[str, Any] = {}
        if getattr(args, "bind", None):
            overrides["bind"] = args.bind
        if getattr(args, "threads", None):
            overrides["threads"] = args.threads
        if overrides:
            config = config_mod.with_overrides(config, web=overrides)
        run_web(config)

    return run_service("web", getattr(args, "config", None), body, handle_signals=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m appliance.web.server`: the same as `appliance web`, for tests and units."""
    parser = argparse.ArgumentParser(prog="appliance-web")
    parser.add_argument("--config", default=os.environ.get(config_mod.CONFIG_ENV))
    add_web_arguments(parser)
    return cmd_web(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
