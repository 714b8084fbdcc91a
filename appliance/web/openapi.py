"""The OpenAPI 3 description of /api, built as data so it cannot drift from a template.

Integrators (the central office, a monitoring script) read this instead of the code;
the test suite checks that every /api route is described here. The `security` of each
operation is not written here by hand: it is filled in from the access each route
declares (`auth.access`), the same declaration the API's guard enforces, and the test
suite calls every protected operation anonymously to see it refused.

The officer review screen's HTML form posts are described too, but apart, under the
`x-html-forms` extension member (see `html_form_paths`): they are a browser's forms, not
operations a program or schemathesis could drive, and every operation under `paths`
must answer a refusal with a problem document, which they never do.
"""

from __future__ import annotations

import re
from typing import Any

from appliance.records.corrections import MAX_VALUE as CORRECTION_MAX_VALUE

ERROR_REF = {"$ref": "#/components/schemas/Error"}
# A dossier's public id (secrets.token_urlsafe; older rows: 32 hex digits). The routes'
# converter (web/loaders.py) matches this, so a row id such as 7 names no route.
PUBLIC_ID_PATTERN = r"[A-Za-z0-9_-]{16,64}"
PUBLIC_ID_SCHEMA: dict[str, Any] = {"type": "string", "pattern": f"^{PUBLIC_ID_PATTERN}$",
                    "minLength": 16, "maxLength": 64}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad input", 403: "not allowed for this caller (see the operation's security)",
            404: "unknown id", 409: "wrong state or a scan is active",
            413: "body too large", 429: "too many requests or PIN attempts: see Retry-After",
            503: "storage, code sequence or open-dossier capacity unavailable",
            507: "disk full"}
    return {str(c): {"description": text[c], "content": {"application/problem+json": {
        "schema": ERROR_REF}}} for c in codes}


# Who may call an operation, by the access its route declares (auth.Access values).
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [],
    "owner": [{"kioskSession": []}, {"officerPin": []}, {"officerSession": []}],
    "officer": [{"officerPin": []}, {"officerSession": []}],
    "staff": [{"officerPin": []}, {"officerSession": []}, {"technicianPin": []},
              {"technicianSession": []}],
    # /api/technician: the technician PIN or session; while no technician PIN is
    # configured, the officer's credentials open it (auth.is_technician).
    "technician": [{"technicianPin": []}, {"technicianSession": []}],
}
TECHNICIAN_PREFIX = "/api/technician/"
SECURITY_SCHEMES: dict[str, Any] = {
    "officerPin": {
        "type": "apiKey", "in": "header", "name": "X-Officer-PIN",
        "description": "the officer PIN (web.officer_pin); wrong PINs are locked out with "
                       "back-off per client and in total (429 + Retry-After). While no "
                       "officer PIN is configured (a demo install) staff operations are open."},
    "officerSession": {
        "type": "apiKey", "in": "cookie", "name": "session",
        "description": "the session of an officer who entered the PIN on the keypad; "
                       "state-changing calls also need its CSRF token (X-CSRFToken)"},
    "technicianPin": {
        "type": "apiKey", "in": "header", "name": "X-Technician-PIN",
        "description": "the technician PIN (web.technician_pin)"},
    "technicianSession": {
        "type": "apiKey", "in": "cookie", "name": "session",
        "description": "the session of a technician who entered the technician PIN"},
    "kioskSession": {
        "type": "apiKey", "in": "cookie", "name": "session",
        "description": "the citizen's kiosk session, bound to the one dossier it opened "
                       "(POST /api/dossiers): that dossier, its jobs and thumbnails only"},
}


def _public_id_param(name: str) -> dict[str, Any]:
    # A dossier is named by its public id (issue 8): unguessable, never its row id.
    return {"name": name, "in": "path", "required": True,
            "description": "the dossier's public id (the \"id\" of its JSON)",
            "schema": PUBLIC_ID_SCHEMA}


def _id_param(name: str) -> dict[str, Any]:
    # SQLite rowids are signed 64-bit: a larger number names nothing (404).
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}


