"""CLI entry point `appliance central` (wired in appliance/cli.py)."""

from __future__ import annotations

import argparse
import logging
import sqlite3

from appliance.store.errors import StoreError
from appliance.sync.commands import _add_config, _sd_notify, _setup_logging, _stop_on_signals
from appliance.sync.errors import SyncError
from appliance.system import config as config_mod
from appliance.system.errors import ConfigError

log = logging.getLogger(__name__)


def add_central_arguments(parser: argparse.ArgumentParser) -> None:
    _add_config(parser)


def cmd_central(args: argparse.Namespace) -> int:
    from appliance.central.receiver import run_receiver

    _setup_logging()
    try:
        config = config_mod.load(getattr(args, "config", None))
        stop = _stop_on_signals()
        run_receiver(config, stop, _sd_notify())
    except (ConfigError, StoreError, SyncError, sqlite3.Error) as e:
        log.error("central receiver stopped: %s", e)
        return 1
    return 0


def main_central(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="appliance central")
    add_central_arguments(parser)
    return cmd_central(parser.parse_args(argv))
