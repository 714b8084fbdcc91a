"""Red team: what people (and programs) type, as they really type it.

A Vietnamese keyboard may send "Nguyễn" decomposed (NFD: e + circumflex + tilde, what
Unikey's "Unicode tổ hợp" and macOS send), an IME may give full-width digits, a copied
number may carry Arabic-Indic digits (which Python's \\d and str.isdigit take for
digits), and a hostile client sends NUL bytes, lone surrogates (%ED%A0%80), bytes that
are not UTF-8, fields of 11 MB and the same field twice. Each must end in one of two
ways: taken as the person meant it (NFC, ASCII digits), or refused with a notice in
the screen's language that changes nothing. A 500, a value stored in other digits, or
a search that misses the person because of how the name was typed, is a bug.
"""

from __future__ import annotations

import re
import unicodedata
from html import unescape
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from appliance.records import dossiers
from appliance.system.config import Config
from appliance.web import create_app
from tests.web.forms import page_fields, post_form
from tests.web.helpers import public_id, submitted_dossier
from tests.web.review_pages import review_dossier
from tests.web.test_web_schemathesis import fingerprint

PIN = "80413579"
TECH_PIN = "97531"
OFFICER = {"X-Officer-PIN": PIN}
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
NFD_NAME = unicodedata.normalize("NFD", "Nguyễn Thị Hội")

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def app(config: Config) -> Flask:
    return create_app(config, {"TESTING": True, "OFFICER_PIN": PIN,
                               "TECHNICIAN_PIN": TECH_PIN, "PIN_FREE_PER_CLIENT": 1000,
                               "PIN_FREE_TOTAL": 1000})


def officer_client(app: Flask) -> FlaskClient:
    """An officer signed in on the keypad, as at the counter."""
    client = app.test_client()
    r = post_form(client, "/staff/login", {"pin": PIN, "next": "/officer"}, page="/staff/login")
    assert r.status_code == 302, r.status_code
    return client


def alerts(response: Any) -> list[str]:
    """The notices a screen shows (role=alert or status), as text."""
    html = response.get_data(as_text=True)
    found = re.findall(r'role="(?:alert|status)"[^>]*>(.*?)</', html, re.S)
    return [unescape(re.sub(r"<[^>]+>", " ", f)).strip() for f in found if f.strip()]


def stored_values(conn, dossier_id: int, paper_id: int) -> dict[str, Any]:
    paper = next(p for p in dossiers.get(conn, dossier_id).papers if p.id == paper_id)
    return dict(paper.fields.get("values") or {})


# -- names typed decomposed ----------------------------------------------------------------
@pytest.mark.parametrize("form", ["NFC", "NFD"])
@pytest.mark.parametrize("term", ["Nguyễn", "NGUYỄN VĂN", "Văn An"])
def test_the_officer_finds_a_citizen_by_name_however_it_was_typed(app, conn, config, form,
                                                                   term):
    dossier_id = submitted_dossier(conn, config)  # papers name NGUYỄN VĂN AN
    code = dossiers.get(conn, dossier_id).code
    typed = unicodedata.normalize(form, term)
    page = app.test_client().get("/officer", query_string={"q": typed}, headers=OFFICER)
    assert page.status_code == 200
    assert code in page.get_data(as_text=True)


def test_a_name_typed_decomposed_is_stored_composed(app, conn, config):
    dossier_id, paper_id = review_dossier(conn, config)
    pid = public_id(conn, dossier_id)
    r = app.test_client().post(
        f"/api/dossiers/{pid}/papers/{paper_id}/fields/full_name",
        json={"value": NFD_NAME, "officer": unicodedata.normalize("NFD", "Lê Văn Bình"),
              "reason": unicodedata.normalize("NFD", "Đối chiếu bản gốc")},
        headers=OFFICER)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["value"] == unicodedata.normalize("NFC", "NGUYỄN THỊ HỘI")
    assert body["corrected_by"] == unicodedata.normalize("NFC", "Lê Văn Bình")
    assert body["reason"] == unicodedata.normalize("NFC", "Đối chiếu bản gốc")
    assert stored_values(conn, dossier_id, paper_id)["full_name"] == body["value"]
    signed = app.test_client().post(f"/api/dossiers/{pid}/sign",
                                    json={"officer": unicodedata.normalize("NFD", "Lê Văn Bình")},
                                    headers=OFFICER)
    assert signed.status_code == 200, signed.get_data(as_text=True)
    assert dossiers.get(conn, dossier_id).signed_by == unicodedata.normalize("NFC", "Lê Văn Bình")


