"""One way to start a long-running process: web, worker, sync, central, demo scanner, run.

Every service of the appliance starts the same way, so that a fix to start-up (a log
destination, a signal, an exit code) is made once and holds for all of them:

1. logging: ``setup_logging(name)`` - the journal with ``SYSLOG_IDENTIFIER=appliance-<name>``
   under systemd, a concise line on stderr elsewhere (see ``system/logging.py``);
2. configuration: read once from ``--config``, else ``$APPLIANCE_CONFIG``, else the
   default path, and validated before anything else runs; a bad file ends the process
   with ``EXIT_CONFIG`` (2) from every subcommand, its message naming the key;
3. signals: SIGTERM (systemd's stop) and SIGINT (Ctrl-C) set one ``threading.Event``
   the service's loop watches, so it ends its current step and returns cleanly;
4. systemd notifications: one ``ServiceNotifier`` per process for ``READY=1``,
   ``STOPPING=1`` and ``WATCHDOG=1``.

A service body has the signature ``body(config, stop, notifier)``; the notifier is also
a plain ``Callable[[str], None]`` (``notifier("READY=1")``), so bodies written against
that type, and tests that pass ``list.append``, keep working::

    from appliance.system.service import run_service
    from appliance.worker import run_worker

    sys.exit(run_service("worker", args.config, run_worker))

Watchdog during long work: the body kicks after each loop iteration, and a long job
inside one iteration (OCR of a paper) calls ``notifier.kick_if_due()`` from its
progress callback - rate-limited to half the watchdog interval, a no-op when systemd
does not watch the process, safe from any thread. Code holding only a plain callable
uses ``kick_watchdog_if_due(notify)`` from ``system/notify.py``. Never kick from a
timer thread: that would hide the hang the watchdog exists to catch.

This module imports nothing heavier than the system layer itself, so ``appliance sync``
and ``appliance central`` start without Flask, numpy or onnxruntime in memory.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from types import FrameType
from typing import Any

from appliance.system import config as config_mod
from appliance.system.config import Config
from appliance.system.errors import ConfigError
from appliance.system.logging import setup_logging
from appliance.system.notify import ServiceNotifier, kick_watchdog_if_due

log = logging.getLogger(__name__)

EXIT_OK = 0
# An error the service reported and logged (broker refused TLS, database unreadable):
# Restart=on-failure applies.
EXIT_FAILURE = 1
# The configuration is wrong: a restart cannot help until a person fixes the file.
EXIT_CONFIG = 2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Body = Callable[[Config, threading.Event, ServiceNotifier], object]

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "Body",
    "Service",
    "ServiceNotifier",
    "kick_watchdog_if_due",
    "load_config",
    "report_config_error",
    "run_service",
    "service",
    "signals_set",
    "stop_on_signals",
]


@dataclass(frozen=True)
class Service:
    """What a started service gets: its validated configuration, stop event and notifier."""

    name: str
    config: Config
    stop: threading.Event
    notifier: ServiceNotifier


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """The configuration named by ``path``, else ``$APPLIANCE_CONFIG``, else the default.

    Validated here, once: services receive a ``Config`` and never read the file again.
    Raises ConfigError naming the key.
    """
    return config_mod.load(path)


def report_config_error(error: ConfigError, prog: str = "appliance") -> int:
    """Print the one line a technician needs and return ``EXIT_CONFIG``.

    Printed to stderr rather than logged so it reads the same from a shell and, through
    the unit's ``SyslogIdentifier=``, under the same tag in the journal.
    """
    print(f"{prog}: configuration error: {error}", file=sys.stderr, flush=True)
    return EXIT_CONFIG


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install(stop: threading.Event) -> dict[int, Any]:
    """Point SIGTERM and SIGINT at ``stop``; the handlers they had before."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


@contextmanager
def signals_set(stop: threading.Event) -> Iterator[threading.Event]:
    """While inside, SIGTERM and SIGINT set ``stop``; the previous handlers come back after.

    Python only lets the main thread install handlers; elsewhere (a service body run in
    a test's thread) this does nothing and the caller sets ``stop`` itself.
    """
    if not _on_main_thread():
        yield stop
        return
    previous = _install(stop)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stop_on_signals() -> threading.Event:
    """A new event that SIGTERM/SIGINT set for the rest of the process's life."""
    stop = threading.Event()
    if _on_main_thread():
        _install(stop)
    return stop


@contextmanager
def service(
    name: str,
    config_path: str | os.PathLike[str] | None,
    *,
    handle_signals: bool = True,
    level: str = "INFO",
) -> Iterator[Service]:
    """Set up logging, load the configuration, install the stop signals; yield the Service.

    ``handle_signals=False`` is for a body that installs its own (gunicorn's arbiter).
    Logging comes first so that everything after it, configuration errors included,
    lands under the service's identifier.
    """
    setup_logging(name, level)
    config = load_config(config_path)
    stop = threading.Event()
    with signals_set(stop) if handle_signals else nullcontext(stop):
        yield Service(name, config, stop, ServiceNotifier())


def run_service(
    name: str,
    config_path: str | os.PathLike[str] | None,
    body: Body,
    *,
    handle_signals: bool = True,
    failures: tuple[type[BaseException], ...] = (),
) -> int:
    """Start service ``name`` and run ``body(config, stop, notifier)``; the exit code.

    ``EXIT_CONFIG`` for a configuration error (also one raised inside the body, e.g. by
    an override), ``EXIT_FAILURE`` for an error of a type in ``failures`` (logged in one
    line: the service knows these and a stack trace would add nothing), ``EXIT_OK`` when
    the body returns. Anything else propagates with its traceback, as a bug should.
    """
    try:
        with service(name, config_path, handle_signals=handle_signals) as svc:
            body(svc.config, svc.stop, svc.notifier)
    except ConfigError as e:
        return report_config_error(e, f"appliance {name}")
    except failures as e:
        log.error("%s stopped: %s", name, e)
        return EXIT_FAILURE
    return EXIT_OK
