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
import getpass
import os
import sqlite3
import sys
import threading

from appliance.sync.errors import SyncError
from appliance.system.config import Config
from appliance.system.service import ServiceNotifier, run_service


def add_central_arguments(parser: argparse.ArgumentParser) -> None:
    """`--client-id`: several receivers started from one configuration file (sharing a
    subscription, central.share_group) each need their own MQTT session."""
    parser.add_argument("--client-id", default="",
                        help="MQTT client id of this receiver (default: central.client_id)")
    parser.add_argument("--report", action="store_true",
                        help="print counters, conflicts, refused records and dead letters "
                             "from the central database, and exit")
    parser.add_argument("--json", action="store_true", help="with --report: as JSON")
    parser.add_argument("--last", type=int, default=20, metavar="N",
                        help="with --report: how many of each to list (default 20)")
    parser.add_argument("--decide", nargs=3, metavar=("DEVICE", "RECORD_ID", "SHA256"),
                        help="serve this content of a record id in conflict (see --report) "
                             "from now on, record the decision, and exit")
    parser.add_argument("--show", nargs=2, metavar=("DEVICE", "RECORD_ID"),
                        help="print every content held under this record id, opened, "
                             "side by side (citizens' data: for the operator who "
                             "decides), and exit; with --json as JSON")
    parser.add_argument("--operator", default="",
                        help="with --decide: who decides (default: the login name)")


def _receive(config: Config, stop: threading.Event, notifier: ServiceNotifier, *,
             client_id: str = "") -> None:
    from appliance.central.receiver import run_receiver

    run_receiver(config, stop, notifier, client_id=client_id)


def cmd_central(args: argparse.Namespace) -> int:
    if getattr(args, "report", False):
        return _report(args)
    if getattr(args, "decide", None):
        return _decide(args)
    if getattr(args, "show", None):
        return _show(args)
    receive = functools.partial(_receive, client_id=getattr(args, "client_id", "") or "")
    return run_service("central", getattr(args, "config", None), receive,
                       # CentralStoreError (the central store's own, whichever the
                       # engine: PostgreSQL errors are translated) is a SyncError.
                       failures=(SyncError, sqlite3.Error))


def _report(args: argparse.Namespace) -> int:
    """--report: read the database the receiver writes, print, exit (1 if unreadable)."""
    from appliance.central.report import report
    from appliance.system import config as config_mod

    try:
        print(report(config_mod.load(getattr(args, "config", None)),
                     last=max(1, args.last), as_json=args.json))
    except (SyncError, sqlite3.Error) as e:
        print(f"appliance central --report: {e}", file=sys.stderr)
        return 1
    return 0


def _decide(args: argparse.Namespace) -> int:
    """--decide: an operator's choice for a contested record id (central_store.decide)."""
    from appliance.central.report import decide
    from appliance.system import config as config_mod

    device_id, record_id, sha256 = args.decide
    operator = args.operator or os.environ.get("SUDO_USER") or getpass.getuser()
    try:
        print(decide(config_mod.load(getattr(args, "config", None)), device_id, record_id,
                     sha256, operator))
    except (SyncError, sqlite3.Error) as e:
        print(f"appliance central --decide: {e}", file=sys.stderr)
        return 1
    return 0


def _show(args: argparse.Namespace) -> int:
    """--show: the contents held under a record id, opened, to decide on."""
    from appliance.central.report import show
    from appliance.system import config as config_mod

    device_id, record_id = args.show
    try:
        print(show(config_mod.load(getattr(args, "config", None)), device_id, record_id,
                   as_json=args.json))
    except (SyncError, sqlite3.Error) as e:
        print(f"appliance central --show: {e}", file=sys.stderr)
        return 1
    return 0


def main_central(argv: list[str] | None = None) -> int:
    """`python -c`-style entry for tests that run the receiver as a real process."""
    parser = argparse.ArgumentParser(prog="appliance central")
    parser.add_argument("--config", default=None)
    add_central_arguments(parser)
    return cmd_central(parser.parse_args(argv))
