"""CLI glue for `appliance demo-scanner`: the eSCL emulator as a foreground service.

Kept apart from cli.py so the CLI only wires subcommands; the demo kiosk (or a
field technician without the office scanner at hand) runs this next to the
worker and points airscan.conf at it (`sane_env.write_sane_config(airscan_url=...)`).
"""

from __future__ import annotations

import argparse
import logging
import threading

from appliance.system.config import Config
from appliance.system.service import ServiceNotifier, run_service

log = logging.getLogger(__name__)


def add_demo_scanner_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8090, help="TCP port (0 = any free port)")
    parser.add_argument("--adf-pages", type=int, default=3,
                        help="pages the document feeder delivers per batch")
    parser.add_argument("--jam-after", type=int, default=None,
                        help="jam the feeder after this many pages of each batch (fault demo)")
    parser.add_argument("--degrade", action="store_true",
                        help="add skew, shading and noise to the pages, like a cheap scanner")


def serve(args: argparse.Namespace, stop: threading.Event, notifier: ServiceNotifier) -> None:
    """Serve the emulator until ``stop`` is set; READY once it listens."""
    from appliance.demo.escl_emulator import EsclEmulator

    emulator = EsclEmulator(args.host, args.port, adf_pages=args.adf_pages,
                            jam_after=getattr(args, "jam_after", None),
                            degrade=bool(getattr(args, "degrade", False)))
    try:
        emulator.start()
        # Printed, not only logged: a technician starting it by hand needs the URL.
        print(f"demo scanner ready: {emulator.url}", flush=True)
        notifier.ready(f"serving {emulator.url}")
        while not stop.wait(1.0):
            pass
        log.info("stopping the demo scanner")
        notifier.stopping()
    finally:
        emulator.stop()


def cmd_demo_scanner(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly (systemd's normal stop)."""

    def body(_config: Config, stop: threading.Event, notifier: ServiceNotifier) -> None:
        serve(args, stop, notifier)

    return run_service("demo-scanner", getattr(args, "config", None), body)
