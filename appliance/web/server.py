"""`appliance web`: serve the app with gunicorn, started from Python.

gthread workers, because a slow request (a large page image on a Pi's SD card) must
not block the kiosk's 500 ms progress polls, and no preload: each worker builds its
own app after the fork, so no SQLite connection crosses a fork. The Config object is
handed over before the fork; a worker that gunicorn restarts later inherits it too.
gunicorn itself sends READY=1 when NOTIFY_SOCKET is set (Type=notify units).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from appliance.system import config as config_mod
from appliance.system.config import Config
from appliance.system.service import run_service

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 60
# One process is enough for a kiosk and a counter; threads give the concurrency and
# all state is in SQLite, so more processes would only cost a Pi's memory.
WORKERS = 1


def gunicorn_options(config: Config) -> dict[str, Any]:
    return {
        "bind": [config.web.bind],
        "workers": WORKERS,
        "worker_class": "gthread",
        "threads": config.web.threads,
        "timeout": TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "appliance-web",
        # gunicorn 23+ opens a control socket under $HOME; the appliance does not use it,
        # and two instances (tests, a demo beside the service) would fight over it.
        "control_socket_disable": True,
    }


class WebServer(BaseApplication):
    """gunicorn driven from code: options from our Config, never from gunicorn's CLI."""

    def __init__(self, config: Config, options: dict[str, Any] | None = None) -> None:
        self.appliance_config = config
        self.options = options if options is not None else gunicorn_options(config)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from appliance.web import create_app

        return create_app(self.appliance_config)


def run_web(config: Config) -> None:
    """Serve until SIGTERM/SIGINT (handled by gunicorn's arbiter)."""
    # The key is checked (and the schema migrated) here, before gunicorn forks: a wrong
    # or missing key is then a configuration error (exit 2), not a worker boot failure.
    from appliance.store.db import connect

    connect(config.paths.database, migrate=True, key_file=config.paths.key_file).close()
    log.info("web: serving on %s with %d threads", config.web.bind, config.web.threads)
    WebServer(config).run()


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", help="HOST:PORT to listen on (overrides web.bind)")
    parser.add_argument("--threads", type=int, help="threads per worker (overrides web.threads)")


def cmd_web(args: argparse.Namespace) -> int:
    """Start through the service bootstrap (logging as ``appliance-web``, the configuration
    validated once, exit 2 when it is wrong); gunicorn's arbiter installs its own signal
    handlers and sends READY=1, so the bootstrap leaves both to it."""

    def body(config: Config, _stop: object, _notifier: object) -> None:
        overrides: dict[str, Any] = {}
        if getattr(args, "bind", None):
            overrides["bind"] = args.bind
        if getattr(args, "threads", None):
            overrides["threads"] = args.threads
        if overrides:
            config = config_mod.with_overrides(config, web=overrides)
        run_web(config)

    return run_service("web", getattr(args, "config", None), body, handle_signals=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m appliance.web.server`: the same as `appliance web`, for tests and units."""
    parser = argparse.ArgumentParser(prog="appliance-web")
    parser.add_argument("--config", default=os.environ.get(config_mod.CONFIG_ENV))
    add_web_arguments(parser)
    return cmd_web(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
