"""The officer's correction through the JSON API, against the review screen's form.

Both faces go through one use case (web/desk.correct_field → records.corrections), so
a correction made through either must be stored and audited identically; who may call
it, what a refused value answers and what a cross-origin page can do are checked the
way the other API writes are. Values come from hypothesis too, not only from examples
written here: whatever it sends, the answer is a stored NFC value or a 4xx that
changed nothing, never a 5xx.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.records import audit, corrections, dossiers
from appliance.store import officers
from appliance.system.config import Config
from appliance.web import create_app
from tests.web.forms import post_form
from tests.web.helpers import public_id
from tests.web.review_pages import OCR_NAME, review_dossier

PIN = "2468"
ENROLLED_PIN = "97531864"
EVIL = "http://127.0.0.1:9"


@pytest.fixture
def app(config: Config) -> Flask:
    return create_app(config, {"TESTING": True, "OFFICER_PIN": PIN})


def program(app: Flask) -> FlaskClient:
    """A script on the network: no cookie jar."""
    return app.test_client(use_cookies=False)


def officer_browser(app: Flask) -> FlaskClient:
    """The counter's browser after the officer typed the PIN on the keypad."""
    b = app.test_client()
    r = post_form(b, "/staff/login", {"pin": PIN, "next": "/officer"}, page="/staff/login")
    assert r.status_code == 302 and "/staff/login" not in r.headers["Location"]
    return b


def post_json(client: FlaskClient, target: str, body: Any, **kwargs: Any) -> Any:
    """JSON as a program may send it: ASCII with escapes, so a lone surrogate
    ("\\ud800", which JSON can spell but UTF-8 cannot carry) reaches the server."""
    return client.post(target, data=json.dumps(body), content_type="application/json",
                       **kwargs)


def url(conn: sqlite3.Connection, dossier_id: int, paper_id: int, name: str) -> str:
    return f"/api/dossiers/{public_id(conn, dossier_id)}/papers/{paper_id}/fields/{name}"


def field(conn: sqlite3.Connection, config: Config, paper_id: int,
          name: str) -> corrections.ReviewField:
    return next(f for f in corrections.review_fields(conn, config, paper_id)
                if f.name == name)


def corrections_of(conn: sqlite3.Connection, dossier_id: int) -> list[audit.AuditEntry]:
    return [e for e in audit.entries(conn, dossier_id) if e.action == "correction"]


def state(conn: sqlite3.Connection) -> tuple[Any, ...]:
    """Everything a correction could change: the papers' sealed fields, the audit."""
    return (tuple(tuple(r) for r in conn.execute("SELECT id, fields_json FROM papers")),
            conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])


def comparable(conn: sqlite3.Connection, entry: audit.AuditEntry) -> dict[str, Any]:
    """An audit line without what differs between two dossiers (ids, times, seals)."""
    old, new = corrections.correction_values(conn, entry)
    return {"action": entry.action, "actor": entry.actor, "op": entry.detail["op"],
            "field": entry.detail["field"], "old_source": entry.detail["old_source"],
            "old": old, "new": new,
            "reason": corrections.entry_reason(conn, entry)}


def same_field(a: corrections.ReviewField, b: corrections.ReviewField) -> None:
    """Two dossiers' fields alike but for their row ids and the time of correction."""
    for attr in ("name", "kind", "value", "ocr_value", "source", "status", "reason",
                 "flags", "confidence", "corrected_by", "box", "page"):
        assert getattr(a, attr) == getattr(b, attr), attr


# --- the same as the form --------------------------------------------------------------