def _secure(paths: dict[str, Any], access: dict[tuple[str, str], str]) -> None:
    """State each operation's security from its route's declared access; protected
    operations also list the refusals an anonymous or locked-out caller gets."""
    for path, ops in paths.items():
        for method, op in ops.items():
            level = str(access.get((path, method), "officer"))
            op["security"] = SECURITY[level]
            if level != "public":
                op["responses"].update(_errors(403, 429))
            if method == "post":
                # Any write may meet these, whatever it does: a body over the server's
                # limit (413), a store that cannot write (503) or a full data disk
                # (507), answered by web/errors.py for every route. Documented per
                # operation, so a client generated from this file expects them.
                op["responses"].update(_errors(413, 503, 507))
SHA_PARAM = {"name": "sha", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
LANG_PARAM = {"name": "lang", "in": "query", "required": False,
              "description": "language of `message` texts (else cookie, Accept-Language)",
              "schema": {"type": "string", "enum": ["vi", "en"]}}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _file(media: str) -> dict[str, Any]:
    return {"200": {"description": "the stored file",
                    "content": {media: {"schema": {"type": "string", "format": "binary"}}}},
            **_errors(404)}


def spec(access: dict[tuple[str, str], Any] | None = None) -> dict[str, Any]:
    """The document; `access` maps (path, method) to the route's declared access."""
    doc = _document()
    doc["paths"].update(technician_paths())
    levels = {k: str(v) for k, v in (access or {}).items()}
    for path, ops in doc["paths"].items():
        if path.startswith(TECHNICIAN_PREFIX):
            levels.update({(path, method): "technician" for method in ops})
    _secure(doc["paths"], levels)
    return doc


def _op(op_id: str, summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"operationId": op_id, "tags": ["technician"], "summary": summary,
            "responses": responses, **more}


def technician_paths() -> dict[str, Any]:
    """The technician panel's JSON (appliance/web/technician.py)."""
    step = {"type": "object", "required": ["step", "seconds"], "properties": {
        "step": {"type": "string", "description": "start SANE, open, capabilities, "
                                                   "page N, thumbnail, close …"},
        "seconds": {"type": "number"},
        "error": {"type": "string", "description": "the scanner's message key"},
        "error_text": {"type": "string"}, "message": {"type": "string"}},
        "additionalProperties": True}
    device = {"type": "object", "properties": {
        "name": {"type": "string"}, "backend": {"type": "string"},
        "vendor": {"type": "string"}, "model": {"type": "string"},
        "type": {"type": "string"}, "serial": {"type": "string"},
        "identity": {"type": "string", "description": "stable identity (scanner:…)"},
        "in_use": {"type": "boolean", "description": "the one the worker opens now"},
        "chosen": {"type": "boolean", "description": "the technician's choice"}}}
    job = {"type": "object", "required": ["id", "kind", "state", "steps"], "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["scanner_list", "scanner_test"]},
        "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
        "steps": {"type": "array", "items": step},
        "result": {"type": "object", "properties": {
            "devices": {"type": "array", "items": device},
            "chosen": {"type": "string"}, "identity": {"type": "string"},
            "name": {"type": "string"}, "label": {"type": "string"},
            "pages": {"type": "integer"}, "capabilities": {"type": "object"}}},
        "thumbnail_url": {"type": "string", "nullable": True},
        "error_key": {"type": "string", "nullable": True},
        "message": {"type": "string"}, "stalled": {"type": "boolean"}}}
    queued = _json({"type": "object", "required": ["job_id"],
                    "properties": {"job_id": {"type": "integer"}}}, "queued for the worker")
    no_body = {"required": False, "content": {"application/json": {"schema": {
        "type": "object"}}}}
    t = TECHNICIAN_PREFIX
    return {
        f"{t}status": {"get": _op("technicianStatus", "the status figures, translated",
                                  {"200": _json({"type": "object", "properties": {
                                      "rows": {"type": "array", "items": {
                                          "type": "object", "properties": {
                                              "key": {"type": "string"},
                                              "label": {"type": "string"},
                                              "value": {"type": "string"}}}},
                                      "raw": {"$ref": "#/components/schemas/Status"}}},
                                      "status")}, parameters=[LANG_PARAM])},
        f"{t}scanners/search": {"post": _op(
            "technicianSearchScanners", "ask the worker to list every scanner SANE finds",
            {"202": queued, **_errors(400, 409)}, requestBody=no_body)},
        f"{t}scanners/test": {"post": _op(
            "technicianTestScan", "ask the worker for a timed test scan (one batch)",
            {"202": queued, **_errors(400, 409)},
            requestBody=_body({"type": "object", "properties": {
                "device": {"type": "string", "maxLength": 500, "description":
                           "SANE name or identity; empty: the scanner in use"},
                "source": {"type": "string", "enum": ["flatbed", "adf", "duplex"]}}},
                required=False))},
        f"{t}scanners/choose": {"post": _op(
            "technicianChooseScanner", "remember the scanner the worker opens, by its "
                                       "stable identity ('' forgets the choice)",
            {"200": _json({"type": "object", "properties": {
                "chosen": {"type": "string"},
                "label": {"type": "string", "description": "vendor, model (serial)"}}},
                "chosen"), **_errors(400)},
            requestBody=_body({"type": "object", "required": ["identity"], "properties": {
                "identity": {"type": "string", "maxLength": 500,
                             "pattern": "^(scanner:.*)?$"}}}))},
        f"{t}jobs/{{job_id}}": {"get": _op(
            "technicianJob", "a scanner list or test scan job: steps, result, message",
            {"200": _json(job, "the job"), **_errors(404)},
            parameters=[_id_param("job_id"), LANG_PARAM])},
        f"{t}jobs/{{job_id}}/thumbnail": {"get": _op(
            "technicianJobThumbnail", "the test scan's first page, small",
            _file("image/jpeg"), parameters=[_id_param("job_id")])},
        f"{t}broker/test": {"post": _op(
            "technicianTestBroker", "connect once to the configured broker",
            {"200": _json({"type": "object", "required": ["ok", "key", "message"],
                           "properties": {
                               "ok": {"type": "boolean"}, "host": {"type": "string"},
                               "port": {"type": "integer"}, "tls": {"type": "boolean"},
                               "seconds": {"type": "number"}, "ms": {"type": "number"},
                               "key": {"type": "string", "description": "sync.probe.*"},
                               "detail": {"type": "string"},
                               "message": {"type": "string"}}}, "the probe's answer"),
             **_errors(400)}, requestBody=no_body, parameters=[LANG_PARAM])},
        f"{t}models": {"get": _op(
            "technicianModels", "the OCR models of the manifest, hashed on request",
            {"200": _json({"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "role": {"type": "string"},
                "variant": {"type": "string"}, "file": {"type": "string"},
                "sha256": {"type": "string"}, "actual_sha256": {"type": "string"},
                "check": {"type": "string",
                          "enum": ["not_checked", "ok", "missing", "mismatch"]},
                "check_text": {"type": "string"}}}}, "models"), **_errors(400)},
            parameters=[{"name": "verify", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": ["true", "false"]}}])},
        f"{t}versions": {"get": _op(
            "technicianVersions", "Python, packages and SANE backends",
            {"200": _json({"type": "object", "additionalProperties": {"type": "string"}},
                          "versions")})},
        f"{t}journal": {"get": _op(
            "technicianJournal", "the tail of the appliance-* units' journal",
            {"200": _json({"type": "object", "properties": {
                "available": {"type": "boolean"}, "message": {"type": "string"},
                "entries": {"type": "array", "items": {"type": "object", "properties": {
                    "at": {"type": "number"}, "time": {"type": "string"},
                    "unit": {"type": "string"}, "priority": {"type": "integer"},
                    "message": {"type": "string"}}}}}}, "journal lines"),
             **_errors(400)},
            parameters=[{"name": "lines", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        LANG_PARAM])},
        f"{t}queue": {"get": _op(
            "technicianQueue", "outbox counts by state, oldest waiting, dead letters",
            {"200": _json({"type": "object", "properties": {
                "counts": {"type": "object", "properties": {
                    "pending": {"type": "integer"}, "sending": {"type": "integer"},
                    "delivered": {"type": "integer"}}},
                "oldest_age_s": {"type": "number", "nullable": True},
                "dead_letter_counts": {"type": "object",
                                       "additionalProperties": {"type": "integer"}},
                "waiting": {"type": "array", "items": {"type": "object"}},
                "dead_letters": {"type": "array", "items": {"type": "object", "properties": {
                    "at": {"type": "number"}, "kind": {"type": "string"},
                    "topic": {"type": "string"}, "reason": {"type": "string"},
                    "size": {"type": "integer"}}}}}}, "the queue")})},
        f"{t}doctor": {"get": _op(
            "technicianDoctor", "`appliance doctor`'s checks: the local ones looked at "
                                "now, the scanner, broker, database and models as last "
                                "found (as_of), translated names, verdicts, "
                                "summaries and next steps",
            {"200": _json({"type": "object", "required": ["verdict", "rows"], "properties": {
                "verdict": {"type": "string", "enum": ["ok", "warn", "fail"]},
                "verdict_text": {"type": "string"},
                "rows": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "label": {"type": "string"},
                    "verdict": {"type": "string", "enum": ["ok", "warn", "fail", "skip"]},
                    "verdict_text": {"type": "string"},
                    "summary": {"type": "string", "description": "in the asked language; "
                                "the command's English where the check has no key"},
                    "summary_lang": {"type": "string", "enum": ["vi", "en"]},
                    "summary_en": {"type": "string", "description": "as `appliance "
                                                                    "doctor` prints it"},
                    "next_step": {"type": "string"},
                    "next_step_lang": {"type": "string", "enum": ["vi", "en"]},
                    "next_step_en": {"type": "string"},
                    "as_of": {"type": "string", "description": "local time of the run "
                                                               "that found it; '' = now"},
                    "as_of_text": {"type": "string"}}}}}}, "the checks")},
            parameters=[LANG_PARAM])},
        f"{t}config": {"get": _op(
            "technicianConfig", "the configuration in effect (secrets hidden) and the "
                                "file on disk checked key by key",
            {"200": _json({"type": "object", "properties": {
                "file": {"type": "string"},
                "problems": {"type": "array", "items": {"type": "object", "properties": {
                    "key": {"type": "string"}, "message": {"type": "string"}}}},
                "settings": {"type": "array", "items": {"type": "object"}}}},
                "configuration")})},
    }


