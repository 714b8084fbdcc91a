"""/staff: the PIN keypad in front of the officer and technician screens.

Citizens and officers may share one touchscreen, so when a PIN is configured the
staff screens ask for it (on an in-page keypad: on-screen OS keyboards are unreliable
under a full-screen kiosk browser) and the staff session lapses after a few idle
minutes. The officer PIN (``web.officer_pin``) opens the officer role; the technician
PIN (``web.technician_pin``) the technician role. Wrong PINs are counted by the
lockout in `auth`, which answers 429 with Retry-After and never blocks a thread.
The name recorded with a sign-off is the one the officer types.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from appliance.web import auth
from appliance.web.auth import Role
from appliance.web.errors import WebError, register_html
from appliance.web.security import local_path

bp = Blueprint("staff", __name__, url_prefix="/staff")


def _back_to(error: WebError) -> str | None:
    return None


register_html(bp, _back_to)


def configured_pin() -> str:
    """The officer PIN, for templates that show the logout button only behind a lock."""
    return auth.officer_pin()


def _safe_next(target: str | None) -> str:
    """Only a path on this device: never an absolute or protocol-relative URL."""
    return local_path(target) or url_for("officer.index")


def _wants_technician(target: str) -> bool:
    return target.startswith("/technician")


@bp.get("/login")
def login() -> Any:
    target = _safe_next(request.args.get("next"))
    if not auth.officer_pin() and not auth.technician_pin():
        return redirect(target)
    return render_template("staff/login.html", next=target, wrong=False,
                           technician=_wants_technician(target) and bool(auth.technician_pin()))


@bp.post("/login")
def login_post() -> Any:
    target = _safe_next(request.form.get("next"))
    candidate = request.form.get("pin", "")
    technician = _wants_technician(target) and bool(auth.technician_pin())
    role, pin = ((Role.TECHNICIAN, auth.technician_pin()) if technician
                 else (Role.OFFICER, auth.officer_pin()))
    if not pin:
        return redirect(target)
    if auth.verify_pin(candidate, pin):  # 429 + Retry-After while locked out
        auth.start_role(role)
        return redirect(target)
    return render_template("staff/login.html", next=target, wrong=True,
                           technician=technician), 403


@bp.post("/logout")
def logout() -> Response:
    """End the staff session; an idle officer screen names where to go (its own list,
    which then asks for the PIN again), a tapped "log out" returns to the kiosk.
    The server forgets the session: a copy of its cookie opens nothing."""
    auth.end_session()
    target = request.form.get("next")
    return redirect(_safe_next(target) if target else url_for("kiosk.start"))