def test_a_correction_through_the_api_is_the_forms_correction(app, conn, config):
    """Under the officer PIN, no name typed: both record the counter, the value in NFC,
    the OCR's reading kept, one audit line with the same sealed old/new and reason."""
    typed = unicodedata.normalize("NFD", "NGUYỄN THỊ HỘI")  # as some keyboards send it
    by_form, form_paper = review_dossier(conn, config)
    by_api, api_paper = review_dossier(conn, config)
    counter = officer_browser(app)
    detail = f"/officer/dossiers/{public_id(conn, by_form)}"
    r = post_form(counter, f"{detail}/papers/{form_paper}/fields/full_name",
                  {"value": typed, "reason": "đối chiếu CCCD"}, page=detail)
    assert r.status_code == 302
    r = program(app).post(url(conn, by_api, api_paper, "full_name"),
                          json={"value": typed, "reason": "đối chiếu CCCD"},
                          headers={"X-Officer-PIN": PIN})
    assert r.status_code == 200, r.get_json()
    answer = r.get_json()
    stored = field(conn, config, api_paper, "full_name")
    same_field(field(conn, config, form_paper, "full_name"), stored)
    assert stored.value == unicodedata.normalize("NFC", typed) == answer["value"]
    assert stored.ocr_value == OCR_NAME == answer["ocr_value"]
    assert stored.corrected_by == f"Cán bộ tiếp nhận ({config.device.id})"
    assert answer["corrected_by"] == stored.corrected_by
    assert answer["dossier_id"] == public_id(conn, by_api) and answer["field"] == "full_name"
    [form_line], [api_line] = corrections_of(conn, by_form), corrections_of(conn, by_api)
    assert comparable(conn, form_line) == comparable(conn, api_line)
    assert answer["audit_seq"] == api_line.seq
    # and the review screen shows the API's correction as it shows the form's
    page = counter.get(f"/officer/dossiers/{public_id(conn, by_api)}").get_data(as_text=True)
    assert f"data-ocr>{OCR_NAME}</span>" in page
    assert unicodedata.normalize("NFC", typed) in page


def test_an_enrolled_officer_is_recorded_whatever_name_is_sent(app, conn, config):
    officers.enrol(conn, "Trần Văn Bình", ENROLLED_PIN)
    dossier_id, paper_id = review_dossier(conn, config)
    r = program(app).post(url(conn, dossier_id, paper_id, "full_name"),
                          json={"value": "TRẦN THỊ LAN", "officer": "Mallory"},
                          headers={"X-Officer-PIN": ENROLLED_PIN})
    assert r.status_code == 200 and r.get_json()["corrected_by"] == "Trần Văn Bình"
    [line] = corrections_of(conn, dossier_id)
    assert line.actor == "Trần Văn Bình"


def test_without_a_pin_a_name_is_needed_as_on_the_form(conn, config):
    client = create_app(config, {"TESTING": True}).test_client(use_cookies=False)
    dossier_id, paper_id = review_dossier(conn, config)
    before = state(conn)
    r = client.post(url(conn, dossier_id, paper_id, "full_name"), json={"value": "TRẦN THỊ LAN"})
    assert r.status_code == 400 and r.get_json()["error"] == "error.officer_required"
    assert state(conn) == before
    r = client.post(url(conn, dossier_id, paper_id, "full_name"),
                    json={"value": "TRẦN THỊ LAN", "officer": " Lê  Văn\x07 Tâm\n"})
    assert r.status_code == 200 and r.get_json()["corrected_by"] == "Lê Văn Tâm"


# --- who may call it ---------------------------------------------------------------------

def test_anonymous_citizen_and_wrong_pin_are_refused_and_change_nothing(app, conn, config):
    dossier_id, paper_id = review_dossier(conn, config)
    target = url(conn, dossier_id, paper_id, "full_name")
    body = {"value": "TRẦN THỊ LAN", "officer": "Mallory"}
    before = state(conn)
    # a citizen at the kiosk, with its own open dossier and a valid CSRF token
    kiosk = app.test_client()
    token = kiosk.get("/api/session").get_json()["csrf_token"]
    assert kiosk.post("/api/dossiers", json={"procedure": "tk1-ts"},
                      headers={"X-CSRFToken": token}).status_code == 201
    token = kiosk.get("/api/session").get_json()["csrf_token"]
    calls = {
        "anonymous program": program(app).post(target, json=body),
        "wrong PIN": program(app).post(target, json=body, headers={"X-Officer-PIN": "0000"}),
        "empty PIN": program(app).post(target, json=body, headers={"X-Officer-PIN": ""}),
        "technician PIN header": program(app).post(target, json=body,
                                                   headers={"X-Technician-PIN": PIN}),
        "citizen session": kiosk.post(target, json=body, headers={"X-CSRFToken": token}),
    }
    for who, r in calls.items():
        assert r.status_code == 403, (who, r.status_code)
        assert r.mimetype == "application/problem+json"
        problem = r.get_json()
        assert problem["error"] == "error.staff_only", who
        assert "TRẦN" not in r.get_data(as_text=True) and OCR_NAME not in r.get_data(
            as_text=True), who  # nothing of the paper is shown
    assert state(conn) == before
    assert field(conn, config, paper_id, "full_name").value == OCR_NAME