CORRECTION_PATH = "/api/dossiers/{dossier_id}/papers/{paper_id}/fields/{name}"
# records.corrections.InvalidCorrection.code values (web/desk.py sends the one that
# refused a value as the problem's `code`).
REFUSAL_CODES = ("empty", "too_long", "not_kind", "extra_text", "bad_characters")
FIELD_NAME_SCHEMA: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 64,
    "description": "the field's name in the paper type's catalogue entry (full_name, "
                   "birth_date, cccd …); one the paper's type lacks is 404"}


def correction_operation() -> dict[str, Any]:
    """POST /api/…/fields/{name}: the review screen's correction form, as JSON."""
    return {
        "summary": "an officer's correction of one extracted field of a paper (before "
                   "sign-off): judged by the same validator as the OCR, stored with the "
                   "OCR's reading kept beside it and an audit line, exactly as the review "
                   "screen's form does it",
        "parameters": [_public_id_param("dossier_id"), _id_param("paper_id"),
                       {"name": "name", "in": "path", "required": True,
                        "schema": FIELD_NAME_SCHEMA}, LANG_PARAM],
        "requestBody": _body({"type": "object", "required": ["value"], "properties": {
            "value": {"type": "string", "description":
                      "what the paper says; NFC-normalised and trimmed, at most "
                      f"{CORRECTION_MAX_VALUE} characters, never cut: a longer one, an "
                      "empty one, one with control or unassigned characters or one the "
                      "field's validator refuses is a 422 and changes nothing"},
            "reason": {"type": "string", "description":
                       "the officer's note, kept sealed in the audit trail (cut at "
                       "300 characters)"},
            "officer": {"type": "string", "description":
                        "who corrects; ignored for an enrolled officer's own PIN (that "
                        "officer is recorded), optional under the officer PIN (the "
                        "counter is recorded), required where no PIN is set"}}}),
        "responses": {
            "200": _json({"type": "object", "required": [
                "dossier_id", "paper_id", "field", "value", "corrected_by", "audit_seq"],
                "properties": {
                    "dossier_id": PUBLIC_ID_SCHEMA, "paper_id": {"type": "integer"},
                    "field": {"type": "string"},
                    "value": {"type": "string", "description": "the value stored"},
                    "previous": {"type": "string", "nullable": True},
                    "ocr_value": {"type": "string", "nullable": True,
                                  "description": "what OCR read, kept for good"},
                    "corrected_by": {"type": "string"},
                    "corrected_at": {"type": "number"},
                    "reason": {"type": "string", "nullable": True},
                    "audit_seq": {"type": "integer",
                                  "description": "the correction's audit line"}}},
                "stored"),
            **_errors(400, 404, 409),
            "422": {"description": "the value is refused (see `code` and `message`); "
                                   "nothing changed",
                    "content": {"application/problem+json": {"schema": {
                        "$ref": "#/components/schemas/CorrectionRefused"}}}}}}


