"""/officer: check what citizens scanned against the originals, then sign it off.

Only a signed dossier counts as digitized (Decision 1333 names officers, not
citizens, as the ones who digitize), so sign-off is the single step that issues
result codes and puts the record in the outbox. It asks for an explicit "checked
against the originals" and an on-screen confirmation. An officer who came in through
the PIN keypad need not type a name (the PIN session identifies the counter); a typed
name, remembered in a cookie on this counter's browser only to save typing, is used
when given, and is never a credential. The pages leave the screen after an idle time
(back to the keypad, or to the list when no PIN is set): personal data must not stay
on a shared touchscreen. Every route needs the officer role (one guard); views raise,
one handler answers.
"""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)

from appliance import status
from appliance.records import audit, dossiers, erasure, queries
from appliance.records.errors import DossierNotFound
from appliance.store.db import get_state
from appliance.web import auth, loaders, presenters, usecases
from appliance.web.db import get_config, get_db, get_files
from appliance.web.errors import WebError, register_html

bp = Blueprint("officer", __name__, url_prefix="/officer")
bp.before_request(auth.guard_officer)

OFFICER_COOKIE = "officer_name"
IDLE_SECONDS = 180  # default for OFFICER_IDLE_SECONDS in the app's config
MAX_SEARCH = 40


def _screen_context() -> dict[str, Any]:
    """What every officer page shows or needs: the idle time and, always in view, the
    backlog, the last delivery and the free disk (a full disk stops scanning)."""
    snap = status.snapshot(get_db(), get_config())
    last = snap["last_delivery_at"]
    free = snap["disk_free_bytes"]
    return {
        "agency_name": get_config().device.agency_name,
        "officer_idle_seconds": int(current_app.config.get("OFFICER_IDLE_SECONDS",
                                                           IDLE_SECONDS)),
        "backlog": snap["queue_depth"],
        "last_delivery": presenters.age(time.time() - last) if last else None,
        "disk_free": f"{free / 1024**3:.1f} GiB" if isinstance(free, int | float) else None,
    }


def _back_to(error: WebError) -> str | None:
    if error.status == 401:  # no officer session: to the keypad, then back here
        return url_for("staff.login", next=request.full_path.rstrip("?"))
    if error.key == DossierNotFound.key:
        return url_for("officer.index")
    if error.status == 405:
        return None
    return _dossier_url()


def _dossier_url() -> str:
    dossier_id = (request.view_args or {}).get("dossier_id")
    if isinstance(dossier_id, str):  # the public id the URL carried
        return url_for("officer.detail", dossier_id=dossier_id)
    return url_for("officer.index")


register_html(bp, _back_to)


def _viewer() -> str:
    """Who the audit line names: the officer's remembered name, else the role."""
    name = request.cookies.get(OFFICER_COOKIE, "").strip()[:80]
    return f"officer:{name}" if name else "officer"


@bp.get("/")
@bp.get("")  # registered first, so links use the form without a slash
def index() -> str:
    conn = get_db()
    search = request.args.get("q", "").strip()[:MAX_SEARCH]
    waiting = queries.officer_queue(conn, "submitted", search, 100)
    signed = queries.officer_queue(conn, "signed", search, 50)
    sync = get_state(conn, "sync.state")
    # Pending records are normal for seconds; say why only when no link can carry them.
    link_down = sync[0] if sync and sync[0] in ("no_broker", "disconnected") else None
    now = time.time()
    return render_template(
        "officer/index.html", waiting=waiting, signed=signed, search=search,
        waiting_total=queries.count_status(conn, "submitted"),
        waited=lambda row: presenters.age(now - row.submitted_at) if row.submitted_at else "",
        link_down=link_down, procedure_name=presenters.procedure_name_of,
        **_screen_context())


@bp.get("/dossiers/<public_id:dossier_id>")
def detail(dossier_id: str) -> Any:
    d = dossiers.get(get_db(), loaders.dossier_row(dossier_id))
    audit.viewed(get_db(), _viewer(), {d.id}, "dossier")  # issue 8: every view is logged
    return render_template(
        "officer/detail.html", d=d, procedure_name=presenters.procedure_name(d),
        officer_name=request.cookies.get(OFFICER_COOKIE, ""),
        name_optional=bool(auth.officer_pin()),
        paper_title=presenters.paper_title,
        messages=get_flashed_messages(with_categories=True), **_screen_context())


@bp.get("/dossiers/<public_id:dossier_id>/pages/<sha>")
def page(dossier_id: str, sha: str) -> Any:
    d = dossiers.get(get_db(), loaders.dossier_row(dossier_id))
    for paper in d.papers:
        for pg in paper.pages:
            if pg.sha256 == sha:
                audit.viewed(get_db(), _viewer(), {d.id}, "page", sha)
                return render_template("officer/page.html", d=d, paper=paper, page=pg,
                                       **_screen_context())
    raise WebError("error.not_found", 404)


@bp.post("/dossiers/<public_id:dossier_id>/sign")
def sign(dossier_id: str) -> Response:
    row = loaders.dossier_row(dossier_id)
    if request.form.get("checked") != "yes":
        raise WebError("error.not_checked", 400)
    typed = request.form.get("officer")
    # With a PIN the session identifies the counter's officer: no typing needed.
    default = (f"Cán bộ tiếp nhận ({get_config().device.id})" if auth.officer_pin()
               else None)
    officer = usecases.officer_name(typed, default)
    usecases.sign(get_db(), get_config(), row, officer)
    flash("officer.signed", "info")
    target = redirect(url_for("officer.detail", dossier_id=dossier_id))
    if isinstance(typed, str) and typed.strip():
        target.set_cookie(OFFICER_COOKIE, officer, samesite="Strict", httponly=True,
                          max_age=12 * 3600, path="/officer", secure=request.is_secure)
    return target


@bp.post("/dossiers/<public_id:dossier_id>/erase")
def erase(dossier_id: str) -> Response:
    """The citizen asked for their data to be deleted (Law 91/2025/QH15) before it was
    sent: files removed, rows tombstoned, codes kept, one audit line (records/erasure)."""
    row = loaders.dossier_row(dossier_id)
    if request.form.get("confirm") != "yes":
        raise WebError("error.not_checked", 400)
    default = (f"Cán bộ tiếp nhận ({get_config().device.id})" if auth.officer_pin()
               else None)
    officer = usecases.officer_name(request.form.get("officer"), default)
    erasure.erase(get_db(), get_files(), row, officer, "citizen request")
    flash("officer.erased", "info")
    return redirect(url_for("officer.detail", dossier_id=dossier_id))
