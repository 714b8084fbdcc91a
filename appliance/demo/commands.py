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
    from appliance.demo.escl_emulator import add_emulator_arguments

    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8090, help="TCP port (0 = any free port)")
    add_emulator_arguments(parser)


def serve(args: argparse.Namespace, stop: threading.Event, notifier: ServiceNotifier) -> int:
    """Serve the emulator until ``stop`` is set; READY once it listens. An emulated
    power loss (``--vanish-after``) ends the process with EXIT_VANISHED, so whoever
    supervises it (``appliance run``, systemd) starts it again, as a scanner comes back."""
    from appliance.demo.escl_emulator import EXIT_VANISHED, emulator_from_args

    emulator = emulator_from_args(args, args.host, args.port)
    try:
        emulator.start()
        # Printed, not only logged: a technician starting it by hand needs the URL.
        print(f"demo scanner ready: {emulator.url}", flush=True)
        notifier.ready(f"serving {emulator.url}")
        while not stop.wait(0.2):
            if emulator.gone.is_set():
                log.warning("the emulated scanner vanished mid-batch")
                return EXIT_VANISHED
        log.info("stopping the demo scanner")
        notifier.stopping()
        return 0
    finally:
        emulator.stop()


def cmd_demo_scanner(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly (systemd's normal stop)."""

    outcome = {"code": 0}

    def body(_config: Config, stop: threading.Event, notifier: ServiceNotifier) -> None:
        outcome["code"] = serve(args, stop, notifier)

    return run_service("demo-scanner", getattr(args, "config", None), body) or outcome["code"]
