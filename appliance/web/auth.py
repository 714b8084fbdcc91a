"""Who may do what, decided in one place.

Three roles, as the Flask tutorial's `login_required` does it, but once per blueprint
(a `before_request` guard) rather than inside each view:

- **citizen**: anonymous; the kiosk session is bound to the one dossier it created
  (and, after submitting, to that dossier's receipt). No other dossier is reachable by
  id, on the screens or through the API.
- **officer**: the officer PIN (``web.officer_pin``) or the PIN of an officer enrolled
  at provisioning (`store/officers.py`), entered on the keypad (a session that lapses
  after `ROLE_SESSION_SECONDS` idle) or sent as the ``X-Officer-PIN`` header by a
  program. An enrolled officer's name is kept in the session (`officer_name()`).
- **technician**: its own PIN (``web.technician_pin``, header ``X-Technician-PIN``);
  while none is configured the officer PIN opens the technician screens too.

Every PIN attempt, from the keypad or a header, goes through the same lockout
(`limits.Backoff`, per client and in total) which refuses with 429 + Retry-After and
never sleeps. An empty officer PIN (a fresh install, the demo) leaves staff functions
open, as before; `create_app` logs a warning when such a device listens beyond loopback.

The API declares each operation's access with `@access(...)`; the API guard reads that
declaration, and the OpenAPI document states it, so the two cannot disagree.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from flask import current_app, g, request, session

from appliance.store import officers, sessions
from appliance.store.errors import StoreError
from appliance.web.db import get_config, get_db
from appliance.web.errors import WebError
from appliance.web.limits import Backoff, retry_after

ROLE = "role"
ROLE_UNTIL = "role_until"
DOSSIER = "dossier_id"  # the citizen's open dossier
RECEIPT = "receipt_id"  # the citizen's just-submitted dossier (receipt screen only)
ROLE_SESSION_SECONDS = 15 * 60
OFFICER_HEADER = "X-Officer-PIN"
TECHNICIAN_HEADER = "X-Technician-PIN"
LOCKOUT = "appliance.lockout"
TOTAL = "*"
ACCESS_ATTR = "_appliance_access"
ENROLLED_LOCK = "appliance.enrolled_lock"
OFFICER_NAME = "officer_name"  # session: the enrolled officer who signed in
SID = "sid"  # session: its id in store/sessions.py; without a live one it holds nothing

log = logging.getLogger(__name__)
OWNER_ATTR = "_appliance_owner"


class Role(StrEnum):
    CITIZEN = "citizen"
    OFFICER = "officer"
    TECHNICIAN = "technician"


class Access(StrEnum):
    """What an API operation asks of its caller."""

    PUBLIC = "public"  # anyone (rate limits may still apply)
    OWNER = "owner"  # the citizen whose session holds the dossier, or an officer
    OFFICER = "officer"
    STAFF = "staff"  # an officer or a technician


# Which dossiers a request's target belongs to (from the URL's view args).
Owner = Callable[[sqlite3.Connection, dict[str, Any]], set[int]]
F = TypeVar("F", bound=Callable[..., Any])


def access(level: Access, owner: Owner | None = None) -> Callable[[F], F]:
    """Declare an API view's access; undeclared views are officer-only."""

    def mark(view: F) -> F:
        setattr(view, ACCESS_ATTR, level)
        setattr(view, OWNER_ATTR, owner)
        return view

    return mark


def view_access(view: Callable[..., Any]) -> Access:
    return getattr(view, ACCESS_ATTR, Access.OFFICER)