def _form(summary: str, fields: dict[str, Any], required: tuple[str, ...],
          done: str, **more: Any) -> dict[str, Any]:
    """One of the officer's screen forms, described for a reader (not for a client)."""
    props = {"csrf_token": {"type": "string",
                            "description": "the page's hidden CSRF token"}, **fields}
    responses = {
        "302": {"description": f"{done}; or refused (no token, a wrong state, an unknown "
                               "paper or page …): back to the review screen with a "
                               "translated notice and nothing changed; no officer "
                               "session: to the PIN keypad (/staff/login)"},
        "403": {"description": "another origin (the Origin, Referer or Sec-Fetch-Site "
                               "header): the error page, nothing changed"},
        "429": {"description": "too many PIN attempts: the error page with Retry-After"},
        **more.pop("responses", {})}
    return {"summary": summary, "security": FORM_SECURITY, "requestBody": {
        "required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["csrf_token", *required],
            "properties": props}}}}, "responses": responses, **more}


FORM_SECURITY: list[dict[str, list[str]]] = [{"officerSession": []}]
OFFICER_NAME_FIELD = {"type": "string", "description":
                      "the officer's name (optional with a PIN session; an enrolled "
                      "officer's own PIN names them whatever is typed)"}


def html_form_paths() -> dict[str, Any]:
    """The officer review screen's form posts (appliance/web/officer.py).

    Kept out of `paths` on purpose: they are a browser's forms, not an interface for
    programs. Each needs the officer's keypad session *and* the page's CSRF token,
    answers with a redirect to a screen and a translated notice (never a status a
    program could act on) and is refused from another origin; a generated client or
    schemathesis would only ever see redirects. A program uses the /api operations
    (the correction above, sign, cancel). They are described here so a reader of this
    document sees every state-changing route of the officer's face in one place; the
    test suite checks that every /officer POST route is listed.
    """
    d = "/officer/dossiers/{dossier_id}"
    page = {"page_id": {"type": "integer", "description": "the page shown in the viewer"}}
    forms = {
        f"{d}/papers/{{paper_id}}/fields/{{name}}": {"post": _form(
            "correct one field (the same use case as POST " + CORRECTION_PATH + ")",
            {"value": {"type": "string", "maxLength": CORRECTION_MAX_VALUE},
             "reason": {"type": "string"}, "officer": OFFICER_NAME_FIELD}, ("value",),
            "stored: to the review screen at the field",
            responses={"422": {"description": "refused: the review screen again, the "
                                              "reason beside the field, the value as "
                                              "typed, nothing changed",
                               "content": {"text/html": {"schema": {"type": "string"}}}}})},
        f"{d}/papers/{{paper_id}}/type": {"post": _form(
            "set the paper's type; its fields are read again from the stored OCR",
            {"paper_type": {"type": "string"}, "officer": OFFICER_NAME_FIELD},
            ("paper_type",), "set: to the paper")},
        f"{d}/pages/delete": {"post": _form(
            "take a page out with a reason (kept sealed in the audit trail)",
            {**page, "reason": {"type": "string"}, "officer": OFFICER_NAME_FIELD},
            ("page_id", "reason"), "deleted: to the paper")},
        f"{d}/papers/{{paper_id}}/split": {"post": _form(
            "this page and those after it become the next paper",
            {**page, "officer": OFFICER_NAME_FIELD}, ("page_id",), "split: to the new paper")},
        f"{d}/papers/{{paper_id}}/merge": {"post": _form(
            "the paper's pages go after those of the paper before it",
            {"officer": OFFICER_NAME_FIELD}, (), "merged: to the paper before")},
        f"{d}/return": {"post": _form(
            "hand the papers back to the citizen with a reason; the dossier is cancelled",
            {"confirm": {"type": "string", "enum": ["yes"]}, "reason": {"type": "string"},
             "officer": OFFICER_NAME_FIELD}, ("confirm", "reason"),
            "returned: to the officer's list")},
        f"{d}/sign": {"post": _form(
            "sign off: result codes issued, the record put in the outbox",
            {"checked": {"type": "string", "enum": ["yes"],
                         "description": "checked against the originals"},
             "officer": OFFICER_NAME_FIELD}, ("checked",),
            "signed: to the review screen with the result codes")},
        f"{d}/erase": {"post": _form(
            "erase the citizen's data on request before it was sent (Law 91/2025/QH15)",
            {"confirm": {"type": "string", "enum": ["yes"]}, "officer": OFFICER_NAME_FIELD},
            ("confirm",), "erased: to the review screen")},
    }
    params = {"dossier_id": _public_id_param("dossier_id"), "paper_id": _id_param("paper_id"),
              "name": {"name": "name", "in": "path", "required": True,
                       "schema": FIELD_NAME_SCHEMA}}
    for path, ops in forms.items():
        for op in ops.values():
            op["parameters"] = [params[n] for n in re.findall(r"\{(\w+)\}", path)]
    return forms


