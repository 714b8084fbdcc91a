"""CLI entry point `appliance central` (wired in appliance/cli.py).

Started through the one service bootstrap (``appliance.system.service``), like the
device's services: journal logging as ``appliance-central``, exit 2 for a bad
configuration, SIGTERM/SIGINT into the stop event, one notifier. It imports nothing
of the device's packages (store, records, scanner, ocr, imaging, worker, web): the
central office shares only the wire format with the appliance.
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import threading

from appliance.sync.errors import SyncError
from appliance.system.config import Config
from appliance.system.service import ServiceNotifier, run_service


def add_central_arguments(parser: argparse.ArgumentParser) -> None:
    """`--client-id`: several receivers started from one configuration file (sharing a
    subscription, central.share_group) each need their own MQTT session."""
    parser.add_argument("--client-id", default="",
                        help="MQTT client id of this receiver (default: central.client_id)")


def _receive(config: Config, stop: threading.Event, notifier: ServiceNotifier, *,
             client_id: str = "") -> None:
    from appliance.central.receiver import run_receiver

    run_receiver(config, stop, notifier, client_id=client_id)


def cmd_central(args: argparse.Namespace) -> int:
    receive = functools.partial(_receive, client_id=getattr(args, "client_id", "") or "")
    return run_service("central", getattr(args, "config", None), receive,
                       # CentralStoreError (the central store's own, whichever the
                       # engine: PostgreSQL errors are translated) is a SyncError.
                       failures=(SyncError, sqlite3.Error))


def main_central(argv: list[str] | None = None) -> int:
    """`python -c`-style entry for tests that run the receiver as a real process."""
    parser = argparse.ArgumentParser(prog="appliance central")
    parser.add_argument("--config", default=None)
    add_central_arguments(parser)
    return cmd_central(parser.parse_args(argv))
