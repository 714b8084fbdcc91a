"""/api: the JSON interface the kiosk's script and the end-to-end tests drive.

Stable on purpose: routes and field names only grow. Every refusal is a 4xx problem
document ({"error": key, "message": text in the request's language, RFC 9457 members})
and changes nothing. Each operation declares who may call it (`auth.access`); one
guard checks it before the view runs, and the OpenAPI document states it.
"""

from __future__ import annotations

import io
import re
import sqlite3
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file, url_for
from flask_wtf.csrf import generate_csrf

from appliance import status
from appliance.records import audit, dossiers, queries
from appliance.web import auth, desk, loaders, presenters, usecases
from appliance.web.auth import Access, access
from appliance.web.db import get_config, get_db, get_files
from appliance.web.errors import WebError, register_api
from appliance.web.i18n import current_language
from appliance.web.openapi import spec

bp = Blueprint("api", __name__, url_prefix="/api")
bp.before_request(auth.guard_api)
register_api(bp)

SHA_RE = re.compile(r"^[0-9a-f]{64}\Z")
DOSSIER_STATUSES = ("open", "submitted", "signed", "cancelled")


def json_body() -> dict[str, Any]:
    # force: a client that forgets the Content-Type header still gets its JSON read;
    # a browser on another site cannot use that (the origin check refuses it).
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:
        # silent= covers only ValueError: "[" x 30,000, well under the body limit,
        # ran out of stack in the parser and answered 500.
        body = None
    if not isinstance(body, dict):
        raise WebError("error.bad_json", 400)
    return body


def optional_json_body() -> dict[str, Any]:
    """For actions whose body is optional: no body is fine, a broken one is not."""
    if not request.get_data(cache=True):
        return {}
    return json_body()


def _job_owner(conn: sqlite3.Connection, args: dict[str, Any]) -> set[int]:
    found = queries.job_dossier(conn, int(args["job_id"]))
    return {found} if found is not None else set()


def _page_owner(conn: sqlite3.Connection, args: dict[str, Any]) -> set[int]:
    sha = str(args.get("sha", ""))
    return queries.page_dossiers(conn, sha) if SHA_RE.match(sha) else set()


@bp.get("/health")
@access(Access.PUBLIC)
def health() -> Response:
    return jsonify({"ok": True})


@bp.get("/session")
@access(Access.PUBLIC)
def current_session() -> Response:
    """What this caller's session holds, and the CSRF token its state-changing calls
    must send (X-CSRFToken) when a cookie authenticates them."""
    return jsonify({"dossier_id": loaders.public_id(get_db(), auth.citizen_dossier()),
                    "officer": auth.is_officer(),
                    "csrf_token": generate_csrf()})


@bp.get("/procedures")
@access(Access.PUBLIC)
def list_procedures() -> Response:
    return jsonify(presenters.procedures_json())


@bp.post("/dossiers")
@access(Access.PUBLIC)
def create_dossier() -> tuple[Response, int, dict[str, str]]:
    """Anonymous, like the kiosk: the caller's session is bound to the new dossier."""
    body = json_body()
    d = usecases.open_dossier(get_db(), get_config(), body.get("procedure"),
                              body.get("language", current_language()), auth.client_key(),
                              auth.citizen_dossier())
    auth.bind_citizen(d.id)
    location = url_for("api.get_dossier", dossier_id=d.public_id)
    return jsonify(presenters.created_json(d)), 201, {"Location": location}


@bp.get("/dossiers")
@access(Access.OFFICER)
def list_dossiers() -> Response:
    wanted = request.args.get("status")
    if wanted is not None and wanted not in DOSSIER_STATUSES:
        raise WebError("error.bad_request", 400)
    conn = get_db()
    return jsonify([presenters.dossier_json(dossiers.get(conn, i))
                    for i in dossiers.list_ids(conn, wanted)])


@bp.get("/dossiers/<public_id:dossier_id>")
@access(Access.OWNER, loaders.dossier_owner)
def get_dossier(dossier_id: str) -> Response:
    d = dossiers.get(get_db(), loaders.dossier_row(dossier_id))
    if auth.is_officer() and auth.citizen_dossier() != d.id:
        audit.viewed(get_db(), _viewer(), {d.id}, "dossier")  # a citizen's own: no line
    return jsonify(presenters.dossier_json(d))


@bp.post("/dossiers/<public_id:dossier_id>/scans")
@access(Access.OWNER, loaders.dossier_owner)
def start_scan(dossier_id: str) -> tuple[Response, int, dict[str, str]]:
    row = loaders.dossier_row(dossier_id)
    body = json_body()
    presets = usecases.offered_presets(get_db(), staff=auth.is_officer())
    job_id = usecases.start_scan(get_db(), row, body.get("source"),
                                 body.get("paper_id"), auth.client_key(),
                                 preset=body.get("preset"), presets=presets)
    return jsonify({"job_id": job_id}), 202, {"Location": url_for("api.get_job", job_id=job_id)}


@bp.get("/dossiers/<public_id:dossier_id>/jobs/latest")
@access(Access.OWNER, loaders.dossier_owner)
def latest_job(dossier_id: str) -> Response:
    conn = get_db()
    return _job_json(conn, usecases.latest_job(conn, loaders.dossier_row(dossier_id)))


@bp.get("/jobs/<int:job_id>")
@access(Access.OWNER, _job_owner)
def get_job(job_id: int) -> Response:
    conn = get_db()
    return _job_json(conn, usecases.get_job(conn, job_id))


