"""/officer: check what citizens scanned against the originals, then sign it off.

Only a signed dossier counts as digitized (Decision 1333 names officers, not
citizens, as the ones who digitize), so sign-off is the single step that issues
result codes and puts the record in the outbox. The officer's name is remembered in a
cookie on this counter's browser only to save typing; it is never a credential.
Every route needs the officer role (one guard); views raise, one handler answers.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)

from appliance.records import audit, dossiers
from appliance.records.errors import DossierNotFound
from appliance.store.db import get_state
from appliance.web import auth, presenters, usecases
from appliance.web.db import get_config, get_db
from appliance.web.errors import WebError, register_html

bp = Blueprint("officer", __name__, url_prefix="/officer")
bp.before_request(auth.guard_officer)

OFFICER_COOKIE = "officer_name"


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
    if isinstance(dossier_id, int):
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
    waiting = [dossiers.get(conn, i) for i in dossiers.list_ids(conn, "submitted", 100)]
    signed = [dossiers.get(conn, i) for i in dossiers.list_ids(conn, "signed", 50)]
    sync = get_state(conn, "sync.state")
    # Pending records are normal for seconds; say why only when no link can carry them.
    link_down = sync[0] if sync and sync[0] in ("no_broker", "disconnected") else None
    return render_template("officer/index.html", waiting=waiting, signed=signed,
                           link_down=link_down,
                           procedure_name=presenters.procedure_name,
                           agency_name=get_config().device.agency_name)


@bp.get("/dossiers/<int:dossier_id>")
def detail(dossier_id: int) -> Any:
    d = dossiers.get(get_db(), dossier_id)
    audit.viewed(get_db(), _viewer(), {d.id}, "dossier")
    return render_template(
        "officer/detail.html", d=d, procedure_name=presenters.procedure_name(d),
        officer_name=request.cookies.get(OFFICER_COOKIE, ""),
        messages=get_flashed_messages(with_categories=True),
        agency_name=get_config().device.agency_name)


@bp.get("/dossiers/<int:dossier_id>/pages/<sha>")
def page(dossier_id: int, sha: str) -> Any:
    d = dossiers.get(get_db(), dossier_id)
    for paper in d.papers:
        for pg in paper.pages:
            if pg.sha256 == sha:
                audit.viewed(get_db(), _viewer(), {d.id}, "page", sha)
                return render_template("officer/page.html", d=d, paper=paper, page=pg,
                                       agency_name=get_config().device.agency_name)
    raise WebError("error.not_found", 404)


@bp.post("/dossiers/<int:dossier_id>/sign")
def sign(dossier_id: int) -> Response:
    officer = usecases.officer_name(request.form.get("officer"))
    usecases.sign(get_db(), get_config(), dossier_id, officer)
    flash("officer.signed", "info")
    target = redirect(url_for("officer.detail", dossier_id=dossier_id))
    target.set_cookie(OFFICER_COOKIE, officer, samesite="Strict", httponly=True,
                      max_age=12 * 3600, path="/officer", secure=request.is_secure)
    return target