class Lockout:
    """PIN failures per client and in total; the total keeps counting through an
    officer's success once it has locked, so a distributed guesser gains nothing."""

    def __init__(self, free_per_client: int = 5, free_total: int = 20) -> None:
        self.per_client = Backoff(free=free_per_client)
        self.total = Backoff(free=free_total, forget=6 * 3600.0)
        self.free_total = free_total

    def check(self, client: str) -> None:
        wait = max(self.per_client.wait(client), self.total.wait(TOTAL))
        if wait > 0:
            raise WebError("error.locked", 429, "PIN attempts locked", retry_after(wait))

    def verify(self, client: str, candidate: str, pin: str,
               enrolled: Callable[[str], bool] | None = None) -> bool:
        """`enrolled`: a second way in (an enrolled officer's PIN), counted the same."""
        self.check(client)
        if (hmac.compare_digest(candidate.encode("utf-8"), pin.encode("utf-8"))
                or (enrolled is not None and enrolled(candidate))):
            self.per_client.succeed(client)
            # An officer's success forgives typos, but not a guessing run that has
            # already locked everyone out: that only the quiet period clears.
            if self.total.failures(TOTAL) < self.free_total:
                self.total.succeed(TOTAL)
            return True
        self.per_client.fail(client)
        self.total.fail(TOTAL)
        return False


def client_key() -> str:
    return request.remote_addr or "unknown"


def _lockout() -> Lockout:
    return current_app.extensions[LOCKOUT]


def officer_pin() -> str:
    """The configured officer PIN; with none but officers enrolled, an unguessable
    stand-in, so every "is the officer screen locked" check stays true and only the
    enrolled officers' PINs (checked in `verify_pin`) open it."""
    pin = current_app.config.get("OFFICER_PIN") or get_config().web.officer_pin
    if pin:
        return str(pin)
    try:
        enrolled = officers.any_enrolled(get_db())
    except (sqlite3.Error, StoreError):
        enrolled = True  # fail closed: a database we cannot read opens nothing
    return str(current_app.extensions[ENROLLED_LOCK]) if enrolled else ""


def technician_pin() -> str:
    pin = current_app.config.get("TECHNICIAN_PIN") or get_config().web.technician_pin
    return str(pin or "")


def verify_pin(candidate: str, pin: str) -> bool:
    """One PIN attempt through the lockout; raises 429 while locked.

    For the officer role an enrolled officer's own PIN opens too; who it was is kept
    for `start_role` (keypad) and `officer_name()` (this request).
    """
    is_officer_pin = hmac.compare_digest(pin.encode("utf-8"), officer_pin().encode("utf-8"))
    return _lockout().verify(client_key(), candidate, pin,
                             _enrolled_officer if is_officer_pin else None)


def _enrolled_officer(candidate: str) -> bool:
    name = officers.match(get_db(), candidate)
    if name is None:
        return False
    g.appliance_officer = name
    log.info("an enrolled officer signed in")  # no name: logs carry no personal data
    return True


def officer_name() -> str | None:
    """The enrolled officer who signed in (this request's header, or the keypad session);
    None for the configured PIN or no PIN."""
    name = g.get("appliance_officer") or session.get(OFFICER_NAME)
    return name if isinstance(name, str) else None


def _enrolled_still(name: str) -> bool:
    try:
        return officers.is_active(get_db(), name)
    except (sqlite3.Error, StoreError):
        return False  # fail closed: a database we cannot read keeps nobody signed in


def _live() -> bool:
    """Whether this request's session cookie names a session the server still holds
    (asked once per request). A cookie from a session that ended (reset, submit,
    logout) or that is older than sessions.MAX_AGE_SECONDS is emptied instead."""
    live = g.get("appliance_session_live")
    if live is None:
        # No id: nothing to honour (a fresh visitor, or only a flash message to show).
        live = SID in session and _sid_live()
        if not live and SID in session:
            log.info("a session cookie of an ended session was refused")
            session.clear()
        g.appliance_session_live = live
    return bool(live)


def _sid_live() -> bool:
    try:
        return sessions.is_live(get_db(), session.get(SID))
    except sqlite3.Error:
        return False  # fail closed: a database we cannot read keeps nobody signed in


def _new_session() -> None:
    """End this request's session (every copy of its cookie) and start an empty one."""
    end_session()
    session[SID] = sessions.start()
    g.appliance_session_live = True


