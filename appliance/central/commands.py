"""CLI entry point `appliance central` (wired in appliance/cli.py).

Started through the one service bootstrap (``appliance.system.service``), like the
device's services: journal logging as ``appliance-central``, exit 2 for a bad
configuration, SIGTERM/SIGINT into the stop event, one notifier. It imports nothing
of the device's packages (store, records, scanner, ocr, imaging, worker, web): the
central office shares only the wire format with the appliance.
"""

from __future__ import annotations

import argparse
import sqlite3
import threading

from appliance.sync.errors import SyncError
from appliance.system.config import Config
from appliance.system.service import ServiceNotifier, run_service


def add_central_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own; `--config` is the CLI's."""


def _receive(config: Config, stop: threading.Event, notifier: ServiceNotifier) -> None:
    from appliance.central.receiver import run_receiver

    run_receiver(config, stop, notifier)


def cmd_central(args: argparse.Namespace) -> int:
    return run_service("central", getattr(args, "config", None), _receive,
                       # CentralStoreError (the central store's own) is a SyncError.
                       failures=(SyncError, sqlite3.Error))


def main_central(argv: list[str] | None = None) -> int:
    """`python -c`-style entry for tests that run the receiver as a real process."""
    parser = argparse.ArgumentParser(prog="appliance central")
    parser.add_argument("--config", default=None)
    add_central_arguments(parser)
    return cmd_central(parser.parse_args(argv))
