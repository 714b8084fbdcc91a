"""Run inside `unshare --mount --net` (root): the kiosk's Chromium policy, really applied.

Chromium reads managed policies only from /etc/chromium/policies/managed. To test the
shipped file without touching this machine's browser (other tests drive it), this
script runs in a private mount and network namespace: it bind-mounts a copy of
/etc/chromium holding the policy over the real one, serves two origins on loopback
ports 8000 (the appliance's, as allowed by the policy) and 8001 (any other), and
drives Debian's Chromium with Playwright. It prints one JSON object of findings.

Usage: unshare --mount --net --propagation private python kiosk_policy_probe.py POLICY.json
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

CHROMIUM = "/usr/lib/chromium/chromium"
ATTEMPTS = 10
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update"]
PAGE = (b"<html><body><p id=who>%s</p>"
        b"<a id=away href='http://127.0.0.1:8001/'>away</a></body></html>")


def serve(port: int, who: bytes) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = PAGE % who
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def install_policy(policy: Path) -> Path:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    fake = Path(tempfile.mkdtemp(prefix="etc-chromium-"))
    if Path("/etc/chromium").is_dir():
        shutil.copytree("/etc/chromium", fake, dirs_exist_ok=True)
    else:
        Path("/etc/chromium").mkdir()
    managed = fake / "policies" / "managed"
    managed.mkdir(parents=True, exist_ok=True)
    shutil.copy(policy, managed / "appliance-kiosk.json")
    subprocess.run(["mount", "--bind", str(fake), "/etc/chromium"], check=True)
    return fake


def main() -> None:
    fake = install_policy(Path(sys.argv[1]))
    try:
        probe()
    finally:
        shutil.rmtree(fake, ignore_errors=True)  # /tmp is the host's


def probe() -> None:
    serve(8000, b"appliance")
    serve(8001, b"elsewhere")
    from playwright.sync_api import Error, sync_playwright

    found: dict[str, object] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        # A tab showing the policy's error page (the blank first tab: about:blank is
        # blocked too; or the tab after a blocked origin) may still be settling into
        # it; a navigation started meanwhile is interrupted, so it is retried.
        def open_kiosk() -> None:
            for attempt in range(ATTEMPTS):
                try:
                    page.goto("http://127.0.0.1:8000/kiosk")
                    return
                except Error:
                    if attempt == ATTEMPTS - 1:
                        raise
                    page.wait_for_timeout(500)

        open_kiosk()
        found["allowed_text"] = page.inner_text("#who")
        try:
            page.goto("http://127.0.0.1:8001/")
            found["direct_other_origin"] = page.content()
        except Error as e:
            found["direct_other_origin"] = str(e).splitlines()[0]
        open_kiosk()
        try:
            page.click("#away")
            page.wait_for_load_state()
        except Error as e:
            found["link_error"] = str(e).splitlines()[0]
        found["after_link_url"] = page.url
        found["after_link_has_other_text"] = "elsewhere" in page.content()
        for name, url in (("file_url", "file:///etc/hostname"),
                          ("data_url", "data:text/html,<p>elsewhere</p>")):
            try:
                page.goto(url)
                found[name] = page.content()[:200]
            except Error as e:
                found[name] = str(e).splitlines()[0]
        browser.close()
    print(json.dumps(found))


if __name__ == "__main__":
    main()
