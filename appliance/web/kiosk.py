"""/kiosk: the citizen's self-service screens.

A citizen reaches only the dossier in their own session (never one by URL), and an
idle reset wipes that session and abandons the open dossier, so the next person at
the kiosk sees nothing of the previous one. Scans are only *requested* here; the
page polls the job through the API and reloads when it ends. Views raise; the one
error handler below turns a refusal into a notice on the screen the citizen can use.
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
    session,
    url_for,
)

from appliance.records import dossiers, procedures, queries
from appliance.records.dossiers import Dossier
from appliance.records.errors import RecordsError
from appliance.store import jobs
from appliance.store.jobs import JobState
from appliance.web import auth, presenters, usecases
from appliance.web.db import get_config, get_db
from appliance.web.errors import WebError, register_html
from appliance.web.i18n import COOKIE, current_language

bp = Blueprint("kiosk", __name__, url_prefix="/kiosk")


def _back_to(error: WebError) -> str | None:
    if error.status in (404, 405):
        return None
    if auth.citizen_dossier() is not None and request.endpoint != "kiosk.create":
        return url_for("kiosk.dossier")
    return url_for("kiosk.start")


register_html(bp, _back_to)


def _session_dossier(key: str = auth.DOSSIER) -> Dossier | None:
    dossier_id = auth.citizen_dossier(key)
    if dossier_id is None:
        return None
    try:
        return dossiers.get(get_db(), dossier_id)
    except RecordsError:
        session.pop(key, None)
        return None


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
    d = usecases.open_dossier(get_db(), get_config(), request.form.get("procedure", ""),
                              current_language(), auth.client_key(), auth.citizen_dossier())
    auth.bind_citizen(d.id)
    return redirect(url_for("kiosk.dossier"))


@bp.get("/dossier")
def dossier() -> Any:
    d = _session_dossier()
    if d is None or d.status != "open":
        return redirect(url_for("kiosk.start"))
    conn = get_db()
    job = queries.latest_job(conn, d.id)
    active = job is not None and job.state in (JobState.QUEUED, JobState.RUNNING)
    retry = None
    if job is not None and job.state == JobState.FAILED:
        retry = {"paper_id": queries.retry_paper_id(conn, job),
                 "source": job.params.get("source", "flatbed")}
    return render_template(
        "kiosk/dossier.html",
        d=d,
        procedure_name=presenters.procedure_name(d),
        expected=presenters.expected_papers(d),
        job=job,
        job_message=presenters.job_message(job, usecases.worker_stalled(conn)) if job else "",
        active=active,
        retry=retry,
        can_submit=not active and d.page_count > 0,
        errors=get_flashed_messages(category_filter=["error"]),
        **_base_context(),
    )


@bp.post("/dossier/scan")
def scan() -> Response:
    dossier_id = auth.citizen_dossier()
    if dossier_id is None:
        return redirect(url_for("kiosk.start"))
    raw_paper = request.form.get("paper_id", "")
    try:
        paper_id = int(raw_paper) if raw_paper else None
    except ValueError:
        raise WebError("error.bad_paper", 400) from None
    usecases.start_scan(get_db(), dossier_id, request.form.get("source"), paper_id,
                        auth.client_key())
    return redirect(url_for("kiosk.dossier"))


@bp.post("/dossier/submit")
def submit() -> Response:
    dossier_id = auth.citizen_dossier()
    if dossier_id is None:
        return redirect(url_for("kiosk.start"))
    usecases.submit(get_db(), dossier_id)
    auth.bind_receipt(dossier_id)
    return redirect(url_for("kiosk.receipt"))


@bp.get("/receipt")
def receipt() -> Any:
    d = _session_dossier(auth.RECEIPT)
    if d is None:
        return redirect(url_for("kiosk.start"))
    return render_template("kiosk/receipt.html", d=d, **_base_context())


@bp.post("/dossier/cancel")
def cancel() -> Response:
    dossier_id = auth.citizen_dossier()
    if dossier_id is not None:
        if jobs.active_for_dossier(get_db(), dossier_id) is not None:
            raise WebError("error.job_active", 409)
        usecases.abandon(get_db(), dossier_id)
    session.clear()
    flash("kiosk.cancelled", "info")
    return redirect(url_for("kiosk.start"))


@bp.post("/reset")
def reset() -> Response:
    """Idle reset and "done": forget everything about the person who was here."""
    usecases.abandon(get_db(), auth.citizen_dossier())
    session.clear()
    # The emptied session makes Flask delete its cookie; the language goes too, so the
    # next citizen starts in the office's default language.
    response = redirect(url_for("kiosk.start"))
    response.delete_cookie(COOKIE)
    return response