def test_a_session_cookie_needs_its_csrf_token(app, conn, config):
    dossier_id, paper_id = review_dossier(conn, config)
    counter = officer_browser(app)
    before = state(conn)
    r = counter.post(url(conn, dossier_id, paper_id, "full_name"),
                     json={"value": "TRẦN THỊ LAN"})
    assert r.status_code == 400 and r.get_json()["error"] == "error.csrf"
    assert state(conn) == before
    token = counter.get("/api/session").get_json()["csrf_token"]
    r = counter.post(url(conn, dossier_id, paper_id, "full_name"),
                     json={"value": "TRẦN THỊ LAN"}, headers={"X-CSRFToken": token})
    assert r.status_code == 200


@pytest.mark.parametrize("headers", [
    {"Origin": EVIL},
    {"Origin": "null"},
    {"Referer": f"{EVIL}/attack.html"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
def test_cross_origin_corrections_are_refused(app, conn, config, headers):
    """As every other API write: refused from another origin, with the officer's own
    session and token, with the PIN header, or as a text/plain 'JSON' form post."""
    dossier_id, paper_id = review_dossier(conn, config)
    target = url(conn, dossier_id, paper_id, "full_name")
    counter = officer_browser(app)
    token = counter.get("/api/session").get_json()["csrf_token"]
    before = state(conn)
    calls = [
        counter.post(target, json={"value": "MALLORY"},
                     headers={**headers, "X-CSRFToken": token}),
        counter.post(target, data='{"value": "MALLORY", "x": "="}',
                     content_type="text/plain", headers=headers),
        program(app).post(target, json={"value": "MALLORY"},
                          headers={**headers, "X-Officer-PIN": PIN}),
    ]
    for r in calls:
        assert r.status_code == 403 and r.get_json()["error"] == "error.cross_origin"
    assert state(conn) == before


# --- refused values ------------------------------------------------------------------------

REFUSED = [
    ("full_name", " ".join(["NGUYỄN"] * 40), "too_long", "Giá trị quá dài: tối đa 200 ký tự."),
    ("full_name", "NGUYỄN " * 200, "too_long", "tối đa 200 ký tự"),  # past what is read
    ("cccd", "00120300456", "not_kind", "Số CCCD phải có đúng 12 chữ số."),
    ("birth_date", "31/02/1990", "not_kind", "Ngày này không có trên lịch"),
    ("birth_date", "  ", "empty", "Chưa nhập giá trị"),
    ("cccd", "001203004567 abc", "extra_text", "Chỉ nhập giá trị"),
    ("full_name", "NGUYỄN\x00VĂN AN", "bad_characters", "ký tự không in được"),
    ("nationality", "Việt\x00Nam", "bad_characters", "ký tự không in được"),
    ("nationality", "Việt Nam\u202e", "bad_characters", "ký tự không in được"),
    ("nationality", "Việt\ud800Nam", "bad_characters", "ký tự không in được"),
    ("nationality", "\U0010fffe", "bad_characters", "ký tự không in được"),
]


@pytest.mark.parametrize(("name", "value", "code", "says"), REFUSED)
def test_refused_values_say_why_and_change_nothing(app, conn, config, name, value, code,
                                                   says):
    dossier_id, paper_id = review_dossier(conn, config)
    before = state(conn)
    r = post_json(program(app), url(conn, dossier_id, paper_id, name), {"value": value},
                  headers={"X-Officer-PIN": PIN})
    assert r.status_code == 422, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    problem = r.get_json()
    assert problem["error"] == "error.invalid_correction" and problem["code"] == code
    assert problem["field"] == name and problem["paper_id"] == paper_id
    assert says in problem["message"] and problem["message"] != problem["title"]
    assert state(conn) == before and corrections_of(conn, dossier_id) == []


def test_the_refusal_is_in_english_when_asked_and_logged_without_the_value(
        app, conn, config, caplog):
    dossier_id, paper_id = review_dossier(conn, config)
    caplog.set_level("INFO")
    r = program(app).post(url(conn, dossier_id, paper_id, "cccd") + "?lang=en",
                          json={"value": "00120300456"}, headers={"X-Officer-PIN": PIN})
    assert r.status_code == 422
    assert r.get_json()["message"] == "A CCCD number has exactly 12 digits."
    assert "correction of cccd refused" in caplog.text  # the log says what, in English
    assert "00120300456" not in caplog.text  # never the value typed (personal data)


def test_the_form_refuses_unprintable_characters_too(app, conn, config):
    """One validator: the form refuses what the API refuses, beside the field."""
    dossier_id, paper_id = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    before = state(conn)
    r = post_form(officer_browser(app), f"{detail}/papers/{paper_id}/fields/full_name",
                  {"value": "NGUYỄN\x1bVĂN AN"}, page=detail)
    assert r.status_code == 422
    refusal = re.search(rf'id="refusal-{paper_id}-full_name">([^<]*)<',
                        r.get_data(as_text=True))
    assert refusal and "ký tự không in được" in refusal.group(1)
    assert state(conn)[0] == before[0]  # the screen's views are audited; no correction
    assert corrections_of(conn, dossier_id) == []


@pytest.mark.parametrize(("body", "status", "key"), [
    ({"value": 12}, 400, "error.bad_request"),
    ({"value": None}, 400, "error.bad_request"),
    ({"value": ["A"]}, 400, "error.bad_request"),
    ({"value": "TRẦN THỊ LAN", "reason": {"x": 1}}, 400, "error.bad_request"),
    ({}, 400, "error.bad_request"),
    ("not an object", 400, "error.bad_json"),
])
def test_malformed_bodies_are_400(app, conn, config, body, status, key):
    dossier_id, paper_id = review_dossier(conn, config)
    before = state(conn)
    r = program(app).post(url(conn, dossier_id, paper_id, "full_name"), json=body,
                          headers={"X-Officer-PIN": PIN})
    assert (r.status_code, r.get_json()["error"]) == (status, key)
    assert state(conn) == before


def test_unknown_papers_fields_and_signed_dossiers(app, conn, config):
    mine, my_paper = review_dossier(conn, config)
    other, other_paper = review_dossier(conn, config)
    pin = {"X-Officer-PIN": PIN}
    body = {"value": "TRẦN THỊ LAN"}
    before = state(conn)
    for target, status, key in (
            (url(conn, mine, other_paper, "full_name"), 404, "error.paper_not_found"),
            (url(conn, other, my_paper, "full_name"), 404, "error.paper_not_found"),
            (url(conn, mine, my_paper, "no_such_field"), 404, "error.unknown_field"),
            (url(conn, mine, 2**63 - 1, "full_name"), 404, "error.paper_not_found"),
            (f"/api/dossiers/{'Zz9_-' * 4}xy/papers/{my_paper}/fields/full_name", 404,
             "error.dossier_not_found")):
        r = program(app).post(target, json=body, headers=pin)
        assert (r.status_code, r.get_json()["error"]) == (status, key), target
    assert state(conn) == before
    dossiers.sign_off(conn, config, mine, "Lê Văn Tâm")
    r = program(app).post(url(conn, mine, my_paper, "full_name"), json=body, headers=pin)
    assert (r.status_code, r.get_json()["error"]) == (409, "error.dossier_signed")
    assert field(conn, config, my_paper, "full_name").value == OCR_NAME


# --- inputs nobody here wrote ------------------------------------------------------------

ODD = st.sampled_from(["\x00", "\x1b", "\u200b", "\u202e", "\ud800", "\udfff", "\ufffe",
                       "\U000e0001", "\u0301", "\u0323", "ﬁ", "Ⅻ", "\n", "\t", " "])
VALUES = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.characters(), ODD), max_size=60).map("".join),
    st.from_regex(r"[0-9 ]{0,15}", fullmatch=True),
    st.sampled_from(["NGUYỄN THỊ HỘI", "001203004567", "16/08/2003", "Việt Nam"]).map(
        lambda v: unicodedata.normalize("NFD", v)),
)
FIELDS = st.sampled_from(["full_name", "birth_date", "cccd", "nationality", "phone",
                          "email", "gender"])