@bp.post("/jobs/<int:job_id>/cancel")
@access(Access.OWNER, _job_owner)
def cancel_job(job_id: int) -> Response:
    """Stop a scan of the caller's dossier (an officer: any); the job as it now is."""
    optional_json_body()
    conn = get_db()
    job = usecases.get_job(conn, job_id)
    if job.dossier_id is not None:
        usecases.stop_scan(conn, job.dossier_id, job.id)
    return _job_json(conn, usecases.get_job(conn, job_id))


@bp.post("/dossiers/<public_id:dossier_id>/submit")
@access(Access.OWNER, loaders.dossier_owner)
def submit(dossier_id: str) -> Response:
    row = loaders.dossier_row(dossier_id)
    optional_json_body()
    d = usecases.submit(get_db(), row)
    if auth.citizen_dossier() == row:
        auth.bind_receipt(row)
    return jsonify(presenters.dossier_json(d))


@bp.post("/dossiers/<public_id:dossier_id>/cancel")
@access(Access.OWNER, loaders.dossier_owner)
def cancel(dossier_id: str) -> Response:
    row = loaders.dossier_row(dossier_id)
    optional_json_body()
    d = usecases.cancel(get_db(), row, officer=auth.is_officer())
    return jsonify(presenters.dossier_json(d))


@bp.post("/dossiers/<public_id:dossier_id>/sign")
@access(Access.OFFICER)
def sign(dossier_id: str) -> Response:
    row = loaders.dossier_row(dossier_id)
    body = json_body()
    conn = get_db()
    record_id = usecases.sign(conn, get_config(), row, body.get("officer"))
    return jsonify(presenters.signed_json(dossiers.get(conn, row), record_id))


@bp.post("/dossiers/<public_id:dossier_id>/papers/<int:paper_id>/fields/<name>")
@access(Access.OFFICER)
def correct_field(dossier_id: str, paper_id: int, name: str) -> Response:
    """An officer's correction of one extracted field, as the review screen's form
    makes it (desk.correct_field: the same validation, limits, signer and audit line).
    A refused value is a 422 problem whose message says why in the caller's language;
    nothing is changed."""
    row = loaders.dossier_row(dossier_id)
    body = json_body()
    conn, config = get_db(), get_config()
    officer = desk.signer(body.get("officer"), config.device.id)
    fixed = desk.correct_field(conn, config, dossier_id=row, paper_id=paper_id, field=name,
                               value=body.get("value"), officer=officer,
                               reason=body.get("reason"))
    return jsonify(presenters.correction_json(fixed, dossier_id))


def _job_json(conn: sqlite3.Connection, job: Any) -> Response:
    """A job as JSON, naming its dossier by the public id."""
    return jsonify(presenters.job_json(job, usecases.worker_stalled(conn),
                                       loaders.public_id(conn, job.dossier_id)))


def _send_stored(sha: str, suffix: str, mimetype: str) -> Response:
    """Serve a stored file the guard let through; never an arbitrary path, never cached.

    Files are sealed at rest: they are opened here, after the role guard, and only in
    memory (store/files.py verifies the seal and, for masters and PDFs, the hash).
    """
    files = get_files()
    if not files.exists(sha, suffix):
        raise WebError("error.file_missing", 404)
    data = files.read(sha, suffix) if suffix in (".png", ".pdf") else files.read_derived(
        sha, suffix)
    response = send_file(io.BytesIO(data), mimetype=mimetype, max_age=0, etag=False,
                         conditional=False)
    response.headers["Cache-Control"] = "no-store"
    return response


def _viewer() -> str:
    """Who the audit line names: the officer's remembered name, else the role."""
    name = (request.cookies.get("officer_name") or "").strip()[:80]
    return f"officer:{name}" if name else "officer"


def _known(found: set[int]) -> None:
    if not found:
        raise WebError("error.not_found", 404)


@bp.get("/pages/<sha>/thumbnail")
@access(Access.OWNER, _page_owner)
def page_thumbnail(sha: str) -> Response:
    _known(_page_owner(get_db(), {"sha": sha}))
    return _send_stored(sha, ".thumb.jpg", "image/jpeg")


@bp.get("/pages/<sha>/image")
@access(Access.OFFICER)
def page_image(sha: str) -> Response:
    found = _page_owner(get_db(), {"sha": sha})
    _known(found)
    audit.viewed(get_db(), _viewer(), found, "page", sha)
    return _send_stored(sha, ".png", "image/png")


@bp.get("/papers/<sha>/pdf")
@access(Access.OFFICER)
def paper_pdf(sha: str) -> Response:
    found = queries.pdf_dossiers(get_db(), sha) if SHA_RE.match(sha) else set()
    _known(found)
    audit.viewed(get_db(), _viewer(), found, "pdf", sha)
    return _send_stored(sha, ".pdf", "application/pdf")


@bp.get("/status")
@access(Access.STAFF)
def device_status() -> Response:
    return jsonify(status.snapshot(get_db(), get_config()))


@bp.get("/openapi.json")
@access(Access.PUBLIC)
def openapi() -> Response:
    return jsonify(spec(bp_access()))


def bp_access() -> dict[tuple[str, str], Access]:
    """(path template, method) → declared access, for the OpenAPI document."""
    from flask import current_app

    out: dict[tuple[str, str], Access] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        view = current_app.view_functions[rule.endpoint]
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                out[(path, method.lower())] = auth.view_access(view)
    return out
