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

The review screen puts each paper's page image beside its fields: each field's box is
drawn over the page (static/officer.js scales it with the zoom and turns it with the
rotation), uncertain fields amber, invalid ones red with the reason in the screen's
language. Corrections (through web/desk.correct_field, which the JSON API's correction
shares) and a paper's type go through records.corrections only, so the
same validator that judged the OCR judges the officer, the OCR's reading stays beside
the corrected value, and each change is an audit line. A refused correction is the one
refusal answered on the same screen rather than through the error handler: its reason
belongs beside the field, with the value as typed, and nothing was changed.
"""

from __future__ import annotations

import logging
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
from appliance.records import audit, catalogue, corrections, dossiers, erasure, queries
from appliance.records.errors import DossierNotFound
from appliance.store.db import get_state
from appliance.web import auth, desk, loaders, presenters, usecases
from appliance.web.db import get_config, get_db, get_files
from appliance.web.errors import WebError, register_html
from appliance.web.i18n import current_language

log = logging.getLogger(__name__)

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
        "disk_free": presenters.size(free) if isinstance(free, int | float) else None,
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
    """Who the audit line names: the enrolled officer signed in, else the name this
    counter remembers, else the role."""
    name = (auth.officer_name() or request.cookies.get(OFFICER_COOKIE, "")).strip()[:80]
    return f"officer:{name}" if name else "officer"


@bp.get("/")
@bp.get("")  # registered first, so links use the form without a slash
def index() -> str:
    conn = get_db()
    search = request.args.get("q", "").strip()[:MAX_SEARCH]
    waiting = desk.search(conn, "submitted", search, 100)
    signed = desk.search(conn, "signed", search, 50)
    sync = get_state(conn, "sync.state")
    # Pending records are normal for seconds; say why only when no link can carry them.
    link_down = (sync[0] if sync and sync[0] in ("no_broker", "disconnected", "acks_refused")
                 else None)
    now = time.time()
    return render_template(
        "officer/index.html", waiting=waiting, signed=signed, search=search,
        waiting_total=queries.count_status(conn, "submitted"),
        waited=lambda row: presenters.age(now - row.submitted_at) if row.submitted_at else "",
        link_down=link_down, procedure_name=presenters.procedure_name_of,
        **_screen_context())


def _signer(typed: Any) -> str:
    """Who signs, corrects or returns (desk.signer: the same rule as the API's)."""
    return desk.signer(typed, get_config().device.id)


def _editor() -> str:
    """The officer a correction is recorded under: as `_signer`, with the name this
    counter remembers standing in for one not typed with the correction."""
    typed = request.form.get("officer")
    if not (isinstance(typed, str) and typed.strip()):
        typed = request.cookies.get(OFFICER_COOKIE, "")
    return _signer(typed)


def _render_detail(dossier_row: int, refused: dict[str, Any] | None = None,
                   status: int = 200) -> Any:
    conn, config = get_db(), get_config()
    d = dossiers.get(conn, dossier_row)
    audit.viewed(conn, _viewer(), {d.id}, "dossier")  # issue 8: every view is logged
    reviews = {p.id: corrections.review_paper(conn, config, p.id) for p in d.papers}
    lang_types = [(p.code, p.name(current_language()))
                  for p in catalogue.default().papers]
    body = render_template(
        "officer/detail.html", d=d, procedure_name=presenters.procedure_name(d),
        # The signer the form shows: the officer signed in, never another's remembered name.
        officer_name=(auth.officer_name() or _typed_name()
                      or request.cookies.get(OFFICER_COOKIE, "")),
        name_optional=bool(auth.officer_pin()), name_known=_name_known(),
        paper_title=presenters.paper_title, reviews=reviews, paper_types=lang_types,
        field_reason=presenters.field_reason,
        field_marks=presenters.FIELD_MARKS, box_attr=presenters.box_attr,
        review_rows=presenters.review_rows,
        refused=refused,
        returned=desk.returned_reason(conn, d.id) if d.status == "cancelled" else None,
        messages=get_flashed_messages(with_categories=True), **_screen_context())
    return body if status == 200 else (body, status)


def _typed_name() -> str:
    """The name sent with a refused form, so it need not be typed again."""
    typed = request.form.get("officer") if request.method == "POST" else None
    return typed.strip()[:usecases.MAX_OFFICER_NAME] if isinstance(typed, str) else ""


def _name_known() -> bool:
    """Whether a correction can be recorded without asking for a name."""
    return bool(request.cookies.get(OFFICER_COOKIE, "").strip() or auth.officer_pin()
                or auth.officer_name())


@bp.get("/dossiers/<public_id:dossier_id>")
def detail(dossier_id: str) -> Any:
    return _render_detail(loaders.dossier_row(dossier_id))


@bp.post("/dossiers/<public_id:dossier_id>/papers/<int:paper_id>/fields/<name>")
def correct(dossier_id: str, paper_id: int, name: str) -> Any:
    """One field set to the officer's value (desk.correct_field, as the API's)."""
    row = loaders.dossier_row(dossier_id)
    officer = _editor()
    try:
        desk.correct_field(get_db(), get_config(), dossier_id=row, paper_id=paper_id,
                           field=name, value=request.form.get("value") or "",
                           officer=officer, reason=request.form.get("reason"))
    except desk.CorrectionRefused as e:
        return _render_detail(row, {"paper_id": paper_id, "field": name, "value": e.value,
                                    "reason": e.text}, 422)
    flash("officer.corrected", "info")
    return redirect(url_for("officer.detail", dossier_id=dossier_id,
                            _anchor=f"f-{paper_id}-{name}"))


@bp.post("/dossiers/<public_id:dossier_id>/papers/<int:paper_id>/type")
def paper_type(dossier_id: str, paper_id: int) -> Response:
    """The paper is another type than the one guessed: its fields are read again for
    that type from the stored OCR (corrections that still apply are kept)."""
    row = loaders.dossier_row(dossier_id)
    corrections.set_paper_type(get_db(), get_config(), dossier_id=row,
                               paper_id=paper_id,
                               paper_type=str(request.form.get("paper_type") or ""),
                               officer=_editor())
    flash("officer.type_set", "info")
    return redirect(url_for("officer.detail", dossier_id=dossier_id,
                            _anchor=f"paper-{paper_id}"))


def _page_id() -> int:
    """The page a page edit names (the viewer's current page), as a row id; records
    checks it belongs to the dossier (PageNotFound otherwise)."""
    raw = request.form.get("page_id", "")
    # str.isdigit() also takes '²' and other digits int() refuses: ASCII digits only.
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**63:
        raise WebError("error.page_not_found", 404)
    return int(raw)


@bp.post("/dossiers/<public_id:dossier_id>/pages/delete")
def delete_page(dossier_id: str) -> Response:
    """A page that does not belong (blank, a duplicate) taken out, with the officer's
    reason in the audit trail; the paper's fields and PDF are made again."""
    row = loaders.dossier_row(dossier_id)
    left = corrections.delete_page(get_db(), get_config(), dossier_id=row,
                                   page_id=_page_id(), officer=_editor(),
                                   reason=str(request.form.get("reason") or "")[:desk.MAX_REASON])
    flash("officer.page_deleted", "info")
    return redirect(url_for("officer.detail", dossier_id=dossier_id,
                            _anchor=f"paper-{left}" if left else None))


@bp.post("/dossiers/<public_id:dossier_id>/papers/<int:paper_id>/split")
def split(dossier_id: str, paper_id: int) -> Response:
    """Two papers fed as one: this page and the ones after it become the next paper."""
    row = loaders.dossier_row(dossier_id)
    new_id = corrections.split_paper(get_db(), get_config(), dossier_id=row,
                                     paper_id=paper_id, at_page_id=_page_id(),
                                     officer=_editor())
    flash("officer.split_done", "info")
    return redirect(url_for("officer.detail", dossier_id=dossier_id,
                            _anchor=f"paper-{new_id}"))


@bp.post("/dossiers/<public_id:dossier_id>/papers/<int:paper_id>/merge")
def merge(dossier_id: str, paper_id: int) -> Response:
    """One paper scanned as two: its pages go after those of the paper before it."""
    row = loaders.dossier_row(dossier_id)
    d = dossiers.get(get_db(), row)
    ids = [p.id for p in d.papers]
    if paper_id not in ids or ids.index(paper_id) == 0:
        raise WebError("error.paper_not_found", 404)
    into = ids[ids.index(paper_id) - 1]
    corrections.merge_papers(get_db(), get_config(), dossier_id=row,
                             paper_id=paper_id, into_paper_id=into, officer=_editor())
    flash("officer.merge_done", "info")
    return redirect(url_for("officer.detail", dossier_id=dossier_id,
                            _anchor=f"paper-{into}"))


@bp.post("/dossiers/<public_id:dossier_id>/return")
def give_back(dossier_id: str) -> Response:
    """Return the papers to the citizen with a reason (a page missing, the wrong paper):
    the dossier ends cancelled, the reason in its audit trail, and leaves the list."""
    row = loaders.dossier_row(dossier_id)
    if request.form.get("confirm") != "yes":
        raise WebError("error.not_checked", 400)
    desk.return_to_citizen(get_db(), row, _editor(), request.form.get("reason"))
    flash("officer.returned", "info")
    return redirect(url_for("officer.index"))


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
    officer = _signer(typed)
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
    officer = _signer(request.form.get("officer"))
    erasure.erase(get_db(), get_files(), row, officer, "citizen request")
    flash("officer.erased", "info")
    return redirect(url_for("officer.detail", dossier_id=dossier_id))
