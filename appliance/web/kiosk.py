"""/kiosk: the citizen's self-service screens.

A citizen reaches only the dossier in their own session (never one by URL), and an
idle reset wipes that session and abandons the open dossier, so the next person at
the kiosk sees nothing of the previous one. Scans are only *requested* here; the
page polls the job through the API and reloads when it ends.
"""

from __future__ import annotations

import contextlib
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from appliance.records import dossiers, procedures
from appliance.records.dossiers import Dossier
from appliance.records.errors import RecordsError
from appliance.store import jobs
from appliance.store.errors import StoreError
from appliance.store.jobs import JobState
from appliance.web import actions
from appliance.web.db import get_config, get_db
from appliance.web.errors import WebError, from_records, from_store
from appliance.web.i18n import COOKIE, current_language

bp = Blueprint("kiosk", __name__, url_prefix="/kiosk")

DOSSIER = "dossier_id"
RECEIPT = "receipt_id"


def _session_dossier(key: str = DOSSIER) -> Dossier | None:
    dossier_id = session.get(key)
    if not isinstance(dossier_id, int):
        return None
    try:
        return dossiers.get(get_db(), dossier_id)
    except RecordsError:
        session.pop(key, None)
        return None


def _abandon(dossier: Dossier | None) -> None:
    """Cancel an open dossier nobody will finish, unless the worker is still on it."""
    if dossier is None or dossier.status != "open":
        return
    conn = get_db()
    if jobs.active_for_dossier(conn, dossier.id) is not None:
        return
    with contextlib.suppress(RecordsError):  # someone else finished it meanwhile
        dossiers.cancel(conn, dossier.id)


def _fail(error: WebError) -> Response:
    flash(error.key, "error")
    return redirect(url_for("kiosk.dossier"))


def _base_context() -> dict[str, Any]:
    return {"idle_seconds": get_config().web.idle_reset_seconds,
            "agency_name": get_config().device.agency_name}


@bp.get("/")
@bp.get("")  # registered first, so links use the form without a slash
def start() -> str:
    lang = current_language()
    return render_template(
        "kiosk/start.html",
        procedures=[(p.code, p.name(lang)) for p in procedures.CATALOGUE],
        current=_session_dossier(),
        **_base_context(),
    )


@bp.post("/dossiers")
def create() -> Response:
    code = request.form.get("procedure", "")
    if procedures.find(code) is None:
        flash("error.unknown_procedure", "error")
        return redirect(url_for("kiosk.start"))
    _abandon(_session_dossier())
    try:
        dossier_id = dossiers.create(get_db(), get_config(), code, current_language())
    except RecordsError as e:
        flash(from_records(e).key, "error")
        return redirect(url_for("kiosk.start"))
    except StoreError as e:
        flash(from_store(e).key, "error")
        return redirect(url_for("kiosk.start"))
    session.clear()
    session[DOSSIER] = dossier_id
    return redirect(url_for("kiosk.dossier"))


@bp.get("/dossier")
def dossier() -> Any:
    d = _session_dossier()
    if d is None or d.status != "open":
        return redirect(url_for("kiosk.start"))
    conn = get_db()
    job = actions.latest_job(conn, d.id)
    active = job is not None and job.state in (JobState.QUEUED, JobState.RUNNING)
    retry = None
    if job is not None and job.state == JobState.FAILED:
        retry = {"paper_id": actions.retry_paper_id(conn, job),
                 "source": job.params.get("source", "flatbed")}
    proc = procedures.find(d.procedure_code)
    lang = current_language()
    return render_template(
        "kiosk/dossier.html",
        d=d,
        procedure_name=proc.name(lang) if proc else d.procedure_code,
        expected=[vi if lang == "vi" else en for vi, en in proc.papers] if proc else [],
        job=job,
        job_message=actions.job_message(job, actions.worker_stalled(conn)) if job else "",
        active=active,
        retry=retry,
        can_submit=not active and d.page_count > 0,
        errors=get_flashed_messages(category_filter=["error"]),
        **_base_context(),
    )


@bp.post("/dossier/scan")
def scan() -> Response:
    d = _session_dossier()
    if d is None:
        return redirect(url_for("kiosk.start"))
    raw_paper = request.form.get("paper_id", "")
    try:
        paper_id = int(raw_paper) if raw_paper else None
        actions.start_scan(get_db(), d.id, request.form.get("source"), paper_id)
    except ValueError:
        return _fail(WebError("error.bad_paper", 400))
    except WebError as e:
        return _fail(e)
    except RecordsError as e:
        return _fail(from_records(e))
    except StoreError as e:
        return _fail(from_store(e))
    return redirect(url_for("kiosk.dossier"))


@bp.post("/dossier/submit")
def submit() -> Response:
    d = _session_dossier()
    if d is None:
        return redirect(url_for("kiosk.start"))
    conn = get_db()
    if jobs.active_for_dossier(conn, d.id) is not None:
        return _fail(WebError("error.job_active", 409))
    try:
        dossiers.submit(conn, d.id)
    except RecordsError as e:
        return _fail(from_records(e))
    except StoreError as e:
        return _fail(from_store(e))
    session.clear()
    session[RECEIPT] = d.id
    return redirect(url_for("kiosk.receipt"))


@bp.get("/receipt")
def receipt() -> Any:
    d = _session_dossier(RECEIPT)
    if d is None:
        return redirect(url_for("kiosk.start"))
    return render_template("kiosk/receipt.html", d=d, **_base_context())


@bp.post("/dossier/cancel")
def cancel() -> Response:
    d = _session_dossier()
    if d is not None:
        if jobs.active_for_dossier(get_db(), d.id) is not None:
            return _fail(WebError("error.job_active", 409))
        _abandon(d)
    session.clear()
    flash("kiosk.cancelled", "info")
    return redirect(url_for("kiosk.start"))


@bp.post("/reset")
def reset() -> Response:
    """Idle reset and "done": forget everything about the person who was here."""
    _abandon(_session_dossier())
    session.clear()
    # The emptied session makes Flask delete its cookie; the language goes too, so the
    # next citizen starts in the office's default language.
    response = redirect(url_for("kiosk.start"))
    response.delete_cookie(COOKIE)
    return response