# -- numbers typed in other digits -----------------------------------------------------------
NUMBERS = {
    "bhxh_number": "0123456789",
    "cccd": "001203004567",
    "phone": "0912345678",
    "birth_date": "12/03/1985",
}


@pytest.mark.parametrize("field,digits", [
    (field, name) for field in NUMBERS for name in ("full-width", "arabic-indic")])
def test_a_number_in_other_digits_is_stored_in_ascii_or_refused(app, conn, config, field,
                                                                 digits):
    dossier_id, paper_id = review_dossier(conn, config)
    pid = public_id(conn, dossier_id)
    table = FULL_WIDTH if digits == "full-width" else ARABIC_INDIC
    typed = NUMBERS[field].translate(table)
    assert typed != NUMBERS[field] and all(c.isdigit() for c in typed if c != "/")
    before = stored_values(conn, dossier_id, paper_id).get(field)
    r = app.test_client().post(f"/api/dossiers/{pid}/papers/{paper_id}/fields/{field}",
                               json={"value": typed, "officer": "Lê Văn Bình"},
                               headers=OFFICER)
    after = stored_values(conn, dossier_id, paper_id).get(field)
    if r.status_code == 200:
        assert r.get_json()["value"] == NUMBERS[field]
        assert after == NUMBERS[field]
    else:
        assert r.status_code == 422, r.status_code
        assert after == before


def test_the_review_screen_stores_a_full_width_bhxh_number_in_ascii_or_refuses_it(
        app, conn, config):
    dossier_id, paper_id = review_dossier(conn, config)
    pid = public_id(conn, dossier_id)
    client = officer_client(app)
    screen = f"/officer/dossiers/{pid}"
    r = post_form(client, f"{screen}/papers/{paper_id}/fields/bhxh_number",
                  {"value": "0123456789".translate(FULL_WIDTH), "officer": "Lê Văn Bình"},
                  page=screen)
    assert r.status_code in (302, 422)
    assert stored_values(conn, dossier_id, paper_id).get("bhxh_number") in (None, "0123456789")


@pytest.mark.parametrize("value", [
    " 001203004567 ", "\t001203004567\n", "0012 0300 4567", "001-203-004-567",
])
def test_a_cccd_with_spaces_around_or_between_is_stored_as_twelve_digits(app, conn, config,
                                                                         value):
    dossier_id, paper_id = review_dossier(conn, config)
    pid = public_id(conn, dossier_id)
    r = app.test_client().post(f"/api/dossiers/{pid}/papers/{paper_id}/fields/cccd",
                               json={"value": value, "officer": "Lê Văn Bình"},
                               headers=OFFICER)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert stored_values(conn, dossier_id, paper_id)["cccd"] == "001203004567"


