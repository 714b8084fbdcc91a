"""What a long-running service does when the data disk is full at start-up: wait, never exit.

Why: systemd restarts a service that exits, every few seconds, and after five starts in
ten minutes leaves it failed. A full disk is not fixed by restarting, and a sync or
worker left failed stays down after space is back: nothing delivered, no scan run,
until a person restarts it. Their main loops already wait on a full disk; the writes
they make before the loop (interrupted deliveries and jobs put back, device state) now
wait the same way, and they tell systemd they are up meanwhile (READY=1, then the
watchdog every second), so that waiting is not taken for a start-up that hangs.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from appliance.store.errors import StoreError, is_disk_full
from appliance.system.config import seconds_from_env
from appliance.system.notify import pause

log = logging.getLogger(__name__)

# A full data disk is tried again this often (worker, sync, their start-up). The
# environment may shorten it for services that tests start as processes: those fill a
# real disk and free it again, and each time wait a retry for nothing but the clock.
RETRY_ENV = "APPLIANCE_DISK_RETRY_SECONDS"
RETRY_SECONDS: float = seconds_from_env(RETRY_ENV, 5.0)
T = TypeVar("T")


def start_when_space(start: Callable[[], T], stop: threading.Event,
                     notify: Callable[[str], None], service: str) -> T | None:
    """`start()`'s result, tried again while it fails because the disk is full; None if
    `stop` is set first. Any other failure (a wrong key, a damaged database) goes up."""
    waiting = False
    while not stop.is_set():
        try:
            return start()
        except (StoreError, sqlite3.Error, OSError) as e:
            if not is_disk_full(e):
                raise
            if not waiting:
                waiting = True
                notify("READY=1")
                log.warning("%s: data disk full at start-up, waiting for space (trying "
                            "again every %.0f s): %s", service, RETRY_SECONDS, e)
            notify("STATUS=data disk full: waiting for space")
            pause(stop, RETRY_SECONDS, notify)
    return None


def open_when_space(connect: Callable[[], sqlite3.Connection],
                    prepare: Callable[[sqlite3.Connection], object], stop: threading.Event,
                    notify: Callable[[str], None], service: str) -> sqlite3.Connection | None:
    """A service's database, opened and prepared (its start-up writes), both tried
    again while the disk is full (start_when_space); closed again when preparing fails."""
    def start() -> sqlite3.Connection:
        conn = connect()
        try:
            prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    return start_when_space(start, stop, notify, service)
