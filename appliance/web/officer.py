"""/officer: check what citizens scanned against the originals, then sign it off.

Only a signed dossier counts as digitized (Decision 1333 names officers, not
citizens, as the ones who digitize), so sign-off is the single step that issues
result codes and puts the record in the outbox. The officer's name is remembered in a
cookie on this counter's browser only to save typing; it is never a credential.
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

from appliance.records import dossiers, procedures
from appliance.records.dossiers import Dossier
from appliance.records.errors import RecordsError
from appliance.store.db import get_state
from appliance.store.errors import StoreError
from appliance.web.db import get_config, get_db
from appliance.web.errors import WebError, from_records, from_store
from appliance.web.i18n import current_language
from appliance.web.staff import require_staff

bp = Blueprint("officer", __name__, url_prefix="/officer")
bp.before_request(require_staff)

OFFICER_COOKIE = "officer_name"
MAX_OFFICER_NAME = 120


def _procedure_name(d: Dossier) -> str:
    proc = procedures.find(d.procedure_code)
    return proc.name(current_language()) if proc else d.procedure_code


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
                           procedure_name=_procedure_name,
                           agency_name=get_config().device.agency_name)


@bp.get("/dossiers/<int:dossier_id>")
def detail(dossier_id: int) -> Any:
    try:
        d = dossiers.get(get_db(), dossier_id)
    except RecordsError as e:
        flash(from_records(e).key, "error")
        return redirect(url_for("officer.index"))
    return render_template(
        "officer/detail.html", d=d, procedure_name=_procedure_name(d),
        officer_name=request.cookies.get(OFFICER_COOKIE, ""),
        messages=get_flashed_messages(with_categories=True),
        agency_name=get_config().device.agency_name)


@bp.get("/dossiers/<int:dossier_id>/pages/<sha>")
def page(dossier_id: int, sha: str) -> Any:
    d = dossiers.get(get_db(), dossier_id)
    for paper in d.papers:
        for pg in paper.pages:
            if pg.sha256 == sha:
                return render_template("officer/page.html", d=d, paper=paper, page=pg,
                                       agency_name=get_config().device.agency_name)
    flash("error.not_found", "error")
    return redirect(url_for("officer.detail", dossier_id=dossier_id))


@bp.post("/dossiers/<int:dossier_id>/sign")
def sign(dossier_id: int) -> Response:
    officer = request.form.get("officer", "").strip()[:MAX_OFFICER_NAME]
    target = redirect(url_for("officer.detail", dossier_id=dossier_id))
    try:
        if not officer:
            raise WebError("error.officer_required", 400)
        dossiers.sign_off(get_db(), get_config(), dossier_id, officer)
    except WebError as e:
        flash(e.key, "error")
        return target
    except RecordsError as e:
        flash(from_records(e).key, "error")
        return target
    except StoreError as e:
        flash(from_store(e).key, "error")
        return target
    flash("officer.signed", "info")
    target.set_cookie(OFFICER_COOKIE, officer, samesite="Lax", httponly=True,
                      max_age=12 * 3600)
    return target
