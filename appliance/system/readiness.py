"""`appliance wait-web`: the web unit is "ready" only once a real page is served.

Why: gunicorn's arbiter sends READY=1 as soon as it listens, before its worker has
imported Flask and built the app (no preload, to keep memory low). Systemd would then
start the kiosk browser onto a page that may still fail. The web unit runs this as
``ExecStartPost=``: the unit stays "activating" until the kiosk page answers 200, so
``After=appliance-web.service`` (the kiosk screen) truly waits for a working screen,
and a worker that cannot build the app fails the start instead of showing an error.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request

from appliance.system import config as config_mod
from appliance.system.errors import ConfigError

# Loopback only, never through an http_proxy a technician's shell may export.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def url_for(bind: str, path: str = "/kiosk") -> str:
    """The URL a local browser uses for ``web.bind`` (a wildcard host means loopback)."""
    host, _, port = bind.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}{path}"


def wait_http(url: str, timeout: float, interval: float = 0.5) -> tuple[bool, str]:
    """Poll ``url`` until it answers 200 or ``timeout`` passes; (ok, last outcome)."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            with _OPENER.open(url, timeout=max(1.0, interval * 4)) as response:
                if response.status == 200:
                    return True, "200"
                last = str(response.status)
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", e))
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(interval)


def add_wait_web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait (keep below the unit's TimeoutStartSec=)")
    parser.add_argument("--path", default="/kiosk", help="page to fetch (default /kiosk)")


def cmd_wait_web(args: argparse.Namespace) -> int:
    """0 once the page answers 200; 1 after the timeout; 2 for a bad configuration."""
    try:
        config = config_mod.load(getattr(args, "config", None))
    except ConfigError as e:
        print(f"appliance wait-web: configuration error: {e}", file=sys.stderr)
        return 2
    url = url_for(config.web.bind, args.path)
    ok, last = wait_http(url, args.timeout)
    if not ok:
        print(f"appliance wait-web: {url} not serving after {args.timeout:g} s ({last})",
              file=sys.stderr)
        return 1
    return 0
