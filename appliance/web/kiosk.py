"""/kiosk: the citizen's self-service screens.

The path of a first-time citizen: choose a procedure → read and accept the personal
data notice (nothing is opened or scanned before) → say which paper is on the glass
and scan it → check each page (enlarge, retake, delete, move) → a summary → submit →
a receipt with the code as text and QR, printable, and a status lookup by code.

A citizen reaches only the dossier in their own session (never one by URL). Every
form that changes the dossier carries its id, and a form from a stale screen (a
second tab, Back) whose dossier is no longer the session's is refused instead of
acting on the other one. Leaving by any path (idle reset, cancel, a new procedure)
cancels the open dossier and withdraws its queued scan. Views raise; the one error
handler below turns a refusal into a notice on the screen the citizen can use.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
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

from appliance.imaging.receipt import receipt_pdf
from appliance.records import consent, dossiers, pages_edit, procedures, queries
from appliance.records.dossiers import Dossier
from appliance.records.errors import RecordsError
from appliance.records.receipt import receipt_qr_payload
from appliance.status import disk_below_scan_floor
from appliance.store import jobs
from appliance.store.files import FileStore
from appliance.store.jobs import JobState
from appliance.system import printer
from appliance.system.errors import PrinterError
from appliance.web import auth, loaders, presenters, usecases
from appliance.web.db import get_config, get_db, get_files
from appliance.web.errors import WebError, register_html
from appliance.web.i18n import COOKIE, current_language, t
from appliance.web.limits import TokenBucket, retry_after
from appliance.web.security import local_path

bp = Blueprint("kiosk", __name__, url_prefix="/kiosk")

DOSSIER_FIELD = "dossier"
LOOKUP_BUCKET = "appliance.lookup"
MAX_CODE = 40


def _back_to(error: WebError) -> str | None:
    if error.status in (404, 405):
        return None
    if error.key == "error.unfinished_dossier":
        return url_for("kiosk.consent_screen", procedure=request.form.get("procedure", ""))
    if request.endpoint == "kiosk.lookup":
        return url_for("kiosk.lookup")
    if request.endpoint == "kiosk.print_receipt" and error.status != 404:
        return url_for("kiosk.receipt")
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


def _my_dossier() -> int:
    """The session's dossier, and the form must name the same one.

    A form rendered for another dossier (a stale tab, a page kept by Back) is refused:
    acting on the session's current dossier instead would put a scan or an edit into
    a dossier the person never saw.
    """
    dossier_id = auth.citizen_dossier()
    if dossier_id is None:
        raise WebError("error.session_ended", 409)
    # Forms carry the dossier's public id, never its row id (issue 8).
    if request.form.get(DOSSIER_FIELD, "") != loaders.public_id(get_db(), dossier_id):
        raise WebError("error.stale_screen", 409)
    return dossier_id


def _files() -> FileStore:
    return get_files()


@bp.get("/")
@bp.get("")  # registered first, so links use the form without a slash
def start() -> str:
    lang = current_language()
    current = _session_dossier()
    return render_template(
        "kiosk/start.html",
        procedures=[(p.code, p.name(lang)) for p in procedures.CATALOGUE],
        current=current if current is not None and current.status == "open" else None,
        **_base_context(),
    )


@bp.get("/consent")
def consent_screen() -> Any:
    """What is collected and why, before anything is: accept or decline."""
    proc = procedures.find(request.args.get("procedure", ""))
    if proc is None:
        raise WebError("error.unknown_procedure", 400)
    return render_template(
        "kiosk/consent.html", procedure=proc, procedure_name=proc.name(current_language()),
        unfinished=usecases.unfinished(get_db(), auth.citizen_dossier()),
        notice_version=consent.NOTICE_VERSION, **_base_context())


@bp.post("/dossiers")
def create() -> Response:
    if request.form.get("consent") != "accept":
        raise WebError("error.consent_required", 400)
    conn = get_db()
    current = auth.citizen_dossier()
    old = usecases.unfinished(conn, current)
    if old is not None and request.form.get("replace", "") != old.public_id:
        # Choosing a procedure never silently drops scanned pages: the consent screen
        # asked, and only its "start again" form names the dossier it may cancel.
        raise WebError("error.unfinished_dossier", 409)
    d = usecases.open_dossier(conn, get_config(), request.form.get("procedure", ""),
                              current_language(), auth.client_key(), current)
    consent.record(conn, d.id, current_language())
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
    stalled = active and usecases.worker_stalled(conn)
    retry = None
    stopped = job is not None and job.state == JobState.FAILED and (
        job.error_key == usecases.SCAN_CANCELLED)
    if job is not None and job.state == JobState.FAILED and job.error_key not in (
            consent.SESSION_ENDED, "error.scan_withdrawn", usecases.SCAN_CANCELLED):
        paper_id = queries.retry_paper_id(job)
        if paper_id is not None and not queries.paper_exists(conn, d.id, paper_id):
            paper_id = None
        preset = job.params.get("preset")
        retry = {"paper_id": paper_id, "source": job.params.get("source", "flatbed"),
                 "title": job.params.get("title", ""),
                 "preset": preset if preset in usecases.offered_presets(
                     conn, staff=False) else None}
    choices = presenters.paper_choices(d)
    new_paper = job.progress.get("paper_id") if job is not None and not active else None
    return render_template(
        "kiosk/dossier.html",
        d=d,
        procedure_name=presenters.procedure_name(d),
        choices=choices,
        next_choice=presenters.next_choice(choices),
        missing=presenters.missing_papers(choices),
        job=job,
        job_message=presenters.job_message(job, stalled) if job else "",
        active=active,
        stalled=stalled,
        retry=retry,
        stopped=stopped,
        stopping=usecases.stopping(job),
        presets=presets(),
        sources=usecases.offered_sources(conn),
        new_paper=new_paper,
        can_submit=not active and d.page_count > 0,
        paper_title=presenters.paper_title,
        errors=get_flashed_messages(category_filter=["error"]),
        notes=get_flashed_messages(category_filter=["info"]),
        **_base_context(),
    )


def _title_from_form(d: Dossier) -> str | None:
    """The paper the citizen said is on the glass, as the record names it."""
    code = request.form.get("paper", "")
    if not code:
        return None
    choice = next((c for c in presenters.paper_choices(d) if c.code == code), None)
    if choice is None:
        raise WebError("error.bad_paper", 400)
    return choice.title_vi


def presets() -> list[tuple[str, str]]:
    """The one-tap presets a citizen may choose, (name, label), the default first."""
    return [(name, t(f"scanner.preset.{name}"))
            for name in usecases.offered_presets(get_db(), staff=False)]


def _preset_from_form(source: str | None) -> str | None:
    """The preset tapped on the scan step. The kiosk's presets are for the glass: a
    feeder scan is the plain feeder batch whatever the glass choice says."""
    name = request.form.get("preset", "")
    if not name or source != "flatbed":
        return None
    if name not in usecases.offered_presets(get_db(), staff=False):
        raise WebError("error.bad_preset", 400)
    return name


@bp.post("/dossier/scan")
def scan() -> Response:
    dossier_id = _my_dossier()
    raw_paper = request.form.get("paper_id", "")
    try:
        paper_id = int(raw_paper) if raw_paper else None
    except ValueError:
        raise WebError("error.bad_paper", 400) from None
    conn = get_db()
    title = _title_from_form(dossiers.get(conn, dossier_id))
    source = request.form.get("source")
    usecases.start_scan(conn, dossier_id, source, paper_id, auth.client_key(), title=title,
                        preset=_preset_from_form(source))
    return redirect(url_for("kiosk.dossier"))


@bp.post("/dossier/scan/stop")
def stop_scan() -> Response:
    """"Stop scanning": the queued scan never starts, a running one stops after the
    page being read; the pages already scanned stay in the dossier."""
    dossier_id = _my_dossier()
    raw_job = request.form.get("job", "")
    try:
        job_id = int(raw_job) if raw_job else None
    except ValueError:
        raise WebError("error.bad_request", 400) from None
    usecases.stop_scan(get_db(), dossier_id, job_id)
    return redirect(url_for("kiosk.dossier"))


@bp.post("/dossier/scan/withdraw")
def withdraw_scan() -> Response:
    """The worker is down: take back the queued scan so the citizen is not stuck."""
    dossier_id = _my_dossier()
    if consent.cancel_queued_scan(get_db(), dossier_id):
        flash("kiosk.scan_withdrawn", "info")
    return redirect(url_for("kiosk.dossier"))


def _open_page(page_id: int) -> tuple[Dossier, pages_edit.PageRef]:
    d = _session_dossier()
    if d is None or d.status != "open":
        raise WebError("error.session_ended", 409)
    try:
        return d, pages_edit.locate(get_db(), d.id, page_id)
    except pages_edit.PageNotFound:
        raise WebError("error.page_not_found", 404) from None


@bp.get("/dossier/pages/<int:page_id>")
def page(page_id: int) -> Any:
    """One page large, with what can be done to it."""
    d = _session_dossier()
    if d is None or d.status != "open":
        return redirect(url_for("kiosk.start"))
    d, ref = _open_page(page_id)
    paper = next(p for p in d.papers if p.id == ref.paper_id)
    pg = next(p for p in paper.pages if p.id == page_id)
    busy = jobs.active_for_dossier(get_db(), d.id) is not None
    return render_template("kiosk/page.html", d=d, paper=paper, page=pg, ref=ref, busy=busy,
                           paper_title=presenters.paper_title, **_base_context())


@bp.post("/dossier/pages/<int:page_id>/delete")
def delete_page(page_id: int) -> Response:
    dossier_id = _my_dossier()
    _open_page(page_id)
    pages_edit.delete_page(get_db(), _files(), get_config(), dossier_id, page_id)
    flash("kiosk.page_deleted", "info")
    return redirect(url_for("kiosk.dossier"))


@bp.post("/dossier/pages/<int:page_id>/move")
def move_page(page_id: int) -> Response:
    dossier_id = _my_dossier()
    _open_page(page_id)
    offset = -1 if request.form.get("direction") == "earlier" else 1
    pages_edit.move_page(get_db(), _files(), get_config(), dossier_id, page_id, offset)
    return redirect(url_for("kiosk.page", page_id=page_id))


@bp.post("/dossier/pages/<int:page_id>/retake")
def retake_page(page_id: int) -> Response:
    """Take the page out and scan it again from the glass into the same paper, in the
    same place (or, when it was the paper's only page, as a new paper of the same
    kind)."""
    dossier_id = _my_dossier()
    _, ref = _open_page(page_id)
    conn = get_db()
    if usecases.worker_stalled(conn):
        raise WebError("error.worker_down", 503)
    # Every refusal start_scan could give comes before the page is taken out: a page
    # deleted and then refused (no glass, out of scan tokens) would simply be lost.
    if disk_below_scan_floor(get_config()):
        raise WebError("error.disk_full", 507)
    if "flatbed" not in usecases.offered_sources(conn):
        raise WebError("error.bad_source", 400)
    usecases.spend_scan(auth.client_key())
    kept = pages_edit.delete_page(conn, _files(), get_config(), dossier_id, page_id)
    # The new image takes the old one's place, not the paper's end (Circular 01/2023
    # Art. 8: the original order): it goes after the page that was before it.
    usecases.start_scan(conn, dossier_id, "flatbed", kept, None, title=ref.title,
                        after_ordinal=ref.ordinal - 1 if kept is not None else None)
    return redirect(url_for("kiosk.dossier"))


@bp.post("/dossier/pages/<int:page_id>/again")
def scan_page_again(page_id: int) -> Response:
    """Scan one more image of this page, kept as its own image right after it (a page
    with handwritten notes must be captured again as its own image, Circular 01/2023
    Art. 8); the page itself stays as scanned."""
    dossier_id = _my_dossier()
    _, ref = _open_page(page_id)
    usecases.start_scan(get_db(), dossier_id, "flatbed", ref.paper_id, auth.client_key(),
                        after_ordinal=ref.ordinal)
    return redirect(url_for("kiosk.dossier"))


@bp.get("/dossier/summary")
def summary() -> Any:
    d = _session_dossier()
    if d is None or d.status != "open":
        return redirect(url_for("kiosk.start"))
    if d.page_count == 0 or jobs.active_for_dossier(get_db(), d.id) is not None:
        return redirect(url_for("kiosk.dossier"))
    choices = presenters.paper_choices(d)
    return render_template("kiosk/summary.html", d=d,
                           procedure_name=presenters.procedure_name(d),
                           missing=presenters.missing_papers(choices),
                           paper_title=presenters.paper_title, **_base_context())


@bp.post("/dossier/submit")
def submit() -> Response:
    dossier_id = _my_dossier()
    usecases.submit(get_db(), dossier_id)
    auth.bind_receipt(dossier_id)
    return redirect(url_for("kiosk.receipt"))


@bp.get("/receipt")
def receipt() -> Any:
    d = _session_dossier(auth.RECEIPT)
    if d is None:
        return redirect(url_for("kiosk.start"))
    return render_template("kiosk/receipt.html", d=d, qr=presenters.qr_svg(d.code),
                           printer=bool(get_config().printer.queue), **_base_context())


PRINTED = "receipt_printed"  # copies of the session's receipt printed so far


@bp.post("/receipt/print")
def print_receipt() -> Response:
    """The receipt on the office printer, printed by this server through CUPS: the
    kiosk browser never prints (its policy sets PrintingEnabled=false, so no print
    dialog can open over the kiosk). The button shows only while printer.queue is
    set; a second tap prints at most printer.copies_per_receipt copies in all."""
    cfg = get_config().printer
    if not cfg.queue:
        raise WebError("printer.not_configured", 404)
    d = _session_dossier(auth.RECEIPT)
    if d is None:
        return redirect(url_for("kiosk.start"))
    printed = session.get(PRINTED, 0)
    if not isinstance(printed, int) or printed >= cfg.copies_per_receipt:
        raise WebError("printer.limit", 409)
    now = time.time()
    pdf = receipt_pdf(
        agency=get_config().device.agency_name, title=t("receipt.pdf_title"),
        code_label=t("dossier.code_label"), code=d.code,
        lines=[t("receipt.pages", papers=len(d.papers), pages=d.page_count),
               t("receipt.step_originals"), t("receipt.step_lookup")],
        footer=t("receipt.printed_at", time=time.strftime("%d/%m/%Y %H:%M",
                                                          time.localtime(now))),
        qr=receipt_qr_payload(get_config(), d, t("receipt.pdf_title"), now))
    folder = Path(get_config().paths.data_dir) / "print"
    folder.mkdir(mode=0o700, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="receipt-", suffix=".pdf", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pdf)
        # lp hands the file to cupsd before it returns: it can go at once.
        printer.print_file(cfg, Path(name), f"{t('receipt.pdf_title')} {d.code}")
    except PrinterError as e:
        raise WebError(e.key, 503, str(e)) from e
    finally:
        Path(name).unlink(missing_ok=True)
    session[PRINTED] = printed + 1
    flash("receipt.printing", "ok")
    return redirect(url_for("kiosk.receipt"))


@bp.record_once
def _lookup_limit(state: Any) -> None:
    """Lookups per client: a code tells only a status, but codes are sequential."""
    state.app.extensions[LOOKUP_BUCKET] = TokenBucket(10, 6.0)


def _lookup_bucket() -> TokenBucket:
    from flask import current_app

    return current_app.extensions[LOOKUP_BUCKET]


@bp.get("/lookup")
def lookup() -> str:
    """A dossier's status from its code: the status only, never what it holds, so a
    code read off someone else's receipt tells nothing about them."""
    code = request.args.get("code", "").strip().upper()[:MAX_CODE]
    status = None
    if code:
        wait = _lookup_bucket().take(auth.client_key())
        if wait > 0:
            raise WebError("error.rate_limited", 429, "lookups", retry_after(wait))
        status = queries.status_by_code(get_db(), code)
    return render_template("kiosk/lookup.html", code=code, status=status,
                           searched=bool(code), **_base_context())


