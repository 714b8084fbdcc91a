"""Roles on every route: citizen bound to its own dossier, officer, technician.

With PINs configured (as on every real device), through the screens and the API alike.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from appliance.records import dossiers
from appliance.web import auth, create_app
from tests.web.forms import post_form
from tests.web.helpers import add_job, add_scanned_paper, public_id, row_id, submitted_dossier

UNKNOWN = "Zz9_-" * 4 + "xy"  # a well-formed public id that names no dossier

PIN = "2468"
TECH_PIN = "97531"
WEB = Path(auth.__file__).parent


@pytest.fixture
def app(config):
    return create_app(config, {"TESTING": True, "OFFICER_PIN": PIN})


def browser(app, address: str = "127.0.0.1"):
    """A client with a cookie jar from one address, as a kiosk or counter browser."""
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c


def program(app, address: str = "127.0.0.1"):
    """A client without a cookie jar: a script on the network."""
    c = app.test_client(use_cookies=False)
    c.environ_base["REMOTE_ADDR"] = address
    return c


def api_post(client, path: str, json=None, **kwargs):
    """A browser calling the API: its session's CSRF token in X-CSRFToken."""
    token = client.get("/api/session").get_json()["csrf_token"]
    headers = {"X-CSRFToken": token, **kwargs.pop("headers", {})}
    return client.post(path, json=json, headers=headers, **kwargs)


def citizen_with_dossier(app, conn, config, address: str = "127.0.0.1", seed: int = 0):
    c = browser(app, address)
    r = api_post(c, "/api/dossiers", {"procedure": "tk1-ts"})
    assert r.status_code == 201
    dossier_id = row_id(conn, r.get_json()["id"])  # the tables know it by its row id
    add_scanned_paper(conn, config, dossier_id, pages=1, seed=seed)
    return c, dossier_id


