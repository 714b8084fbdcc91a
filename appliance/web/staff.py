"""Optional role separation: a PIN in front of the officer and technician screens.

Citizens and officers may share one touchscreen, so when a PIN is configured the
staff screens ask for it (on an in-page keypad: on-screen OS keyboards are unreliable
under a full-screen kiosk browser) and the staff session lapses after a few idle
minutes. The PIN comes from ``web.officer_pin`` once the configuration schema has
that key, or from the app's ``OFFICER_PIN`` setting; empty means no PIN, which keeps
a fresh install usable. It is a counter-side convenience lock, not an identity: the
name recorded with a sign-off is the one the officer types.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from appliance.web.db import get_config

bp = Blueprint("staff", __name__, url_prefix="/staff")

STAFF_UNTIL = "staff_until"
STAFF_SESSION_SECONDS = 15 * 60
PIN_HEADER = "X-Officer-PIN"
WRONG_PIN_DELAY_SECONDS = 1.0


def configured_pin() -> str:
    pin = current_app.config.get("OFFICER_PIN") or getattr(get_config().web, "officer_pin", "")
    return str(pin or "")


def _pin_matches(candidate: str, pin: str) -> bool:
    return hmac.compare_digest(candidate.encode("utf-8"), pin.encode("utf-8"))


def is_staff() -> bool:
    """Whether this request may use staff functions; refreshes the session's lease."""
    pin = configured_pin()
    if not pin:
        return True
    header = request.headers.get(PIN_HEADER)
    if header is not None:
        return _pin_matches(header, pin)
    until = session.get(STAFF_UNTIL)
    if isinstance(until, int | float) and until > time.time():
        session[STAFF_UNTIL] = time.time() + STAFF_SESSION_SECONDS
        return True
    session.pop(STAFF_UNTIL, None)
    return False


def require_staff() -> Response | None:
    """before_request of the staff blueprints."""
    if is_staff():
        return None
    return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))


def _safe_next(target: str | None) -> str:
    # Only a path on this device: never an absolute or protocol-relative URL.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("officer.index")


@bp.get("/login")
def login() -> Any:
    if not configured_pin():
        return redirect(_safe_next(request.args.get("next")))
    return render_template("staff/login.html", next=_safe_next(request.args.get("next")),
                           wrong=False)


@bp.post("/login")
def login_post() -> Any:
    pin = configured_pin()
    target = _safe_next(request.form.get("next"))
    if not pin:
        return redirect(target)
    if _pin_matches(request.form.get("pin", ""), pin):
        # A new staff session starts clean: nothing of a citizen's session survives.
        session.clear()
        session[STAFF_UNTIL] = time.time() + STAFF_SESSION_SECONDS
        return redirect(target)
    time.sleep(WRONG_PIN_DELAY_SECONDS)  # slows guessing from the screen or the network
    return render_template("staff/login.html", next=target, wrong=True), 403


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("kiosk.start"))