def test_generated_values_are_stored_in_nfc_or_refused_with_nothing_changed(app, conn,
                                                                           config):
    dossier_id, paper_id = review_dossier(conn, config)
    client = program(app)
    seen: dict[int, int] = {}

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(name=FIELDS, value=VALUES)
    def run(name: str, value: str) -> None:
        before = state(conn)
        r = post_json(client, url(conn, dossier_id, paper_id, name), {"value": value},
                      headers={"X-Officer-PIN": PIN})
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code in (200, 422), (name, value, r.status_code)
        if r.status_code == 422:
            assert state(conn) == before
            assert r.get_json()["message"]
            return
        stored = field(conn, config, paper_id, name).value
        assert stored == r.get_json()["value"]
        assert stored == unicodedata.normalize("NFC", stored)
        assert all(unicodedata.category(c) not in corrections.UNPRINTABLE for c in stored)
        assert 0 < len(stored) <= corrections.MAX_VALUE

    run()
    print("generated corrections:", seen)
    assert seen.get(422, 0) > 10 and seen.get(200, 0) > 0


def test_openapi_describes_the_correction_and_lists_the_officer_forms_apart(app):
    spec = program(app).get("/api/openapi.json").get_json()
    op = spec["paths"]["/api/dossiers/{dossier_id}/papers/{paper_id}/fields/{name}"]["post"]
    assert op["security"] == [{"officerPin": []}, {"officerSession": []}]
    assert {"200", "400", "403", "404", "409", "422", "429"} <= set(op["responses"])
    assert op["requestBody"]["content"]["application/json"]["schema"]["required"] == ["value"]
    assert not any(p.startswith("/officer") for p in spec["paths"])  # no form in the API
    forms = spec["x-html-forms"]["paths"]
    posts = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("officer.") and "POST" in (rule.methods or ()):
            posts.add(rule.rule.replace("<public_id:dossier_id>", "{dossier_id}")
                      .replace("<int:paper_id>", "{paper_id}").replace("<name>", "{name}"))
    assert posts == set(forms)
    for path, ops in forms.items():
        form = ops["post"]
        assert form["security"] == [{"officerSession": []}], path
        body = form["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        assert "csrf_token" in body["required"], path
        assert {p["name"] for p in form["parameters"]} == set(
            re.findall(r"\{(\w+)\}", path)), path
        assert "302" in form["responses"] and "403" in form["responses"], path



def test_a_paper_whose_pdf_waits_to_be_rebuilt_says_so_on_the_review_screen(app, conn, config):
    """An officer's correction that could not rebuild the paper's PDF (a full disk:
    tests/records/test_corrections_full_disk.py) leaves the paper without one until the
    worker makes it: the screen says so, in Vietnamese or English, with no dead link."""
    dossier_id, paper_id = review_dossier(conn, config, two_pages=True)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    counter = officer_browser(app)
    with_pdf = counter.get(detail).get_data(as_text=True)
    assert "Mở PDF" in with_pdf and "PDF đang được dựng lại" not in with_pdf
    conn.execute("UPDATE papers SET pdf_sha256=NULL, pdf_size=NULL WHERE id=?", (paper_id,))
    conn.commit()
    page = counter.get(detail).get_data(as_text=True)
    assert "PDF đang được dựng lại từ các trang" in page
    assert "Mở PDF" not in page
    english = counter.get(f"{detail}?lang=en").get_data(as_text=True)
    assert "PDF being rebuilt from the pages" in english and "Open PDF" not in english
