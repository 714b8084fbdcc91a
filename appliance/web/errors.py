"""Errors of the web layer and the one failure path of each face.

Every failure a screen or the API reports is a message key plus a status: the key is
translated for the person in front of the screen, the status tells a program what kind
of mistake it made. Views raise (a `WebError`, or the records/store error as it comes)
and never catch: each blueprint registers one handler here, which turns the error into
a translated notice and a redirect on the HTML faces, or a JSON problem (RFC 9457,
`application/problem+json`) on the API. Nothing below ever carries a stack trace out.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from appliance.records.errors import (
    DossierNotFound,
    InvalidCorrection,
    InvalidState,
    NothingScanned,
    PaperNotFound,
    RecordsError,
    SequenceExhausted,
    UnknownField,
    UnknownProcedure,
)
from appliance.store.errors import StoreError, is_disk_full
from appliance.web.db import get_config

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# The keys this layer raises itself; i18n joins them with every other layer's keys.
MESSAGE_KEYS: tuple[str, ...] = (
    "error.generic", "error.not_found", "error.method_not_allowed", "error.bad_request",
    "error.bad_json", "error.bad_source", "error.bad_paper", "error.bad_language",
    "error.job_active", "error.job_not_found", "error.officer_required",
    "error.file_missing", "error.storage", "error.disk_full", "error.staff_only",
    "error.technician_only", "error.forbidden", "error.csrf", "error.cross_origin",
    "error.too_large", "error.rate_limited", "error.locked", "error.busy",
    "error.too_many_open", "error.bad_preset",
)

_HTTP_KEYS: dict[int, str] = {
    404: "error.not_found", 405: "error.method_not_allowed", 413: "error.too_large",
    429: "error.rate_limited",
}


class WebError(Exception):
    """A request the appliance refuses; `key` is translated, `status` is the HTTP code.

    `retry_after` (seconds) goes out as a Retry-After header with a 429 or 503.
    `text`, when given, is the message already translated (a refusal whose reason is
    more precise than its key's sentence, such as which rule a correction broke), and
    `members` are extra members of the API's problem document (RFC 9457 allows them):
    what a program needs to point at the input it must fix.
    """

    def __init__(self, key: str, status: int, detail: str = "",
                 retry_after: int | None = None, text: str | None = None,
                 members: dict[str, Any] | None = None) -> None:
        super().__init__(detail or key)
        self.key = key
        self.status = status
        self.retry_after = retry_after
        self.text = text
        self.members = dict(members or {})


_RECORDS_STATUS: tuple[tuple[type[RecordsError], int], ...] = (
    (DossierNotFound, 404),
    (PaperNotFound, 404),  # the URL names a paper this dossier does not hold
    (UnknownField, 404),  # ... or a field its paper type does not have
    (InvalidCorrection, 422),  # well-formed, but the field's validator refuses it
    (UnknownProcedure, 400),
    (InvalidState, 409),
    (NothingScanned, 409),
    (SequenceExhausted, 503),
)


def from_records(error: RecordsError) -> WebError:
    status = next((code for cls, code in _RECORDS_STATUS if isinstance(error, cls)), 400)
    return WebError(error.key, status, str(error))


def from_store(error: StoreError) -> WebError:
    if is_disk_full(error) or _data_disk_has_no_byte_free():
        return WebError("error.disk_full", 507, str(error))
    return WebError("error.storage", 503, str(error))


def _data_disk_has_no_byte_free() -> bool:
    """A store error on a data disk with nothing free is the full disk, whatever SQLite
    called it: opening the database there fails as "disk I/O error" (its -shm file
    cannot grow), and the person should read that the storage is full."""
    try:
        return shutil.disk_usage(get_config().paths.data_dir).free == 0
    except (OSError, RuntimeError):  # no disk to look at, or outside a request
        return False


def from_http(error: HTTPException) -> WebError:
    code = error.code or 500
    if isinstance(error, CSRFError):
        return WebError("error.csrf", 400, error.description or "")
    key = _HTTP_KEYS.get(code, "error.bad_request" if 400 <= code < 500 else "error.generic")
    return WebError(key, code, error.description or "")


def to_web_error(error: Exception) -> WebError:
    """The one mapping from anything a view can raise to a key and a status."""
    if isinstance(error, WebError):
        return error
    if isinstance(error, RecordsError):
        return from_records(error)
    if isinstance(error, StoreError):
        return from_store(error)
    if isinstance(error, HTTPException):
        return from_http(error)
    if is_disk_full(error):  # SQLite's "database or disk is full": the same message
        log.error("data disk full on %s %s: %s", request.method, request.path, error)
        return WebError("error.disk_full", 507, str(error))
    log.exception("unhandled error on %s %s", request.method, request.path)
    return WebError("error.generic", 500)


def _headers(error: WebError) -> dict[str, str]:
    return {"Retry-After": str(error.retry_after)} if error.retry_after else {}


def problem(error: WebError) -> Response:
    """A JSON problem: RFC 9457 members plus the appliance's `error` and `message`."""
    from appliance.web.i18n import t

    text = error.text or t(error.key)
    response = jsonify({**error.members, "type": "about:blank", "title": t(error.key),
                        "status": error.status, "error": error.key, "message": text})
    response.status_code = error.status
    response.mimetype = PROBLEM_JSON
    response.headers.update(_headers(error))
    return response


def page(error: WebError) -> Response:
    """The error page itself, for what has no screen to go back to."""
    from appliance.web.i18n import t

    response = Response(render_template("error.html", message=t(error.key),
                                        status=error.status), error.status)
    response.headers.update(_headers(error))
    return response


HANDLED: tuple[type[Exception], ...] = (WebError, RecordsError, StoreError, HTTPException)


def register_api(bp: Blueprint) -> None:
    """The API's one failure path: every refusal is a problem document."""

    @bp.errorhandler(Exception)
    def api_error(e: Exception) -> Response:
        return problem(to_web_error(e))


def register_html(bp: Blueprint, back_to: Callable[[WebError], str | None]) -> None:
    """A screen's one failure path: flash the key, go back where the person can act.

    `back_to` names the screen to return to for an error, or None to show the error
    page (a wrong address, or a refusal with nowhere sensible to go). A 429 always gets
    the error page with its Retry-After (a redirect would only be retried at once), and
    so does a request from another origin. A 401 (no staff session) goes to the PIN
    keypad without a notice.
    """

    @bp.errorhandler(Exception)
    def html_error(e: Exception) -> Any:
        error = to_web_error(e)
        # A cross-origin request gets no redirect: nobody on this device sent it.
        target = (None if error.status in (429, 500) or error.key == "error.cross_origin"
                  else back_to(error))
        if target is None or (request.method == "GET"
                              and urlsplit(target).path == request.path):
            # Back to the page that just failed would fail again, for ever (a full disk
            # on the officer's home page): the error page says what to do instead.
            return page(error)
        if error.status != 401:
            flash(error.key, "error")
        return redirect(target)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def register_app(app: Any) -> None:
    """What no blueprint owns (an unknown address, a wrong method): JSON under /api,
    the error page elsewhere."""

    @app.errorhandler(Exception)
    def app_error(e: Exception) -> Response:
        error = to_web_error(e)
        return problem(error) if wants_json() else page(error)
