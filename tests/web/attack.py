"""A hostile web site for the browser tests: another origin (another port of 127.0.0.1)
whose pages try to change the appliance's state through the victim's browser.

Each page does one thing as soon as it loads: submit a form (as a plain HTML form can,
with whatever cookies the browser holds for the appliance) or call `fetch` in `no-cors`
mode (which needs no permission from the target). Pages are plain HTML with inline
script, as an attacker would write them; this site sends no CSP of its own.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def form_page(action: str, fields: dict[str, str], enctype: str = "") -> str:
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    enc = f' enctype="{enctype}"' if enctype else ""
    return (f'<!doctype html><title>win a prize</title><form id="f" method="post" '
            f'action="{html.escape(action)}"{enc}>{inputs}</form>'
            '<script>document.getElementById("f").submit();</script>')


def fetch_page(url: str, body: Any = None, content_type: str = "text/plain") -> str:
    """POST with the victim's cookies; the title says when the request has been sent."""
    payload = json.dumps(json.dumps(body)) if body is not None else "null"
    return ("<!doctype html><title>loading</title><script>"
            f"fetch({json.dumps(url)}, {{method: 'POST', mode: 'no-cors', "
            f"credentials: 'include', headers: {{'Content-Type': {json.dumps(content_type)}}}, "
            f"body: {payload}}})"
            ".then(() => { document.title = 'sent'; }, () => { document.title = 'failed'; });"
            "</script>")


@dataclass
class HostileSite:
    pages: dict[str, str] = field(default_factory=dict)
    url: str = ""

    def add(self, name: str, page: str) -> str:
        self.pages[f"/{name}.html"] = page
        return f"{self.url}/{name}.html"


@contextmanager
def hostile_site() -> Iterator[HostileSite]:
    site = HostileSite()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = site.pages.get(self.path)
            data = (body or "not here").encode("utf-8")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
