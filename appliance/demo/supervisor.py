"""`appliance run`: the whole appliance in one command, for a demo or a bench test.

On a device systemd starts each process (see systemd/); here one parent starts the
demo scanner, the worker, the sync service and the web server, restarts any that
dies (as Restart=on-failure would) and stops them all by PID on SIGTERM or Ctrl-C.
It starts through the same bootstrap as the services it supervises
(``appliance.system.service``), as ``appliance-run``.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.system import config as config_mod
from appliance.system.process import die_with_parent
from appliance.system.service import ServiceNotifier, run_service

log = logging.getLogger(__name__)

RESTART_DELAY_S = 2.0
STOP_GRACE_S = 10.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = field(default=0)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(self.argv, env=env, preexec_fn=die_with_parent)
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)


def prepare_demo_config(config: config_mod.Config, demo_port: int | None) -> config_mod.Config:
    """Point SANE at the built-in eSCL emulator through a private SANE_CONFIG_DIR."""
    if demo_port is None:
        return config
    from appliance.scanner.sane_env import write_sane_config

    sane_dir = Path(config.paths.data_dir) / "sane"
    write_sane_config(sane_dir, airscan_url=f"http://127.0.0.1:{demo_port}/eSCL")
    return config_mod.with_overrides(
        config, scanner={"sane_config_dir": str(sane_dir), "device": ""}
    )


def stop_all(children: list[Child]) -> None:
    for child in reversed(children):
        if child.process and child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing pid %d", child.name, child.process.pid)
            child.process.kill()
            child.process.wait()


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-demo-scanner", action="store_true",
                        help="use the configured scanner instead of the built-in emulator")
    parser.add_argument("--demo-scanner-port", type=int, default=8090)


def run_demo(args: argparse.Namespace) -> int:
    """`appliance run`: the whole appliance under one parent until SIGTERM or Ctrl-C."""

    def body(config: config_mod.Config, stop: threading.Event,
             notifier: ServiceNotifier) -> None:
        demo_port = None if args.no_demo_scanner else args.demo_scanner_port
        supervise(prepare_demo_config(config, demo_port), demo_port, stop, notifier)

    return run_service("run", getattr(args, "config", None), body)


def supervise(config: config_mod.Config, demo_port: int | None, stop: threading.Event,
              notifier: ServiceNotifier) -> None:
    """Start the children with ``config`` handed over as a file; restart, then stop them."""
    data_dir = Path(config.paths.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    run_config = data_dir / "run-config.toml"
    run_config.write_text(config_mod.dump(config), encoding="utf-8")
    env = dict(os.environ, **{config_mod.CONFIG_ENV: str(run_config)})

    me = [sys.executable, "-m", "appliance"]
    children: list[Child] = []
    if demo_port is not None:
        children.append(Child("demo-scanner", [*me, "demo-scanner", "--port", str(demo_port)]))
    children += [Child("worker", [*me, "worker"]), Child("sync", [*me, "sync"]),
                 Child("web", [*me, "web"])]
    for child in children:
        child.start(env)
    host, _, port = config.web.bind.rpartition(":")
    print(f"appliance: kiosk at http://{host}:{port}/kiosk  (officer: /officer, "
          f"technician: /technician); Ctrl-C stops", flush=True)
    notifier.ready()
    try:
        while not stop.wait(0.5):
            for child in children:
                assert child.process is not None
                code = child.process.poll()
                if code is None:
                    continue
                log.error("%s exited with %s; restarting in %.0f s", child.name, code,
                          RESTART_DELAY_S)
                if stop.wait(RESTART_DELAY_S):
                    break
                child.restarts += 1
                child.start(env)
    finally:
        notifier.stopping()
        stop_all(children)
