"""What keeps another web page from acting through a browser that has the appliance open.

- Every state-changing request must come from the appliance's own origin (the Origin
  header, else the Referer; `Sec-Fetch-Site` when the browser sends it). Programs that
  send neither (curl, the end-to-end tests, the central office) are not browsers and
  cannot be tricked into a request.
- Every state-changing request that a cookie authenticates carries a CSRF token
  (Flask-WTF's CSRFProtect: a hidden field in each form, or the X-CSRFToken header),
  bound to the session and time-limited. A program that authenticates with a PIN
  header and sends no cookie needs none: no browser can add that header cross-site.
- Cookies are SameSite=Strict and HttpOnly, and Secure when the request came over TLS.
- Responses carry a strict Content-Security-Policy (nothing from another origin, no
  inline script), refuse framing and cross-origin embedding, and anything that is not
  a static asset is `Cache-Control: no-store` (pages, thumbnails, PDFs, the API).
- A redirect to an address the request names (`next=`, `back=`) goes only to a path
  on this device (`local_path`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from appliance.web.auth import OFFICER_HEADER, TECHNICIAN_HEADER
from appliance.web.errors import WebError

CSRF = "appliance.csrf"
# A path on this device and its query, in printable ASCII without space or backslash:
# a tab or newline (dropped from a Location header on the way out, so "/\t/evil" left
# as "//evil", another host) or a backslash can never name another host, nor end in a
# 500 (a newline cannot be written into a header at all).
_LOCAL_PATH = re.compile(r"/(?![/\\])[!-\[\]-~]*\Z")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Our own pages send their origin with a form post (no-referrer would make it
    # "null"); other sites learn nothing, not even which page linked to them.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def local_path(target: str | None, *, under: str = "/") -> str | None:
    """`target` if it is a path on this device (below `under`), else None."""
    if target and _LOCAL_PATH.match(target) and target.startswith(under):
        return target
    return None


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def check_origin() -> None:
    """Refuse a state-changing request a browser sent from another origin."""
    own = f"{request.scheme}://{request.host}"
    origin = request.headers.get("Origin")
    referer = request.headers.get("Referer")
    site = request.headers.get("Sec-Fetch-Site")
    if origin is not None:
        ok = origin == own  # "null" (an opaque or no-referrer origin) is not ours either
    elif referer:
        ok = _origin_of(referer) == own
    else:
        ok = True  # not a browser: nothing can have tricked it into this request
    if site is not None and site not in ("same-origin", "none"):
        ok = False
    if not ok:
        raise WebError("error.cross_origin", 403, "cross-origin request refused")


def _cookie_authenticated() -> bool:
    return current_app.config["SESSION_COOKIE_NAME"] in request.cookies


def _header_authenticated() -> bool:
    return OFFICER_HEADER in request.headers or TECHNICIAN_HEADER in request.headers


def protect_state_changes() -> None:
    """before_request of the whole app: origin first, then the CSRF token."""
    if request.method not in STATE_CHANGING:
        return
    check_origin()
    api = request.path.startswith("/api/")
    if api and (not _cookie_authenticated() or _header_authenticated()):
        return  # a program: no cookie to ride on, or a credential no page can send
    csrf: CSRFProtect = current_app.extensions[CSRF]
    csrf.protect()


def headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
        response.headers.pop("Expires", None)
        response.headers.pop("ETag", None)
        response.headers.pop("Last-Modified", None)
    return response


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure whenever it travels over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or secure_request()


def secure_request() -> bool:
    return has_request_context() and request.is_secure


def init_app(app: Flask) -> Any:
    app.session_interface = SessionInterface()
    csrf = CSRFProtect(app)
    app.extensions[CSRF] = csrf
    app.before_request(protect_state_changes)
    app.after_request(headers)
    return csrf