@pytest.mark.parametrize("value", [
    "NGUYỄN\x00THỊ HỘI", "NGUYỄN THỊ HỘI\u202e", "NGUYỄN\u200bTHỊ HỘI", "X" * 201, "", "   ",
    "%ED%A0%80", "%FF%FE",
])
def test_a_hostile_name_is_refused_beside_the_field_and_changes_nothing(app, conn, config,
                                                                        value):
    dossier_id, paper_id = review_dossier(conn, config)
    pid = public_id(conn, dossier_id)
    client = officer_client(app)
    screen = f"/officer/dossiers/{pid}"
    fields = page_fields(client, screen)
    before = fingerprint(conn)
    encoded = (value.encode() if value.startswith("%") else quote(value, safe="").encode())
    r = client.post(f"{screen}/papers/{paper_id}/fields/full_name",
                    data=b"csrf_token=" + fields["csrf_token"].encode() + b"&value=" + encoded
                    + b"&officer=" + quote("Lê Văn Bình").encode(),
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 422
    # the papers and the records as they were; the screen shown again is a viewing,
    # which the audit trail lists (one line), not a change
    assert fingerprint(conn)[:5] == before[:5]
    assert fingerprint(conn)[6:] == before[6:]
    text = r.get_data(as_text=True)
    assert "Giá trị" in text or "Hãy" in text  # the reason, in Vietnamese, on the screen


# -- hostile bytes in forms and query strings -------------------------------------------------
CONSENT = "/kiosk/consent?procedure=tk1-ts"
RAW_BODIES = {
    "not UTF-8": b"&procedure=tk1-ts\xff\xfe",
    "lone surrogate": b"&procedure=tk1-ts%ED%A0%80",
    "NUL": b"&procedure=tk1-ts%00",
    "unknown": b"&procedure=%3Cscript%3E",
    "11 MB": b"&procedure=" + b"a" * (11 * 1024 * 1024),
}


@pytest.mark.parametrize("lang", ["vi", "en"])
@pytest.mark.parametrize("name", list(RAW_BODIES))
def test_a_hostile_kiosk_form_opens_nothing_and_says_why(app, conn, name, lang):
    client = app.test_client()
    client.get(f"/kiosk?lang={lang}")
    token = page_fields(client, CONSENT)["csrf_token"]
    before = fingerprint(conn)
    body = b"csrf_token=" + token.encode() + b"&consent=accept" + RAW_BODIES[name]
    r = client.post("/kiosk/dossiers", data=body,
                    content_type="application/x-www-form-urlencoded", follow_redirects=True)
    assert r.status_code in (200, 400, 413), r.status_code
    assert fingerprint(conn) == before
    notices = alerts(r)
    assert notices, r.get_data(as_text=True)[:500]
    # Vietnamese (marks and all), or English
    assert all(n.isascii() for n in notices) == (lang == "en"), notices


def test_a_procedure_named_twice_opens_the_first_one_only(app, conn):
    client = app.test_client()
    fields = page_fields(client, CONSENT)
    r = client.post("/kiosk/dossiers", data=MultiDict([
        ("csrf_token", fields["csrf_token"]), ("consent", "accept"), ("procedure", "khac"),
        ("procedure", "tk1-ts")]))
    assert r.status_code == 302
    ids = dossiers.list_ids(conn)
    assert len(ids) == 1
    assert dossiers.get(conn, ids[0]).procedure_code == "khac"


@pytest.mark.parametrize("code", [
    "%00", "AB%00CD", "%ED%A0%80", "%FF%FE", "%C0%AF", "x" * 5000,
    "%EF%BC%90%EF%BC%90%EF%BC%90",  # full-width digits
    "%D9%A0%D9%A1",  # Arabic-Indic digits
])
def test_the_lookup_answers_a_hostile_code_with_a_notice(app, conn, config, code):
    submitted_dossier(conn, config)
    for lang in ("vi", "en"):
        r = app.test_client().get(f"/kiosk/lookup?code={code}&lang={lang}")
        assert r.status_code == 200
        notices = alerts(r)
        assert notices
        assert all(n.isascii() for n in notices) == (lang == "en"), notices


def test_the_lookup_finds_a_code_typed_with_spaces_and_lower_case(app, conn, config):
    code = dossiers.get(conn, submitted_dossier(conn, config)).code
    r = app.test_client().get("/kiosk/lookup", query_string={"code": f"  {code.lower()} "})
    assert r.status_code == 200
    assert not alerts(r) or all("Không tìm thấy" not in n for n in alerts(r))
    assert code in r.get_data(as_text=True)


JUNK_QUERIES = ("q=%ED%A0%80&code=%FF&lang=%00&procedure=%ED%A0%80&back=%FF&next=%00"
                "&status=%ED%A0%80&on=%FF&verify=%ED%A0%80&lines=%FF")


def _get_routes(app: Flask) -> list[str]:
    """Every GET address of the screens and the API, ids filled with plausible junk."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        url = re.sub(r"<(?:int:)?(\w+)>", lambda m: "1" if "int:" in m.group(0) else "x" * 22,
                     rule.rule)
        url = url.replace("<public_id:dossier_id>", "A" * 22).replace("<path:filename>", "x")
        urls.append(url)
    return sorted(set(urls))


@pytest.mark.parametrize("who", ["anonymous", "officer", "technician"])
def test_no_screen_or_api_address_fails_on_junk_in_its_query(app, who):
    headers = {"officer": OFFICER, "technician": {"X-Technician-PIN": TECH_PIN}}.get(who, {})
    urls = _get_routes(app)
    assert len(urls) > 20
    failed = []
    for url in urls:
        r = app.test_client().get(f"{url}?{JUNK_QUERIES}", headers=headers)
        if r.status_code >= 500:
            failed.append(f"{url} -> {r.status_code}")
    assert failed == []


@pytest.mark.parametrize("pin", ["２４６８", "80413579\x00", " 80413579", "80413579 ",
                                 "٨٠٤١٣٥٧٩", "%ED%A0%80"])
def test_a_pin_that_only_looks_right_opens_nothing(app, pin):
    """The keypad sends ASCII digits; a PIN in other digits, with a NUL or spaces, is a
    wrong PIN (403 on the keypad, counted by the lockout), never a 500 or a way in."""
    client = app.test_client()
    r = post_form(client, "/staff/login", {"pin": pin, "next": "/officer"}, page="/staff/login")
    assert r.status_code == 403
    assert client.get("/officer").status_code == 302  # still the keypad
