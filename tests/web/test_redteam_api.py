"""Red team: the served OpenAPI document against what /api really answers.

The schemathesis test beside this one (test_web_schemathesis.py) only asks "no 5xx,
and a refusal changes nothing". Here the document itself is on trial: every answer
must carry a status the operation documents, with the documented content type, and a
body that validates against the documented schema (jsonschema, $refs resolved in the
served document). Schemathesis runs with its conformance checks as four callers (no
credential, a citizen's kiosk session with its CSRF token, the officer PIN, the
technician PIN); then the statuses a generator rarely reaches (a body over the size
limit, a stalled worker, a full disk, a broken optional body) are provoked on purpose
and looked up in the document. JSON bodies a parser chokes on (nested arrays 30,000
deep, NaN, 10^30, duplicate keys) must get a 4xx problem and change nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.records import dossiers
from appliance.store.db import set_state
from appliance.system.config import Config, with_overrides
from appliance.web import create_app
from tests.web.helpers import add_job, add_scanned_paper, public_id, submitted_dossier
from tests.web.review_pages import review_dossier
from tests.web.test_web_schemathesis import fingerprint

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")
jsonschema = pytest.importorskip("jsonschema")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

PIN = "80413579"
TECH_PIN = "97531"
OFFICER = {"X-Officer-PIN": PIN}
TECH = {"X-Technician-PIN": TECH_PIN}
PROBLEM = "application/problem+json"
MAX_BODY = 64 * 1024
UNLIMITED = {"CREATE_BURST": 10_000, "SCAN_BURST": 10_000, "MAX_OPEN_PER_CLIENT": 10_000,
             "MAX_OPEN_DOSSIERS": 10_000, "PIN_FREE_PER_CLIENT": 10_000,
             "PIN_FREE_TOTAL": 10_000}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def app(config: Config) -> Flask:
    return create_app(config, {"TESTING": True, "OFFICER_PIN": PIN, "TECHNICIAN_PIN": TECH_PIN,
                               **UNLIMITED})


def served(client: FlaskClient) -> dict[str, Any]:
    return client.get("/api/openapi.json").get_json()


def documented(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return doc["paths"][path][method.lower()]["responses"]


def validate(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    """jsonschema on a response body, $refs resolved in the served document (OpenAPI
    3.0's `nullable` read as JSON Schema's null type)."""

    def nullable(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: nullable(v) for k, v in node.items()}
            if node.pop("nullable", False):
                return {"anyOf": [node, {"type": "null"}]}
            return node
        if isinstance(node, list):
            return [nullable(v) for v in node]
        return node

    whole = nullable({k: v for k, v in doc.items() if k != "paths"})
    jsonschema.validate(value, {**nullable(schema), "components": whole["components"]})


def check_documented(doc: dict[str, Any], path: str, method: str, response: Any) -> None:
    """The answer's status is documented for the operation, with its content type, and
    the body validates against that response's schema."""
    responses = documented(doc, path, method)
    status = str(response.status_code)
    assert status in responses, (f"{method} {path} answered {status}, documented only "
                                 f"{sorted(responses)}: {response.get_data(as_text=True)[:200]}")
    content = responses[status].get("content", {})
    assert response.mimetype in content, (response.mimetype, sorted(content))
    validate(doc, content[response.mimetype]["schema"], response.get_json())


def citizen(app: Flask) -> tuple[FlaskClient, str, str]:
    """A kiosk session bound to its own new dossier: (client, public id, CSRF token)."""
    client = app.test_client()
    created = client.post("/api/dossiers", json={"procedure": "tk1-ts"})
    assert created.status_code == 201, created.get_data(as_text=True)
    token = client.get("/api/session").get_json()["csrf_token"]
    return client, created.get_json()["id"], token


