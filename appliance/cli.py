"""`appliance …`: one entry point, one subcommand per process or tool.

Subcommands import their module only when chosen, so `appliance status` does not
load onnxruntime and `appliance web` never imports the scanner.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from appliance.system import config as config_mod
from appliance.system.errors import ConfigError


def stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT set an event the service loop watches, so it ends cleanly."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_service(name: str, args: argparse.Namespace,
                body: Callable[[config_mod.Config, threading.Event, Callable[[str], Any]], None]
                ) -> int:
    from appliance.system.logging import setup_logging
    from appliance.system.notify import ServiceNotifier

    setup_logging(name)
    config = config_mod.load(args.config)
    body(config, stop_on_signals(), ServiceNotifier())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from appliance.worker import run_worker

    return run_service("worker", args, run_worker)


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.status import collect

    status = collect(config_mod.load(args.config))
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
    else:
        for key, value in status.items():
            print(f"{key}: {value}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from appliance.demo.supervisor import run_demo

    return run_demo(args)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = config_mod.load(args.config)
    print(config_mod.dump(config))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description=__doc__)
    parser.add_argument("--config", help="TOML file (default: $APPLIANCE_CONFIG, then "
                        f"{config_mod.DEFAULT_CONFIG_PATH}, then built-in defaults)")
    sub = parser.add_subparsers(dest="command", required=True)

    from appliance.bench import ocr as bench_ocr
    from appliance.central import commands as central_cmds
    from appliance.demo import commands as demo_cmds
    from appliance.ocr import commands as ocr_cmds
    from appliance.sync import commands as sync_cmds
    from appliance.web import server as web_server

    p = sub.add_parser("web", help="serve the kiosk, officer and technician screens (gunicorn)")
    web_server.add_web_arguments(p)
    p.set_defaults(func=web_server.cmd_web)

    p = sub.add_parser("worker", help="run scan and OCR jobs (the only scanner user)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("sync", help="forward the outbox to the central office over MQTT")
    sync_cmds.add_sync_arguments(p)
    p.set_defaults(func=sync_cmds.cmd_sync)

    p = sub.add_parser("central", help="reference receiver for the central office")
    central_cmds.add_central_arguments(p)
    p.set_defaults(func=central_cmds.cmd_central)

    p = sub.add_parser("ocr", help="read images and print their text")
    ocr_cmds.add_ocr_arguments(p)
    p.set_defaults(func=ocr_cmds.cmd_ocr)

    bench = sub.add_parser("bench", help="measurements").add_subparsers(dest="what",
                                                                         required=True)
    p = bench.add_parser("ocr", help="int8 vs fp32 vs tesseract on generated pages")
    bench_ocr.add_bench_arguments(p)
    p.set_defaults(func=bench_ocr.cmd_bench)

    p = sub.add_parser("demo-scanner", help="an eSCL (AirScan) scanner emulator on loopback")
    demo_cmds.add_demo_scanner_arguments(p)
    p.set_defaults(func=demo_cmds.cmd_demo_scanner)

    p = sub.add_parser("status", help="queue, delivery, scanner and model state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("run", help="start web, worker, sync and a demo scanner together")
    p.add_argument("--no-demo-scanner", action="store_true",
                   help="use the configured scanner instead of the built-in emulator")
    p.add_argument("--demo-scanner-port", type=int, default=8090)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate the configuration and print it")
    p.set_defaults(func=cmd_check_config)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.config:
        # Children and gunicorn workers read the same file.
        import os

        os.environ[config_mod.CONFIG_ENV] = args.config
    try:
        sys.exit(args.func(args))
    except ConfigError as e:
        print(f"appliance: configuration error: {e}", file=sys.stderr)
        sys.exit(2)