def _document() -> dict[str, Any]:
    dossier_ref = {"$ref": "#/components/schemas/Dossier"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "BHXH digitization appliance",
            "version": "1",
            "description": "Kiosk dossiers, scan jobs, officer sign-off and device status. "
                           "Errors are problem documents (application/problem+json) with "
                           "{error: message key, message: translated text}. Calls that "
                           "change state from a browser need the page's CSRF token "
                           "(X-CSRFToken) and are refused from another origin.",
        },
        "paths": {
            "/api/health": {"get": {"summary": "liveness", "responses": {
                "200": _json({"type": "object", "properties": {"ok": {"type": "boolean"}}},
                             "alive")}}},
            "/api/session": {"get": {
                "summary": "this caller's session: its dossier, whether it is an officer, and "
                           "the CSRF token for state-changing calls made with its cookie",
                "responses": {"200": _json({"type": "object", "properties": {
                    "dossier_id": {**PUBLIC_ID_SCHEMA, "nullable": True},
                    "officer": {"type": "boolean"},
                    "csrf_token": {"type": "string"}}}, "the session")}}},
            "/api/procedures": {"get": {"summary": "procedures a citizen can start",
                                        "parameters": [LANG_PARAM], "responses": {
                "200": _json({"type": "array", "items": {"$ref":
                              "#/components/schemas/Procedure"}}, "the catalogue")}}},
            "/api/dossiers": {
                "get": {"summary": "recent dossiers, newest first", "parameters": [
                    {"name": "status", "in": "query", "required": False, "schema": {
                        "type": "string",
                        "enum": ["open", "submitted", "signed", "cancelled"]}}],
                    "responses": {"200": _json({"type": "array", "items": dossier_ref},
                                               "dossiers"), **_errors(400, 403)}},
                "post": {"summary": "open a dossier; its code is the citizen's receipt number",
                         "requestBody": _body({"type": "object", "required": ["procedure"],
                                               "properties": {
                                                   "procedure": {"type": "string"},
                                                   "language": {"type": "string",
                                                                "enum": ["vi", "en"]}}}),
                         "responses": {"201": _json({"type": "object", "properties": {
                             "id": PUBLIC_ID_SCHEMA, "code": {"type": "string"},
                             "status": {"type": "string"}}}, "created"),
                             **_errors(400, 429, 503)}},
            },
            "/api/dossiers/{dossier_id}": {"get": {
                "summary": "a dossier with its papers and pages",
                "parameters": [_public_id_param("dossier_id")],
                "responses": {"200": _json(dossier_ref, "the dossier"), **_errors(404)}}},
            "/api/dossiers/{dossier_id}/scans": {"post": {
                "summary": "queue a scan for the worker (the web never opens the scanner)",
                "parameters": [_public_id_param("dossier_id")],
                "requestBody": _body({"type": "object", "required": ["source"], "properties": {
                    "source": {"type": "string", "enum": ["flatbed", "adf"]},
                    "preset": {"type": "string",
                               "enum": ["a4_form", "cccd", "feeder_batch", "duplex"],
                               "description": "a one-tap preset; a citizen's session may "
                                              "use a4_form and cccd, an officer all"},
                    "paper_id": {"type": "integer",
                                 "description": "continue this paper (after a jam)"}}}),
                "responses": {"202": _json({"type": "object", "properties": {
                    "job_id": {"type": "integer"}}}, "queued"), **_errors(400, 404, 409, 429)}}},
            "/api/dossiers/{dossier_id}/jobs/latest": {"get": {
                "summary": "the dossier's most recent scan job",
                "parameters": [_public_id_param("dossier_id"), LANG_PARAM],
                "responses": {"200": _json({"$ref": "#/components/schemas/Job"}, "job"),
                              **_errors(404)}}},
            "/api/jobs/{job_id}": {"get": {
                "summary": "a job's state, progress and a translated message",
                "parameters": [_id_param("job_id"), LANG_PARAM],
                "responses": {"200": _json({"$ref": "#/components/schemas/Job"}, "job"),
                              **_errors(404)}}},
            "/api/jobs/{job_id}/cancel": {"post": {
                "summary": "stop a queued or running scan: a queued one never starts, a "
                           "running one stops at the next page and keeps its pages; the "
                           "job ends failed with error_key scanner.cancelled",
                "parameters": [_id_param("job_id"), LANG_PARAM],
                "requestBody": _body({"type": "object"}, required=False),
                "responses": {"200": _json({"$ref": "#/components/schemas/Job"}, "job"),
                              **_errors(400, 404, 409)}}},
            "/api/dossiers/{dossier_id}/submit": {"post": {
                "summary": "the citizen is done: hand the dossier to an officer",
                "parameters": [_public_id_param("dossier_id")],
                "responses": {"200": _json(dossier_ref, "submitted"),
                              **_errors(400, 404, 409)}}},
            "/api/dossiers/{dossier_id}/cancel": {"post": {
                "summary": "abandon an open or submitted dossier",
                "parameters": [_public_id_param("dossier_id")],
                "responses": {"200": _json(dossier_ref, "cancelled"),
                              **_errors(400, 404, 409)}}},
            "/api/dossiers/{dossier_id}/sign": {"post": {
                "summary": "officer sign-off: issue result codes, write record and outbox row",
                "parameters": [_public_id_param("dossier_id")],
                "requestBody": _body({"type": "object", "required": ["officer"],
                                      "properties": {"officer": {"type": "string"}}}),
                "responses": {"200": _json({"type": "object", "properties": {
                    "record_id": {"type": "string"}, "code": {"type": "string"},
                    "status": {"type": "string"}, "delivery": {"type": "string"},
                    "papers": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "integer"}, "ordinal": {"type": "integer"},
                        "title": {"type": "string"},
                        "result_code": {"type": "string"}}}}}}, "signed"),
                    **_errors(400, 403, 404, 409)}}},
            CORRECTION_PATH: {"post": correction_operation()},
            "/api/pages/{sha}/thumbnail": {"get": {"summary": "a page's JPEG thumbnail",
                                                   "parameters": [SHA_PARAM],
                                                   "responses": _file("image/jpeg")}},
            "/api/pages/{sha}/image": {"get": {"summary": "a page's full PNG image",
                                               "parameters": [SHA_PARAM],
                                               "responses": _file("image/png")}},
            "/api/papers/{sha}/pdf": {"get": {"summary": "a paper's PDF",
                                              "parameters": [SHA_PARAM],
                                              "responses": _file("application/pdf")}},
            "/api/status": {"get": {"summary": "backlog, sync, scanner, OCR, disk, worker",
                                    "responses": {"200": _json(
                                        {"$ref": "#/components/schemas/Status"}, "status")}}},
            "/api/openapi.json": {"get": {"summary": "this document", "responses": {
                "200": _json({"type": "object"}, "OpenAPI 3 document")}}},
        },
        "x-html-forms": {
            "description": "Not part of the API: the officer review screen's HTML form "
                           "posts, for readers only (tools ignore x- members). Each "
                           "needs the officer's keypad session and the page's CSRF "
                           "token and answers with a redirect to a screen; programs "
                           "use the /api operations instead.",
            "paths": html_form_paths()},
        "components": {
            "securitySchemes": SECURITY_SCHEMES,
            "schemas": {
            "Error": {"type": "object", "required": ["error", "message"],
                      "description": "an RFC 9457 problem (application/problem+json)",
                      "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"},
                "error": {"type": "string", "description": "message key, e.g. scanner.jammed"},
                "message": {"type": "string", "description": "translated, says what to do"}}},
            "CorrectionRefused": {"allOf": [ERROR_REF, {"type": "object", "properties": {
                "error": {"type": "string", "enum": ["error.invalid_correction"]},
                "message": {"type": "string", "description":
                            "why, in the request's language (the rule or the "
                            "validator's finding), e.g. 'Giá trị quá dài: tối đa 200 "
                            "ký tự.'"},
                "paper_id": {"type": "integer"}, "field": {"type": "string"},
                "code": {"type": "string", "enum": list(REFUSAL_CODES),
                         "description": "the rule that refused it"},
                "flags": {"type": "array", "items": {"type": "string"},
                          "description": "the validator's findings (flag.<code>)"}}}]},
            "Procedure": {"type": "object", "properties": {
                "code": {"type": "string"}, "name": {"type": "string"},
                "papers": {"type": "array", "items": {"type": "string"}}}},
            "Page": {"type": "object", "properties": {
                "ordinal": {"type": "integer"}, "sha256": {"type": "string"},
                "blank": {"type": "boolean", "description": "flagged, never dropped"},
                "flags": {"type": "array", "items": {"type": "string", "enum": [
                    "incomplete", "too_dark", "too_light", "cut_off", "hand_or_lid"]},
                    "description": "scan-time checks that failed (imaging.flags."
                                   "PageFlag); flagged, never dropped"},
                "width": {"type": "integer"}, "height": {"type": "integer"},
                "dpi": {"type": "integer"}, "ocr_text": {"type": "string", "nullable": True},
                "thumbnail_url": {"type": "string"}, "image_url": {"type": "string"}}},
            "Paper": {"type": "object", "properties": {
                "id": {"type": "integer"}, "ordinal": {"type": "integer"},
                "title": {"type": "string"},
                "result_code": {"type": "string", "nullable": True},
                "pdf_sha256": {"type": "string", "nullable": True},
                "pdf_url": {"type": "string", "nullable": True},
                "fields": {"type": "object", "description": (
                    "{values: {...}, problems: [...], uncertain: [...]}; problems failed "
                    "validation, uncertain are valid values read with low confidence")},
                "pages": {"type": "array", "items": {"$ref": "#/components/schemas/Page"}}}},
            "Dossier": {"type": "object", "properties": {
                "id": PUBLIC_ID_SCHEMA, "code": {"type": "string"},
                "procedure": {"type": "string"},
                "status": {"type": "string",
                           "enum": ["open", "submitted", "signed", "cancelled"]},
                "language": {"type": "string"}, "created_at": {"type": "number"},
                "signed_by": {"type": "string", "nullable": True},
                "record_id": {"type": "string", "nullable": True},
                "delivery": {"type": "string", "nullable": True,
                             "enum": ["pending", "sending", "delivered", None]},
                "papers": {"type": "array", "items": {"$ref": "#/components/schemas/Paper"}}}},
            "Job": {"type": "object", "properties": {
                "id": {"type": "integer"}, "kind": {"type": "string"},
                "dossier_id": {**PUBLIC_ID_SCHEMA, "nullable": True},
                "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
                "progress": {"type": "object", "description":
                             "{step: scanning|reading|assembling|done, pages, page, paper_id}"},
                "error_key": {"type": "string", "nullable": True},
                "message": {"type": "string"},
                "stalled": {"type": "boolean", "description":
                            "queued or running while the worker shows no sign of life: "
                            "the screen offers to withdraw it instead of waiting"}}},
            "Status": {"type": "object", "properties": {
                "device_id": {"type": "string"}, "agency_code": {"type": "string"},
                "queue_depth": {"type": "integer", "description": "records not yet delivered"},
                "oldest_undelivered_age_s": {"type": "number", "nullable": True},
                "last_delivery_at": {"type": "number", "nullable": True},
                "delivered": {"type": "integer"},
                "sync_dead_letters": {"type": "integer", "description":
                                      "messages the sync service set aside, in total"},
                "sync_state": {"type": "string",
                               "description": "no_broker | connected | disconnected | "
                                              "acks_refused | not_started"},
                "sync_last_error": {"type": "string", "nullable": True},
                "scanner_state": {"type": "string", "description": "ready | busy | error:<key>"},
                "ocr_state": {"type": "string"},
                "disk_free_bytes": {"type": "integer", "nullable": True},
                "worker_heartbeat_age_s": {"type": "number", "nullable": True},
                "checked_at": {"type": "number"}}},
            },
        },
    }
