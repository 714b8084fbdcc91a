"""CSRF tokens, origin checks, cookies, headers and bad input: each refused, nothing changed.

Every refused request here is followed by a look at the database: a refusal that
changed something would be worse than no refusal at all.
"""

from __future__ import annotations

import re

import pytest
from flask.sessions import SecureCookieSessionInterface

from appliance.records import dossiers
from appliance.web import create_app
from tests.web.forms import AGREE, csrf_token, post_form
from tests.web.helpers import add_scanned_paper, public_id, submitted_dossier

PIN = "2468"
EVIL = "http://127.0.0.1:9"  # another port of the same host is another origin


def count(conn, table: str) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def open_dossier(client) -> int:
    r = post_form(client, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE})
    assert r.status_code == 302
    with client.session_transaction() as s:
        return s["dossier_id"]


# --- CSRF ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/kiosk/dossiers", "/kiosk/reset", "/staff/login",
                                  "/staff/logout"])
def test_forms_without_a_token_change_nothing(client, conn, path):
    r = client.post(path, data={"procedure": "tk1-ts", "pin": "1"})
    assert r.status_code in (302, 400)
    if r.status_code == 302:  # back to a screen, saying the page expired
        assert "Trang đã hết hạn" in client.get(r.headers["Location"]).get_data(as_text=True)
    assert count(conn, "dossiers") == 0


def test_kiosk_actions_need_their_token(client, conn, config):
    dossier_id = open_dossier(client)
    add_scanned_paper(conn, config, dossier_id, pages=1)
    for path in ("/kiosk/dossier/scan", "/kiosk/dossier/submit", "/kiosk/dossier/cancel"):
        r = client.post(path, data={"source": "adf", "csrf_token": "forged"})
        assert r.status_code == 302
    assert dossiers.get(conn, dossier_id).status == "open"
    assert count(conn, "jobs") == 0


def test_officer_sign_needs_its_token(client, conn, config):
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    r = client.post(f"/officer/dossiers/{pid}/sign", data={"officer": "Lê Văn C"})
    assert r.status_code == 302
    assert dossiers.get(conn, dossier_id).status == "submitted"
    assert count(conn, "records") == 0


def test_replayed_tokens_are_refused(app, conn, config):
    """A token is bound to the session that got it: not another's, not after a reset."""
    attacker, victim = app.test_client(), app.test_client()
    stolen = csrf_token(attacker, "/kiosk")
    victim.get("/kiosk")  # the victim's own session
    r = victim.post("/kiosk/dossiers", data={"procedure": "khac", "csrf_token": stolen, **AGREE})
    assert r.status_code == 302 and count(conn, "dossiers") == 0
    # the victim's own token, replayed after its session was reset, is dead too
    old = csrf_token(victim, "/kiosk")
    assert victim.post("/kiosk/reset", data={"csrf_token": old}).status_code == 302
    r = victim.post("/kiosk/dossiers", data={"procedure": "khac", "csrf_token": old, **AGREE})
    assert count(conn, "dossiers") == 0
    assert "Trang đã hết hạn" in victim.get(r.headers["Location"]).get_data(as_text=True)
    # and a token from a time-limited signature that does not verify
    r = victim.post("/kiosk/dossiers", data={"consent": "accept", "procedure": "khac",
                                              "csrf_token": old[:-4] + "AAAA"})
    assert count(conn, "dossiers") == 0


def test_api_calls_riding_on_a_session_cookie_need_the_token(app, conn, config):
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    b = app.test_client()
    b.get("/kiosk")  # a browser that has the appliance open has a session cookie
    r = b.post(f"/api/dossiers/{pid}/sign", json={"officer": "X"})
    assert r.status_code == 400 and r.get_json()["error"] == "error.csrf"
    assert r.mimetype == "application/problem+json"
    r = b.post("/api/dossiers", json={"procedure": "khac"})
    assert r.status_code == 400 and count(conn, "dossiers") == 1
    token = b.get("/api/session").get_json()["csrf_token"]
    r = b.post("/api/dossiers", json={"procedure": "khac"}, headers={"X-CSRFToken": token})
    assert r.status_code == 201