def test_citizen_reaches_only_its_own_dossier(app, conn, config):
    alice, mine = citizen_with_dossier(app, conn, config)
    bob, theirs = citizen_with_dossier(app, conn, config, "127.0.0.2", seed=1)
    my_id, their_id = public_id(conn, mine), public_id(conn, theirs)
    job_of_bob = add_job(conn, theirs, "running", {"step": "scanning"})
    my_page = dossiers.get(conn, mine).papers[0].pages[0].sha256
    their_page = dossiers.get(conn, theirs).papers[0].pages[0].sha256
    assert alice.get(f"/api/dossiers/{my_id}").status_code == 200
    assert alice.get(f"/api/pages/{my_page}/thumbnail").status_code == 200
    refused = [
        alice.get(f"/api/dossiers/{their_id}"),
        alice.get(f"/api/dossiers/{their_id}/jobs/latest"),
        alice.get(f"/api/jobs/{job_of_bob}"),
        alice.get(f"/api/pages/{their_page}/thumbnail"),
        alice.get(f"/api/pages/{my_page}/image"),  # full images: the officer's
        alice.get("/api/dossiers"),
        alice.get("/api/status"),
        api_post(alice, f"/api/dossiers/{their_id}/cancel"),
        api_post(alice, f"/api/dossiers/{their_id}/submit"),
        api_post(alice, f"/api/dossiers/{their_id}/scans", {"source": "adf"}),
        api_post(alice, f"/api/dossiers/{my_id}/sign", {"officer": "X"}),
        alice.get(f"/api/dossiers/{UNKNOWN}"),  # a missing one looks the same
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert {r.get_json()["error"] for r in refused} <= {"error.forbidden", "error.staff_only"}
    assert dossiers.get(conn, theirs).status == "open"
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1
    # the screens: no dossier by id for a citizen, the officer screens want the PIN
    assert alice.get(f"/officer/dossiers/{their_id}").status_code == 302
    assert "/staff/login" in alice.get(f"/officer/dossiers/{their_id}").headers["Location"]


def test_a_submitted_dossier_is_out_of_the_citizens_reach(app, conn, config):
    """Its owner holds a receipt: neither they nor anyone else can cancel it any more."""
    alice, mine = citizen_with_dossier(app, conn, config)
    my_id = public_id(conn, mine)
    assert api_post(alice, f"/api/dossiers/{my_id}/submit").status_code == 200
    r = api_post(alice, f"/api/dossiers/{my_id}/cancel")
    assert r.status_code == 403
    assert program(app).post(f"/api/dossiers/{my_id}/cancel").status_code == 403
    assert dossiers.get(conn, mine).status == "submitted"
    officer = program(app)
    r = officer.post(f"/api/dossiers/{my_id}/cancel", headers={"X-Officer-PIN": PIN})
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"


def test_officer_pin_header_and_session(app, conn, config):
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    p = program(app)
    assert p.get("/api/dossiers").status_code == 403
    assert p.get("/api/dossiers", headers={"X-Officer-PIN": "0000"}).status_code == 403
    assert p.get("/api/dossiers", headers={"X-Officer-PIN": PIN}).status_code == 200
    b = browser(app)
    post_form(b, "/staff/login", {"pin": PIN, "next": "/officer"}, page="/staff/login")
    assert b.get(f"/api/dossiers/{pid}").status_code == 200
    assert b.get(f"/officer/dossiers/{pid}").status_code == 200
    # the session lapses after its idle time
    with b.session_transaction() as s:
        s[auth.ROLE_UNTIL] = time.time() - 1
    r = b.get(f"/officer/dossiers/{pid}")
    assert r.status_code == 302 and "/staff/login" in r.headers["Location"]
    assert b.get(f"/api/dossiers/{pid}").status_code == 403


def test_pin_lockout_per_client_refuses_at_once_with_retry_after(app, conn, config):
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    guesser = program(app, "10.0.0.66")
    started = time.monotonic()
    codes = [guesser.get("/api/dossiers", headers={"X-Officer-PIN": f"{n:04d}"}).status_code
             for n in range(12)]
    elapsed = time.monotonic() - started
    assert codes[:5] == [403] * 5 and set(codes[5:]) == {429}  # 5 tries, then locked
    assert elapsed < 2  # refused, never slept on
    r = guesser.post(f"/api/dossiers/{pid}/sign", json={"officer": "X"},
                     headers={"X-Officer-PIN": PIN})  # even the right PIN waits
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.get_json()["error"] == "error.locked"
    assert dossiers.get(conn, dossier_id).status == "submitted"
    # the keypad shares the lockout of its client
    kiosk = browser(app, "10.0.0.66")
    r = post_form(kiosk, "/staff/login", {"pin": PIN, "next": "/officer"}, page="/staff/login")
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert "Đã nhập sai mã PIN quá nhiều lần" in r.get_data(as_text=True)
    # another client is not locked out by this one
    counter = program(app, "10.0.0.7")
    assert counter.get("/api/dossiers", headers={"X-Officer-PIN": PIN}).status_code == 200


def test_pin_lockout_in_total_stops_a_guesser_with_many_addresses(app):
    for n in range(25):
        program(app, f"10.1.0.{n}").get("/api/dossiers", headers={"X-Officer-PIN": "0000"})
    r = program(app, "10.2.0.1").get("/api/dossiers", headers={"X-Officer-PIN": PIN})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_login_form_lockout(app):
    b = browser(app, "10.0.0.9")
    statuses = [post_form(b, "/staff/login", {"pin": "1111", "next": "/officer"},
                          page="/staff/login").status_code for _ in range(7)]
    assert statuses == [403] * 5 + [429] * 2


def test_no_thread_ever_sleeps_on_a_request():
    for path in WEB.glob("*.py"):
        assert "sleep(" not in path.read_text("utf-8"), path.name


def test_technician_has_its_own_pin(config, conn):
    app = create_app(config, {"TESTING": True, "OFFICER_PIN": PIN, "TECHNICIAN_PIN": TECH_PIN})
    officer = browser(app)
    post_form(officer, "/staff/login", {"pin": PIN, "next": "/officer"}, page="/staff/login")
    assert officer.get("/officer").status_code == 200
    assert officer.get("/technician").status_code == 302  # not the technician's role
    tech = browser(app, "127.0.0.3")
    r = post_form(tech, "/staff/login", {"pin": PIN, "next": "/technician"},
                  page="/staff/login?next=/technician")
    assert r.status_code == 403  # the officer PIN does not open the technician screens
    page = tech.get("/staff/login?next=/technician").get_data(as_text=True)
    assert "Nhập mã PIN kỹ thuật" in page
    r = post_form(tech, "/staff/login", {"pin": TECH_PIN, "next": "/technician"},
                  page="/staff/login?next=/technician")
    assert r.status_code == 302 and r.headers["Location"] == "/technician"
    assert "Tình trạng thiết bị" in tech.get("/technician").get_data(as_text=True)
    assert tech.get("/officer").status_code == 302  # and not the officer's
    assert tech.get("/api/dossiers").status_code == 403
    p = program(app, "127.0.0.4")
    assert p.get("/api/status").status_code == 403
    assert p.get("/api/status", headers={"X-Technician-PIN": TECH_PIN}).status_code == 200
    assert p.get("/api/status", headers={"X-Officer-PIN": PIN}).status_code == 200
    assert p.get("/api/dossiers", headers={"X-Technician-PIN": TECH_PIN}).status_code == 403


# --- the OpenAPI document states every operation's security; anonymous calls fail ---

def _fill(path: str, values: dict[str, object]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)


def test_openapi_states_security_and_every_protected_operation_refuses_anonymous(
        app, conn, config):
    dossier_id = submitted_dossier(conn, config)
    job_id = add_job(conn, dossier_id, "done", {"step": "done"})
    paper = dossiers.get(conn, dossier_id).papers[0]
    before = dossiers.get(conn, dossier_id)
    spec = program(app).get("/api/openapi.json").get_json()
    public, protected = set(), set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "security" in op, (method, path)  # every operation says who may call it
            (protected if op["security"] else public).add((method, path))
            for alternative in op["security"]:
                assert set(alternative) <= set(spec["components"]["securitySchemes"])
    assert public == {("get", "/api/health"), ("get", "/api/procedures"),
                      ("get", "/api/session"), ("get", "/api/openapi.json"),
                      ("post", "/api/dossiers")}
    values = {"dossier_id": public_id(conn, dossier_id), "job_id": job_id,
              "paper_id": paper.id, "name": "full_name"}
    for method, path in sorted(protected):
        sha = paper.pdf_sha256 if "papers" in path else paper.pages[0].sha256
        url = _fill(path, {**values, "sha": sha})
        for client in (program(app), browser(app)):  # no cookie, and a fresh session
            if method == "get":
                r = client.get(url)
            else:
                r = api_post(client, url, {"source": "adf", "officer": "X",
                                           "value": "MALLORY"})
            assert r.status_code in (401, 403), (method, path, r.status_code)
            assert r.mimetype == "application/problem+json"
    assert dossiers.get(conn, dossier_id) == before  # papers and their fields too
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1


def test_without_pins_staff_functions_stay_open_as_shipped(conn, config):
    """The demo default: no PIN, no lock (and a warning when listening beyond loopback)."""
    client = create_app(config, {"TESTING": True}).test_client()
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    assert client.get(f"/api/dossiers/{pid}").status_code == 200
    assert client.get("/technician").status_code == 200
