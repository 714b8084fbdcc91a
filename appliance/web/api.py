"""/api: the JSON interface the kiosk's script and the end-to-end tests drive.

Stable on purpose: routes and field names only grow. Every refusal is a 4xx with
{"error": key, "message": text in the request's language} and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file, url_for

from appliance import status
from appliance.records import dossiers, procedures
from appliance.records.errors import RecordsError
from appliance.store import jobs
from appliance.store.errors import StoreError
from appliance.web import actions
from appliance.web.db import get_config, get_db, get_files
from appliance.web.errors import WebError, from_records, from_store
from appliance.web.i18n import LANGUAGES, current_language, t
from appliance.web.openapi import spec
from appliance.web.staff import is_staff

bp = Blueprint("api", __name__, url_prefix="/api")

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Content-addressed files never change under their name.
IMMUTABLE_MAX_AGE = 365 * 24 * 3600


def error_response(key: str, status_code: int) -> tuple[Response, int]:
    return jsonify({"error": key, "message": t(key)}), status_code


@bp.errorhandler(WebError)
def handle_web_error(e: WebError) -> tuple[Response, int]:
    return error_response(e.key, e.status)


@bp.errorhandler(RecordsError)
def handle_records_error(e: RecordsError) -> tuple[Response, int]:
    err = from_records(e)
    return error_response(err.key, err.status)


@bp.errorhandler(StoreError)
def handle_store_error(e: StoreError) -> tuple[Response, int]:
    err = from_store(e)
    return error_response(err.key, err.status)


def json_body() -> dict[str, Any]:
    # force: a client that forgets the Content-Type header still gets its JSON read.
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise WebError("error.bad_json", 400)
    return body


def optional_json_body() -> dict[str, Any]:
    """For actions whose body is optional: no body is fine, a broken one is not."""
    if not request.get_data(cache=True):
        return {}
    return json_body()


@bp.get("/health")
def health() -> Response:
    return jsonify({"ok": True})


@bp.get("/procedures")
def list_procedures() -> Response:
    lang = current_language()
    return jsonify([
        {"code": p.code, "name": p.name(lang),
         "papers": [vi if lang == "vi" else en for vi, en in p.papers]}
        for p in procedures.CATALOGUE
    ])


@bp.post("/dossiers")
def create_dossier() -> tuple[Response, int, dict[str, str]]:
    body = json_body()
    code = body.get("procedure")
    if not isinstance(code, str) or procedures.find(code) is None:
        raise WebError("error.unknown_procedure", 400)
    language = body.get("language", current_language())
    if language not in LANGUAGES:
        raise WebError("error.bad_language", 400)
    conn = get_db()
    dossier_id = dossiers.create(conn, get_config(), code, language)
    d = dossiers.get(conn, dossier_id)
    location = url_for("api.get_dossier", dossier_id=d.id)
    return jsonify({"id": d.id, "code": d.code, "status": d.status}), 201, {"Location": location}


@bp.get("/dossiers")
def list_dossiers() -> Response:
    if not is_staff():
        raise WebError("error.staff_only", 403)
    wanted = request.args.get("status")
    if wanted is not None and wanted not in ("open", "submitted", "signed", "cancelled"):
        raise WebError("error.bad_request", 400)
    conn = get_db()
    return jsonify([actions.dossier_json(dossiers.get(conn, i))
                    for i in dossiers.list_ids(conn, wanted)])


@bp.get("/dossiers/<int:dossier_id>")
def get_dossier(dossier_id: int) -> Response:
    return jsonify(actions.dossier_json(dossiers.get(get_db(), dossier_id)))


@bp.post("/dossiers/<int:dossier_id>/scans")
def start_scan(dossier_id: int) -> tuple[Response, int, dict[str, str]]:
    body = json_body()
    job_id = actions.start_scan(get_db(), dossier_id, body.get("source"), body.get("paper_id"))
    return jsonify({"job_id": job_id}), 202, {"Location": url_for("api.get_job", job_id=job_id)}


@bp.get("/dossiers/<int:dossier_id>/jobs/latest")
def latest_job(dossier_id: int) -> Response:
    conn = get_db()
    dossiers.get(conn, dossier_id)
    job = actions.latest_job(conn, dossier_id)
    if job is None:
        raise WebError("error.job_not_found", 404)
    return jsonify(actions.job_json(job, actions.worker_stalled(conn)))


@bp.get("/jobs/<int:job_id>")
def get_job(job_id: int) -> Response:
    conn = get_db()
    job = jobs.get(conn, job_id)
    if job is None:
        raise WebError("error.job_not_found", 404)
    return jsonify(actions.job_json(job, actions.worker_stalled(conn)))


@bp.post("/dossiers/<int:dossier_id>/submit")
def submit(dossier_id: int) -> Response:
    optional_json_body()
    conn = get_db()
    if jobs.active_for_dossier(conn, dossier_id) is not None:
        raise WebError("error.job_active", 409)
    dossiers.submit(conn, dossier_id)
    return jsonify(actions.dossier_json(dossiers.get(conn, dossier_id)))


@bp.post("/dossiers/<int:dossier_id>/cancel")
def cancel(dossier_id: int) -> Response:
    optional_json_body()
    conn = get_db()
    if jobs.active_for_dossier(conn, dossier_id) is not None:
        raise WebError("error.job_active", 409)
    dossiers.cancel(conn, dossier_id)
    return jsonify(actions.dossier_json(dossiers.get(conn, dossier_id)))


@bp.post("/dossiers/<int:dossier_id>/sign")
def sign(dossier_id: int) -> Response:
    if not is_staff():
        raise WebError("error.staff_only", 403)
    body = json_body()
    officer = body.get("officer")
    if not isinstance(officer, str) or not officer.strip():
        raise WebError("error.officer_required", 400)
    conn = get_db()
    record_id = dossiers.sign_off(conn, get_config(), dossier_id, officer)
    d = dossiers.get(conn, dossier_id)
    return jsonify({
        "record_id": record_id,
        "code": d.code,
        "status": d.status,
        "delivery": d.delivery,
        "papers": [{"id": p.id, "ordinal": p.ordinal, "title": p.title,
                    "result_code": p.result_code} for p in d.papers],
    })


def _send_stored(sha: str, suffix: str, mimetype: str, table_sql: str) -> Response:
    """Serve a stored file, but only one the database knows: never an arbitrary path."""
    if not SHA_RE.match(sha):
        raise WebError("error.not_found", 404)
    if get_db().execute(table_sql, (sha,)).fetchone() is None:
        raise WebError("error.not_found", 404)
    path = get_files().path(sha, suffix)
    if not path.is_file():
        raise WebError("error.file_missing", 404)
    return send_file(path, mimetype=mimetype, max_age=IMMUTABLE_MAX_AGE, etag=sha)


PAGE_SQL = "SELECT 1 FROM pages WHERE sha256=? LIMIT 1"


@bp.get("/pages/<sha>/thumbnail")
def page_thumbnail(sha: str) -> Response:
    return _send_stored(sha, ".thumb.jpg", "image/jpeg", PAGE_SQL)


@bp.get("/pages/<sha>/image")
def page_image(sha: str) -> Response:
    return _send_stored(sha, ".png", "image/png", PAGE_SQL)


@bp.get("/papers/<sha>/pdf")
def paper_pdf(sha: str) -> Response:
    return _send_stored(sha, ".pdf", "application/pdf",
                        "SELECT 1 FROM papers WHERE pdf_sha256=? LIMIT 1")


@bp.get("/status")
def device_status() -> Response:
    return jsonify(status.snapshot(get_db(), get_config()))


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(spec())