CONTRAST_COOKIE = "contrast"


@bp.get("/contrast")
def contrast() -> Response:
    """Switch the high-contrast look on or off for this kiosk session (a cookie, wiped
    with the rest at the idle reset), then back to the screen the person was on."""
    target = local_path(request.args.get("back"), under="/kiosk") or url_for("kiosk.start")
    response = redirect(target)
    if request.args.get("on") == "1":
        response.set_cookie(CONTRAST_COOKIE, "1", samesite="Strict", httponly=True,
                            secure=request.is_secure)
    else:
        response.delete_cookie(CONTRAST_COOKIE)
    return response


@bp.post("/dossier/cancel")
def cancel() -> Response:
    dossier_id = auth.citizen_dossier()
    if dossier_id is not None:
        job = jobs.active_for_dossier(get_db(), dossier_id)
        if job is not None and job.state == JobState.RUNNING and not usecases.worker_stalled(
                get_db()):
            raise WebError("error.job_active", 409)
        usecases.end_session(get_db(), dossier_id)
    auth.end_session()
    flash("kiosk.cancelled", "info")
    return redirect(url_for("kiosk.start"))


@bp.post("/reset")
def reset() -> Response:
    """Idle reset and "done": forget everything about the person who was here."""
    usecases.end_session(get_db(), auth.citizen_dossier())
    auth.end_session()
    # The emptied session makes Flask delete its cookie; the language goes too, so the
    # next citizen starts in the office's default language.
    response = redirect(url_for("kiosk.start"))
    response.delete_cookie(COOKIE)
    response.delete_cookie(CONTRAST_COOKIE)
    return response