# --- origin -------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"Origin": EVIL},
    {"Origin": "null"},
    {"Origin": "http://localhost:8080"},  # same machine, another port: another origin
    {"Referer": f"{EVIL}/attack.html"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
def test_cross_origin_state_changes_are_refused(client, conn, config, headers):
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    token = csrf_token(client, f"/officer/dossiers/{pid}")
    before = dossiers.get(conn, dossier_id)
    [paper] = before.papers
    calls = [
        client.post(f"/officer/dossiers/{pid}/sign",
                    data={"officer": "X", "csrf_token": token}, headers=headers),
        client.post("/kiosk/dossiers", data={"procedure": "khac", "csrf_token": token, **AGREE},
                    headers=headers),
        client.post(f"/api/dossiers/{pid}/cancel", headers=headers),
        client.post(f"/api/dossiers/{pid}/sign", json={"officer": "X"},
                    headers={**headers, "X-CSRFToken": token}),
        client.post("/api/dossiers", json={"procedure": "khac"}, headers=headers),
        client.post(f"/api/dossiers/{pid}/papers/{paper.id}/fields/full_name",
                    json={"value": "MALLORY"}, headers={**headers, "X-CSRFToken": token}),
    ]
    assert [r.status_code for r in calls] == [403] * len(calls)
    assert dossiers.get(conn, dossier_id) == before  # nor a paper's fields
    assert count(conn, "dossiers") == 1 and count(conn, "records") == 0


def test_own_origin_is_accepted(client, conn):
    r = post_form(client, "/kiosk/dossiers", {"procedure": "khac", **AGREE},
                  headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 302 and count(conn, "dossiers") == 1


# --- headers and cookies --------------------------------------------------------------

def test_personal_responses_are_never_cached_and_pages_have_a_strict_csp(client, conn, config):
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    d = dossiers.get(conn, dossier_id)
    sha, pdf = d.papers[0].pages[0].sha256, d.papers[0].pdf_sha256
    for path in ("/kiosk", "/officer", f"/officer/dossiers/{pid}",
                 f"/officer/dossiers/{pid}/pages/{sha}", f"/api/dossiers/{pid}",
                 f"/api/pages/{sha}/thumbnail", f"/api/pages/{sha}/image",
                 f"/api/papers/{pdf}/pdf", "/api/status", "/technician", "/api/nowhere"):
        r = client.get(path)
        assert r.headers["Cache-Control"] == "no-store", path
        assert "max-age" not in r.headers["Cache-Control"] and "ETag" not in r.headers
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert not re.search(r"https?:|\*|'unsafe-inline'|'unsafe-eval'", csp), csp
        assert r.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    page = client.get(f"/officer/dossiers/{pid}").get_data(as_text=True)
    assert "<script>" not in page and " style=" not in page and "onclick" not in page


def test_cookies_are_strict_and_httponly(client, conn, config):
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    cookies = [client.get("/kiosk?lang=en").headers.getlist("Set-Cookie"),
               post_form(client, f"/officer/dossiers/{pid}/sign",
                         {"officer": "Nguyễn Văn A", "checked": "yes"},
                         page=f"/officer/dossiers/{pid}"
                         ).headers.getlist("Set-Cookie")]
    flat = [c for group in cookies for c in group]
    names = {c.split("=", 1)[0] for c in flat}
    assert {"session", "lang", "officer_name"} <= names
    for cookie in flat:
        assert "SameSite=Strict" in cookie and "HttpOnly" in cookie, cookie


def test_cookies_are_secure_over_tls(client):
    r = client.get("/kiosk?lang=en", base_url="https://localhost")
    cookies = r.headers.getlist("Set-Cookie")
    assert {c.split("=", 1)[0] for c in cookies} == {"session", "lang"}
    assert all("Secure" in c for c in cookies)
    assert not any("Secure" in c for c in client.get("/kiosk?lang=vi").headers.getlist(
        "Set-Cookie"))


def test_no_personal_data_in_urls(client, conn, config):
    """Links carry ids and content hashes, never a name, an ID number or a phone."""
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    page = client.get(f"/officer/dossiers/{pid}").get_data(as_text=True)
    urls = re.findall(r'(?:href|src|action)="([^"]+)"', page)
    assert urls
    for url in urls:
        assert "001203004567" not in url and "NGUY" not in url.upper().replace("%", "")


# --- forged sessions ---------------------------------------------------------------------

def forged_cookie(app, payload: dict) -> str:
    other = create_app(app.config["APPLIANCE"], {"TESTING": True})
    other.secret_key = b"not the device's key"
    return SecureCookieSessionInterface().get_signing_serializer(other).dumps(payload)


def test_forged_session_cookies_are_anonymous(config, conn):
    app = create_app(config, {"TESTING": True, "OFFICER_PIN": PIN})
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    c = app.test_client()
    for payload in ({"role": "officer", "role_until": 9e12}, {"dossier_id": dossier_id}):
        c.set_cookie("session", forged_cookie(app, payload))
        assert c.get(f"/api/dossiers/{pid}").status_code == 403
        assert c.get("/officer").status_code == 302
    c.set_cookie("session", "garbage.!!.%%")
    assert c.get(f"/api/dossiers/{pid}").status_code == 403
    assert c.get("/kiosk").status_code == 200
    assert dossiers.get(conn, dossier_id).status == "submitted"


# --- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/dossiers/9223372036854775808", "/api/dossiers/99999999999999999999999",
    "/api/jobs/9223372036854775808", "/api/dossiers/9223372036854775808/jobs/latest",
    "/api/dossiers/-1", "/api/dossiers/0", "/officer/dossiers/1", "/officer/dossiers/-1",
    "/api/pages/..%2F..%2Fetc%2Fpasswd/image", "/api/pages/../../etc/passwd/thumbnail",
    "/api/papers/" + "A" * 64 + "/pdf",
])
def test_huge_negative_and_traversing_ids_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404, path


