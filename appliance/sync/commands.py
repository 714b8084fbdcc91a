"""CLI entry point `appliance sync` (wired in appliance/cli.py).

SIGTERM (systemd's stop) and SIGINT set a stop event; the loops notice it within a
fraction of a second and close the MQTT session politely. Nothing needs flushing on
the way out because every fact that matters is already committed in SQLite.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import threading
from collections.abc import Callable
from types import FrameType

from appliance.store.errors import StoreError
from appliance.sync.errors import SyncError
from appliance.system import config as config_mod
from appliance.system.errors import ConfigError

log = logging.getLogger(__name__)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=None,
        help=f"configuration file (default: ${config_mod.CONFIG_ENV} or "
             f"{config_mod.DEFAULT_CONFIG_PATH})",
    )


def add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    _add_config(parser)
    parser.add_argument("--window", type=int, default=8,
                        help="records sent but not yet acknowledged at most (default 8)")


def _sd_notify() -> Callable[[str], None] | None:
    """systemd's notify if systemd-python is installed; outside systemd it is a no-op."""
    try:
        from systemd import daemon  # type: ignore[import-not-found]
    except ImportError:
        return None

    def notify(message: str) -> None:
        daemon.notify(message)

    return notify


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    return stop


def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_sync(args: argparse.Namespace) -> int:
    from appliance.sync.publisher import run_publisher

    _setup_logging()
    try:
        config = config_mod.load(getattr(args, "config", None))
        stop = _stop_on_signals()
        run_publisher(config, stop, _sd_notify(), window=getattr(args, "window", 8))
    except (ConfigError, StoreError, SyncError, sqlite3.Error) as e:
        log.error("sync stopped: %s", e)
        return 1
    return 0


def main_sync(argv: list[str] | None = None) -> int:
    """`python -m`-style entry used by tests that run the service as a real process."""
    parser = argparse.ArgumentParser(prog="appliance sync")
    add_sync_arguments(parser)
    return cmd_sync(parser.parse_args(argv))