# -- schemathesis with its conformance checks, as each caller -------------------------------
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")
# Left out, each for a reason that is not a bug of the appliance:
# - negative_data_rejection: `lang` is documented as an enum, and an unknown language
#   falls back to Vietnamese instead of a 400 (i18n: a lenient choice, never a wrong
#   answer);
# - positive_data_acceptance: `procedure` is a free string in the document, so most
#   generated "valid" procedures are rightly refused as unknown (400);
# - ignored_auth: its probes put a junk `session` cookie beside the technician's header,
#   which the CSRF check refuses with 400 before the role guard's 403, and a generated
#   X-Officer-PIN beside a good X-Technician-PIN is a staff caller (200) by design.
# The one undocumented status the generator does reach (400 for a broken optional body
# on POST /api/jobs/{job_id}/cancel) is pinned below, deterministically, and left out of
# this tally so that a random draw cannot make this test pass or fail.
BUDGET_SECONDS = 45.0


def conform(operation, mode, who: str, headers: dict[str, str], chosen: list[Any],
            calls: Counter[str], failures: Counter[str]) -> None:
    """A few generated calls of one operation as one caller, each failure tallied."""

    @settings(max_examples=6, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        calls[who] += 1
        try:
            case.call_and_validate(headers=headers, checks=chosen)
        except (Exception, BaseExceptionGroup) as e:  # a group of failures, or one
            for failure in getattr(e, "exceptions", [e]):
                title = str(getattr(failure, "title", failure)).splitlines()[0]
                status = getattr(failure, "status_code", "")
                failures[f"{case.method} {case.path}: {title} {status} ({who})"] += 1

    run()


def test_schemathesis_conformance_as_every_kind_of_caller(app, config, conn):
    """Every operation, valid and invalid requests, as four callers: statuses, content
    types, headers and bodies as documented, and no 5xx."""
    from schemathesis import checks as st_checks

    submitted_dossier(conn, config)
    open_id = dossiers.create(conn, config, "khac")
    add_scanned_paper(conn, config, open_id, pages=1, seed=3)
    add_job(conn, open_id, "done", {"step": "done", "pages": 1})
    kiosk, _, token = citizen(app)
    cookie = kiosk.get_cookie("session")
    assert cookie is not None
    callers = {"anonymous": {}, "officer": OFFICER, "technician": TECH,
               "citizen": {"Cookie": f"session={cookie.value}", "X-CSRFToken": token}}
    chosen = [getattr(st_checks, name) for name in CHECKS]
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    failures: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    deadline = time.monotonic() + BUDGET_SECONDS
    for result in schema.get_all_operations():
        operation = result.ok()
        # What a mode can make of an operation does not depend on the caller's headers:
        # once it has nothing to make invalid (hypothesis tried long, then gave up), it
        # has nothing for the next caller either, and is not tried again.
        unsatisfiable: set[GenerationMode] = set()
        for who, headers in callers.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if time.monotonic() > deadline:
                    calls["passes left out for time"] += 1
                    continue
                if mode in unsatisfiable:
                    calls["nothing to make invalid"] += 1
                    continue
                try:
                    conform(operation, mode, who, headers, chosen, calls, failures)
                except hypothesis.errors.Unsatisfiable:
                    calls["nothing to make invalid"] += 1
                    unsatisfiable.add(mode)
    print("schemathesis conformance:", dict(calls))
    unexpected = {k: n for k, n in failures.items()
                  if not ("/api/jobs/{job_id}/cancel" in k and "Undocumented status" in k)}
    assert sum(n for k, n in calls.items() if k in callers) > 200
    assert unexpected == {}


# -- statuses provoked on purpose ------------------------------------------------------------
def test_real_answers_validate_against_the_documented_schemas(app, client, config, conn):
    """A dossier with a read and corrected paper, its job, the device status and the
    technician's JSON, each as served, against the document's own schemas."""
    doc = served(client)
    dossier_id, paper_id = review_dossier(conn, config)
    pid = public_id(conn, dossier_id)
    job = add_job(conn, dossier_id, "done", {"step": "done", "pages": 1})
    fixed = client.post(f"/api/dossiers/{pid}/papers/{paper_id}/fields/cccd",
                        json={"value": "001203004567", "officer": "Lê Văn Bình"},
                        headers=OFFICER)
    check_documented(doc, "/api/dossiers/{dossier_id}/papers/{paper_id}/fields/{name}",
                     "post", fixed)
    refused = client.post(f"/api/dossiers/{pid}/papers/{paper_id}/fields/cccd",
                          json={"value": "12", "officer": "Lê Văn Bình"}, headers=OFFICER)
    assert refused.status_code == 422
    check_documented(doc, "/api/dossiers/{dossier_id}/papers/{paper_id}/fields/{name}",
                     "post", refused)
    for path, url, headers in (
            ("/api/dossiers", "/api/dossiers", OFFICER),
            ("/api/dossiers/{dossier_id}", f"/api/dossiers/{pid}", OFFICER),
            ("/api/jobs/{job_id}", f"/api/jobs/{job}?lang=en", OFFICER),
            ("/api/dossiers/{dossier_id}/jobs/latest", f"/api/dossiers/{pid}/jobs/latest",
             OFFICER),
            ("/api/status", "/api/status", TECH),
            ("/api/session", "/api/session", {}),
            ("/api/procedures", "/api/procedures?lang=en", {}),
            ("/api/technician/status", "/api/technician/status", TECH),
            ("/api/technician/models", "/api/technician/models", TECH),
            ("/api/technician/queue", "/api/technician/queue", TECH),
            ("/api/dossiers/{dossier_id}", "/api/dossiers/" + "A" * 22, OFFICER),
            ("/api/jobs/{job_id}", "/api/jobs/999999", OFFICER),
            ("/api/status", "/api/status", {"X-Officer-PIN": "0000"})):
        check_documented(doc, path, "get", client.get(url, headers=headers))


def _stalled_worker(conn) -> None:
    set_state(conn, "worker.heartbeat", str(time.time() - 3600))


PROVOKED = {
    "413: POST /api/dossiers with a body over the limit":
        ("/api/dossiers", lambda c, pid, conn, job: c.post(
            "/api/dossiers", data=b'{"procedure": "' + b"a" * (MAX_BODY + 10) + b'"}',
            content_type="application/json")),
    "413: POST /api/dossiers/{id}/sign with a body over the limit":
        ("/api/dossiers/{dossier_id}/sign", lambda c, pid, conn, job: c.post(
            f"/api/dossiers/{pid}/sign", data=b'{"officer": "' + b"a" * (MAX_BODY + 10)
            + b'"}', content_type="application/json", headers=OFFICER)),
    "400: POST /api/jobs/{id}/cancel with a broken optional body":
        ("/api/jobs/{job_id}/cancel", lambda c, pid, conn, job: c.post(
            f"/api/jobs/{job}/cancel", data="{", content_type="application/json",
            headers=OFFICER)),
}


@pytest.mark.parametrize("case", list(PROVOKED))
def test_provoked_refusals_are_documented(app, client, config, conn, case):
    doc = served(client)
    submitted = submitted_dossier(conn, config)
    job = add_job(conn, submitted, "running", {"step": "scanning"})
    path, call = PROVOKED[case]
    before = fingerprint(conn)
    response = call(client, public_id(conn, submitted), conn, job)
    assert 400 <= response.status_code < 500
    assert response.mimetype == PROBLEM
    assert fingerprint(conn) == before
    check_documented(doc, path, "post", response)


@pytest.mark.parametrize("cause", ["worker stalled", "disk below the scan floor"])
def test_a_refused_scan_answers_a_documented_status(config, conn, cause):
    if cause == "disk below the scan floor":
        config = with_overrides(config, health={"scan_min_free_mb": 10**9})
    app = create_app(config, {"TESTING": True, "OFFICER_PIN": PIN, **UNLIMITED})
    client = app.test_client()
    doc = served(client)
    kiosk, pid, token = citizen(app)
    if cause == "worker stalled":
        _stalled_worker(conn)
    before = fingerprint(conn)
    response = kiosk.post(f"/api/dossiers/{pid}/scans", json={"source": "flatbed"},
                          headers={"X-CSRFToken": token})
    assert response.status_code in (503, 507), response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert fingerprint(conn) == before
    check_documented(doc, "/api/dossiers/{dossier_id}/scans", "post", response)


# -- JSON a parser chokes on --------------------------------------------------------------------
DEEP_ARRAY = "[" * 30_000 + "]" * 30_000
DEEP_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize("target", ["/api/dossiers", "sign", "/api/technician/scanners/choose"])
def test_deeply_nested_json_is_a_400_problem(app, client, config, conn, body, target):
    assert len(body.encode()) < MAX_BODY  # under the size limit: the parser must judge it
    submitted = submitted_dossier(conn, config)
    url = f"/api/dossiers/{public_id(conn, submitted)}/sign" if target == "sign" else target
    before = fingerprint(conn)
    response = client.post(url, data=body, content_type="application/json",
                           headers={**OFFICER, **TECH})
    assert fingerprint(conn) == before
    assert response.status_code == 400, response.status_code
    problem = response.get_json()
    assert problem["error"] == "error.bad_json"
    assert problem["message"] != problem["error"]  # a sentence, not a key


@pytest.mark.parametrize("raw", [
    '{"source": "flatbed", "paper_id": NaN}', '{"source": "flatbed", "paper_id": Infinity}',
    '{"source": "flatbed", "paper_id": -Infinity}',
    '{"source": "flatbed", "paper_id": 1000000000000000000000000000000}',
    '{"source": "flatbed", "paper_id": 1e999}', '{"source": "flatbed", "paper_id": 1.5}',
    '{"source": "flatbed", "paper_id": true}', '{"source": "flatbed", "paper_id": "1"}',
    '{"source": ["flatbed"]}', '{"source": {"$ne": 1}}', '{"source": "flatbed\\u0000"}',
    '{"source": "\\ud800"}', '{"source": "flatbed", "preset": ["cccd"]}',
    '{"procedure": ' + "9" * 5000 + "}", "[]", '"flatbed"', "null",
])
def test_odd_json_in_a_scan_request_is_a_400_and_queues_nothing(app, conn, raw):
    kiosk, pid, token = citizen(app)
    before = fingerprint(conn)
    response = kiosk.post(f"/api/dossiers/{pid}/scans", data=raw,
                          content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert fingerprint(conn) == before


def test_json_that_is_not_utf8_is_a_400_in_the_callers_language(app, conn):
    for lang, word in (("vi", "JSON"), ("en", "JSON")):
        client = app.test_client()
        before = fingerprint(conn)
        response = client.post(f"/api/dossiers?lang={lang}",
                               data=b'{"procedure": "tk1-ts\xff\xfe"}',
                               content_type="application/json")
        assert response.status_code == 400
        assert response.get_json()["error"] == "error.bad_json"
        assert word in response.get_json()["message"]
        assert fingerprint(conn) == before
    english = app.test_client().post("/api/dossiers", data=b"\xff",
                                     headers={"Accept-Language": "en"})
    assert english.get_json()["message"].isascii()


def test_duplicate_keys_are_read_as_the_last_one_consistently(app, conn):
    """RFC 8259 leaves duplicate names to the parser; this one keeps the last. What is
    created is what that reading says, and a duplicate of a bad value is refused."""
    client = app.test_client()
    created = client.post("/api/dossiers", data='{"procedure": "nope", "procedure": "khac"}',
                          content_type="application/json")
    assert created.status_code == 201
    assert dossiers.get(conn, dossiers.by_public_id(conn, created.get_json()["id"])
                        ).procedure_code == "khac"
    before = fingerprint(conn)
    refused = app.test_client().post(
        "/api/dossiers", data='{"procedure": "khac", "procedure": "nope"}',
        content_type="application/json")
    assert refused.status_code == 400
    assert fingerprint(conn) == before


def test_head_of_every_api_get_is_its_get_without_a_body(app, client, config, conn):
    submitted = submitted_dossier(conn, config)
    pid = public_id(conn, submitted)
    for url in ("/api/health", "/api/procedures", "/api/openapi.json", "/api/status",
                f"/api/dossiers/{pid}", "/api/dossiers", "/api/jobs/999"):
        got = client.get(url, headers=OFFICER)
        head = client.head(url, headers=OFFICER)
        assert head.status_code == got.status_code, url
        assert head.get_data() == b""
        assert head.mimetype == got.mimetype, url
        assert head.headers.get("Cache-Control") == "no-store", url
