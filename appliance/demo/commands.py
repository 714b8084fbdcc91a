"""CLI glue for `appliance demo-scanner`: the eSCL emulator as a foreground service.

Kept apart from cli.py so the CLI only wires subcommands; the demo kiosk (or a
field technician without the office scanner at hand) runs this next to the
worker and points airscan.conf at it (`sane_env.write_sane_config(airscan_url=...)`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from appliance.demo.escl_emulator import EsclEmulator

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


def cmd_demo_scanner(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly (systemd's normal stop)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the demo scanner", signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    emulator = EsclEmulator(args.host, args.port, adf_pages=args.adf_pages,
                            jam_after=getattr(args, "jam_after", None),
                            degrade=bool(getattr(args, "degrade", False)))
    try:
        emulator.start()
        # Printed, not only logged: a technician starting it by hand needs the URL.
        print(f"demo scanner ready: {emulator.url}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