@pytest.mark.parametrize("path", [
    "/api/dossiers/9223372036854775808/cancel", "/api/dossiers/9223372036854775808/sign",
    "/api/dossiers/9223372036854775808/scans", "/api/dossiers/9223372036854775807/submit",
])
def test_huge_ids_on_actions_are_4xx(client, path):
    r = client.post(path, json={"source": "adf", "officer": "X"})
    assert 400 <= r.status_code < 500


def test_oversized_bodies_are_413_and_change_nothing(client, conn):
    big = "x" * (65 * 1024)
    r = client.post("/api/dossiers", data='{"procedure": "khac", "pad": "' + big + '"}',
                    content_type="application/json")
    assert r.status_code == 413 and r.get_json()["error"] == "error.too_large"
    token = csrf_token(client)
    r = client.post("/kiosk/dossiers", data={"consent": "accept", "procedure": "khac", "pad": big,
                                             "csrf_token": token})
    assert r.status_code in (302, 413)
    assert count(conn, "dossiers") == 0


def test_no_personal_data_in_logs(client, conn, config, caplog):
    """A whole citizen and officer flow, logged at DEBUG: no name, ID number or phone."""
    import logging

    caplog.set_level(logging.DEBUG)
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    client.get(f"/officer/dossiers/{pid}")
    client.get(f"/api/dossiers/{pid}")
    post_form(client, f"/officer/dossiers/{pid}/sign",
              {"officer": "Trần Thị Bình", "checked": "yes"},
              page=f"/officer/dossiers/{pid}")
    client.post(f"/officer/dossiers/{pid}/sign", data={"officer": "Trần Thị Bình"},
                headers={"Origin": EVIL})  # a refusal is logged, the name is not
    text = caplog.text.upper()
    for secret in ("NGUYỄN VĂN AN", "001203004567", "TRẦN THỊ BÌNH"):
        assert secret not in text
