"""`appliance wait-web`, the web unit's ExecStartPost=: ready means a page was served."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from appliance.system.readiness import url_for, wait_http

REPO = Path(__file__).resolve().parents[2]


def test_url_for_maps_wildcards_to_loopback():
    assert url_for("127.0.0.1:8000") == "http://127.0.0.1:8000/kiosk"
    assert url_for("0.0.0.0:8080", "/") == "http://127.0.0.1:8080/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Slow(http.server.BaseHTTPRequestHandler):
    """503 for the first requests (an app still starting), then 200."""

    answered = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Slow.answered += 1
        self.send_response(200 if Slow.answered > 2 else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_waits_through_refusals_and_errors_until_200():
    port = _free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), Slow)

    def start_late() -> None:
        time.sleep(0.7)  # connection refused meanwhile
        server.serve_forever()

    threading.Thread(target=start_late, daemon=True).start()
    try:
        ok, last = wait_http(f"http://127.0.0.1:{port}/kiosk", timeout=15, interval=0.1)
    finally:
        server.shutdown()
    assert ok and last == "200"
    assert Slow.answered == 3


def test_command_fails_after_its_timeout(tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text(f'[web]\nbind = "127.0.0.1:{_free_port()}"\n', encoding="utf-8")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "appliance", "--config", str(cfg),
                             "wait-web", "--timeout", "1"], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 1
    assert "not serving after 1 s" in result.stderr
    assert time.monotonic() - started < 30
