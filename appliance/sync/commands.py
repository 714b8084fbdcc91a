"""CLI entry point `appliance sync` (wired in appliance/cli.py).

Started through the one service bootstrap (``appliance.system.service``): journal
logging as ``appliance-sync``, the configuration from ``--config`` or
``$APPLIANCE_CONFIG`` (exit 2 when it is wrong, as for every subcommand), SIGTERM and
SIGINT into the stop event the loops watch, READY/WATCHDOG/STOPPING through one
notifier. Nothing needs flushing on the way out because every fact that matters is
already committed in SQLite.

Imports stay light on purpose: this process lives next to the OCR on a 2 GB device, so
it loads the outbox loop and sqlite3, paho only once a broker is configured, and
nothing of Flask, numpy or PIL.
"""

from __future__ import annotations

import argparse
import sqlite3
import threading
from functools import partial

from appliance.store.errors import StoreError
from appliance.sync.errors import SyncError
from appliance.system.config import Config
from appliance.system.service import ServiceNotifier, run_service

# The publisher's own default; importing it from there would load the outbox loop just
# to print --help, so tests/sync keeps the two equal instead.
DEFAULT_WINDOW = 1024


def add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help=f"records sent but not yet acknowledged at most "
                             f"(default {DEFAULT_WINDOW})")


def _publish(config: Config, stop: threading.Event, notifier: ServiceNotifier, *,
             window: int) -> None:
    from appliance.sync.publisher import run_publisher

    run_publisher(config, stop, notifier, window=window)


def cmd_sync(args: argparse.Namespace) -> int:
    return run_service("sync", getattr(args, "config", None),
                       partial(_publish, window=getattr(args, "window", DEFAULT_WINDOW)),
                       failures=(StoreError, SyncError, sqlite3.Error))


def main_sync(argv: list[str] | None = None) -> int:
    """`python -c`-style entry used by tests that run the service as a real process."""
    parser = argparse.ArgumentParser(prog="appliance sync")
    parser.add_argument("--config", default=None)
    add_sync_arguments(parser)
    return cmd_sync(parser.parse_args(argv))