def end_session() -> None:
    """The person leaves (reset, cancel, logout): the server lists the session as ended,
    so a copy of its cookie taken before opens nothing, and the browser's is emptied.
    On a full disk the list cannot be written: the browser's cookie is still emptied,
    and a copy lapses at sessions.MAX_AGE_SECONDS."""
    try:
        sessions.end(get_db(), session.get(SID))
    except sqlite3.Error as e:
        log.warning("a session could not be listed as ended (%s); its cookie is emptied",
                    e)
    finally:
        session.clear()
        g.appliance_session_live = False


def _session_role() -> str | None:
    role, until = session.get(ROLE), session.get(ROLE_UNTIL)
    if role is not None and not _live():
        return None
    if isinstance(role, str) and isinstance(until, int | float) and until > time.time():
        name = session.get(OFFICER_NAME)
        if isinstance(name, str) and not _enrolled_still(name):
            # Disabled (or removed) since signing in: each request would otherwise
            # push the idle limit on, and a removed officer's screen never closed.
            log.info("a staff session ended: its enrolled officer is no longer active")
            session.clear()
            return None
        session[ROLE_UNTIL] = time.time() + ROLE_SESSION_SECONDS
        return role
    if role is not None:
        session.pop(ROLE, None)
        session.pop(ROLE_UNTIL, None)
    return None


def _pin_role(role: Role, pin: str, header: str) -> bool:
    if not pin:
        return True
    sent = request.headers.get(header)
    if sent is not None:
        return verify_pin(sent, pin)
    return _session_role() == role


def is_officer() -> bool:
    return _pin_role(Role.OFFICER, officer_pin(), OFFICER_HEADER)


def is_technician() -> bool:
    pin = technician_pin()
    if not pin:
        return is_officer()
    return _pin_role(Role.TECHNICIAN, pin, TECHNICIAN_HEADER)


def start_role(role: Role) -> None:
    """A new staff session starts clean: nothing of a citizen's session survives."""
    _new_session()
    session[ROLE] = role.value
    session[ROLE_UNTIL] = time.time() + ROLE_SESSION_SECONDS
    name = g.get("appliance_officer")
    if role is Role.OFFICER and isinstance(name, str):
        session[OFFICER_NAME] = name


def citizen_dossier(key: str = DOSSIER) -> int | None:
    value = session.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not _live():
        return None
    return value


def bind_citizen(dossier_id: int) -> None:
    _new_session()
    session[DOSSIER] = dossier_id


def require(level: Access, owner: Owner | None = None) -> None:
    """Refuse the request unless its caller has `level`; the single check."""
    if level == Access.PUBLIC:
        return
    if level == Access.OFFICER:
        if not is_officer():
            raise WebError("error.staff_only", 403)
        return
    if level == Access.STAFF:
        if not (is_officer() or is_technician()):
            raise WebError("error.staff_only", 403)
        return
    # OWNER: the dossier this session holds, or an officer. A citizen learns nothing
    # about dossiers that are not theirs, not even whether they exist.
    mine = citizen_dossier()
    if mine is not None and owner is not None and mine in owner(get_db(), request.view_args
                                                                 or {}):
        return
    if is_officer():
        return
    raise WebError("error.forbidden", 403)


def guard_api() -> None:
    """before_request of /api: the operation's declared access, or officer-only."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return  # an unknown address: the 404/405 follows
    require(view_access(view), getattr(view, OWNER_ATTR, None))


def guard_officer() -> None:
    """before_request of /officer."""
    if not is_officer():
        raise WebError("error.staff_only", 401)


def guard_technician() -> None:
    """before_request of /technician."""
    if not is_technician():
        raise WebError("error.technician_only", 401)


def init_app(app: Any) -> None:
    app.extensions[LOCKOUT] = Lockout(app.config.get("PIN_FREE_PER_CLIENT", 5),
                                      app.config.get("PIN_FREE_TOTAL", 20))
    app.extensions[ENROLLED_LOCK] = "enrolled-only:" + secrets.token_hex(32)


def bind_receipt(dossier_id: int) -> None:
    """After submitting, the session may show the receipt and nothing else: a new
    session, so a copy of the cookie from before the submit opens nothing."""
    _new_session()
    session[RECEIPT] = dossier_id
