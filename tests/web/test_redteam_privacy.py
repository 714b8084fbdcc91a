"""Red team: "nothing shown to the wrong person, ever", tried on every route there is.

Why this file exists: the role tests (test_web_roles.py) walk the API operations the
OpenAPI document lists, one persona at a time, and the header test
(test_web_security.py) looks at a dozen chosen addresses. An attacker does not read
the OpenAPI document: they try every address the server answers, with whatever
session they can get (another citizen's kiosk, a receipt, a technician's panel, a
wrong PIN, a lapsed or logged-out staff session), and they look at redirects, error
pages and OPTIONS answers too. So here the Flask url_map itself is enumerated (a route
added tomorrow is swept without editing this file), each route is called by each such
persona with the *victim's* ids, and every answer is searched for the victim's data
(name, CCCD number, dossier code, page image, PDF). A session cookie copied before
the citizen leaves (or the officer logs out) is replayed too: a signed cookie is a
bearer token, and the screens promise that leaving ends what it can open.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.records import dossiers
from appliance.records.dossiers import Dossier
from appliance.store.files import FileStore
from appliance.system.config import Config
from appliance.web import auth, create_app
from tests.web.forms import AGREE, post_form
from tests.web.helpers import add_job, add_scanned_paper, public_id
from tests.web.test_web_roles import api_post, citizen_with_dossier

PIN = "2468"
TECH_PIN = "97531"
# The victim's personal data, unlike anything else in these tests' dossiers.
VICTIM_NAME = "PHẠM THỊ VICTIM"
VICTIM_CCCD = "079188123456"
VICTIM_FIELDS = {"values": {"full_name": VICTIM_NAME, "cccd": VICTIM_CCCD},
                 "problems": [], "uncertain": []}
# Answers anyone may get (their content is checked for leaks all the same).
PUBLIC_ENDPOINTS = frozenset({
    "index", "static", "api.health", "api.procedures", "api.list_procedures",
    "api.current_session", "api.openapi", "api.create_dossier", "staff.login",
    "staff.login_post", "staff.logout",
})
ROUTE_PATTERN = re.compile(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>")


@pytest.fixture
def app(config: Config) -> Flask:
    # Lockouts as high as the sweep needs: a wrong PIN must be refused for being
    # wrong (403), not merely because too many were tried (429).
    return create_app(config, {"TESTING": True, "OFFICER_PIN": PIN, "TECHNICIAN_PIN": TECH_PIN,
                               "PIN_FREE_PER_CLIENT": 10_000, "PIN_FREE_TOTAL": 10_000})


@dataclass(frozen=True)
class Victim:
    row: int
    dossier: Dossier
    job: int
    page_bytes: tuple[bytes, ...]  # the page image, its thumbnail and the PDF, as served

    @property
    def secrets(self) -> tuple[str, ...]:
        return (VICTIM_NAME, VICTIM_CCCD, self.dossier.code)


def victim_dossier(conn: Any, config: Config) -> Victim:
    """A citizen's submitted dossier with a name and CCCD of its own, and its last job."""
    row = dossiers.create(conn, config, "tk1-ts")
    add_scanned_paper(conn, config, row, pages=1, fields=VICTIM_FIELDS, seed=7)
    job = add_job(conn, row, "done", {"step": "done"})
    dossiers.submit(conn, row)
    d = dossiers.get(conn, row)
    files = FileStore(config.paths.files)
    sha, pdf = d.papers[0].pages[0].sha256, d.papers[0].pdf_sha256
    assert pdf is not None
    served = (files.read(sha, ".png"), files.read_derived(sha, ".thumb.jpg"),
              files.read(pdf, ".pdf"))
    return Victim(row, d, job, served)


def route_values(v: Victim) -> dict[str, Any]:
    paper = v.dossier.papers[0]
    return {"dossier_id": v.dossier.public_id, "job_id": v.job, "paper_id": paper.id,
            "name": "full_name", "sha": paper.pages[0].sha256, "page_id": paper.pages[0].id,
            "filename": "app.css"}


def routes(app: Flask, v: Victim) -> Iterator[tuple[str, str, str]]:
    """(endpoint, method, URL) for every rule of the url_map, aimed at the victim."""
    values = route_values(v)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        url = ROUTE_PATTERN.sub(lambda m: str(values[m.group(1)]), rule.rule)
        if "/papers/<sha>/pdf" in rule.rule:
            url = url.replace(str(values["sha"]), str(v.dossier.papers[0].pdf_sha256))
        for method in sorted(rule.methods or ()):
            yield rule.endpoint, method, url


# --- the personas --------------------------------------------------------------------

def _browser(app: Flask) -> FlaskClient:
    c = app.test_client()
    c.get("/kiosk")
    return c


def _program(app: Flask, **headers: str) -> FlaskClient:
    c = app.test_client(use_cookies=False)
    c.environ_base.update({f"HTTP_{k.upper().replace('-', '_')}": h for k, h in headers.items()})
    return c


def _another_citizen(app: Flask, conn: Any, config: Config) -> FlaskClient:
    c, _ = citizen_with_dossier(app, conn, config, "127.0.0.5", seed=3)
    return c


def _receipt_holder(app: Flask, conn: Any, config: Config) -> FlaskClient:
    c, row = citizen_with_dossier(app, conn, config, "127.0.0.6", seed=4)
    assert api_post(c, f"/api/dossiers/{public_id(conn, row)}/submit").status_code == 200
    return c


def _staff(app: Flask, pin: str, target: str) -> FlaskClient:
    c = app.test_client()
    r = post_form(c, "/staff/login", {"pin": pin, "next": target}, page="/staff/login")
    assert r.status_code == 302 and "/staff/login" not in r.headers["Location"]
    return c


def _lapsed_officer(app: Flask) -> FlaskClient:
    c = _staff(app, PIN, "/officer")
    with c.session_transaction() as s:
        s[auth.ROLE_UNTIL] = time.time() - 1
    return c


def _logged_out_officer(app: Flask) -> FlaskClient:
    c = _staff(app, PIN, "/officer")
    assert post_form(c, "/staff/logout", {"next": "/officer"}, page="/officer").status_code == 302
    return c


Persona = Callable[[Flask, Any, Config], FlaskClient]
PERSONAS: dict[str, Persona] = {
    "a program with no cookie": lambda app, conn, cfg: _program(app),
    "a fresh kiosk browser": lambda app, conn, cfg: _browser(app),
    "another citizen with an open dossier": _another_citizen,
    "another citizen holding a receipt": _receipt_holder,
    "wrong officer and technician PINs": lambda app, conn, cfg: _program(
        app, **{auth.OFFICER_HEADER: "0000", auth.TECHNICIAN_HEADER: "0000"}),
    "the technician's session": lambda app, conn, cfg: _staff(app, TECH_PIN, "/technician"),
    "a lapsed officer session": lambda app, conn, cfg: _lapsed_officer(app),
    "an officer after logging out": lambda app, conn, cfg: _logged_out_officer(app),
}
# What a persona may legitimately open (still checked for the victim's data).
ALLOWED: dict[str, tuple[str, ...]] = {
    "the technician's session": ("technician.", "technician_api.", "api.device_status"),
}


def call(client: FlaskClient, method: str, url: str) -> TestResponse:
    """The request as the persona's browser would send it: with its session's CSRF token
    (header and field), so that only the authorization can refuse it."""
    token = client.get("/api/session").get_json()["csrf_token"]
    if method in ("GET", "HEAD", "OPTIONS"):
        return client.open(url, method=method)
    body = {"csrf_token": token, "source": "adf", "officer": "Mallory", "value": "MALLORY",
            "checked": "yes", "confirm": "yes", "reason": "x", "page_id": "1",
            "paper_type": "khac", "pin": "0000", "procedure": "khac"}
    return client.open(url, method=method, data=body, headers={"X-CSRFToken": token})


def leaks(r: TestResponse, v: Victim) -> list[str]:
    data = r.get_data()
    text = data.decode("utf-8", "replace").upper()
    found = [s for s in v.secrets if s.upper() in text]
    found += ["a page image, thumbnail or PDF" for b in v.page_bytes if b and b[:256] in data]
    return found


def victim_state(conn: Any, v: Victim) -> tuple[Any, ...]:
    return (dossiers.get(conn, v.row),
            tuple(tuple(r) for r in conn.execute(
                "SELECT id, state, error_key FROM jobs WHERE dossier_id=?", (v.row,))),
            conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("persona", list(PERSONAS))
def test_no_route_shows_the_victims_dossier_to_the_wrong_person(app, conn, config, persona):
    v = victim_dossier(conn, config)
    client = PERSONAS[persona](app, conn, config)
    before = victim_state(conn, v)
    problems = []
    swept = 0
    for endpoint, method, url in routes(app, v):
        r = call(client, method, url)
        swept += 1
        found = leaks(r, v)
        if found:
            problems.append(f"{method} {url}: {r.status_code} shows {found}")
        public = endpoint in PUBLIC_ENDPOINTS or endpoint.startswith("kiosk.") or any(
            endpoint.startswith(p) for p in ALLOWED.get(persona, ()))
        if method != "OPTIONS" and not public and 200 <= r.status_code < 300:
            problems.append(f"{method} {url}: {r.status_code} for {persona}")
        if r.status_code >= 500:
            problems.append(f"{method} {url}: {r.status_code}")
    assert swept > 100  # every rule, every method: the whole map was walked
    assert problems == []
    assert victim_state(conn, v) == before  # nothing done to the victim's dossier either


def test_the_officer_does_see_it_so_the_sweep_can_see_a_leak(app, conn, config):
    """The detector itself: the same sweep as the officer finds the victim's data."""
    v = victim_dossier(conn, config)
    officer = _staff(app, PIN, "/officer")
    shown = {url for endpoint, method, url in routes(app, v)
             if method == "GET" and leaks(call(officer, method, url), v)}
    pid, paper = v.dossier.public_id, v.dossier.papers[0]
    assert {f"/officer/dossiers/{pid}", f"/api/dossiers/{pid}",
            f"/api/pages/{paper.pages[0].sha256}/image",
            f"/api/pages/{paper.pages[0].sha256}/thumbnail",
            f"/api/papers/{paper.pdf_sha256}/pdf"} <= shown


# --- headers on every answer, errors and redirects included ---------------------------

def test_every_answer_refuses_framing_sniffing_sharing_and_caching(app, conn, config):
    """The header test checks a dozen 200s; a redirect to the keypad, a 403 problem, a
    404 or 405 page and an OPTIONS answer must carry the same guards, and no answer may
    ever open itself to another origin (CORS) or be stored for the back button."""
    v = victim_dossier(conn, config)
    clients = {"anonymous": _browser(app), "officer": _staff(app, PIN, "/officer")}
    extra = [("none", "GET", "/nowhere"), ("none", "DELETE", "/kiosk"),
             ("none", "PUT", f"/api/dossiers/{v.dossier.public_id}"),
             ("none", "GET", "/api/nowhere")]
    problems = []
    for who, client in clients.items():
        for _endpoint, method, url in [*routes(app, v), *extra]:
            r = client.open(url, method=method, headers={"Origin": "http://127.0.0.1:9"}
                            if method == "OPTIONS" else {})
            h = r.headers
            where = f"{who} {method} {url} {r.status_code}"
            if "Access-Control-Allow-Origin" in h or "Access-Control-Allow-Credentials" in h:
                problems.append(f"{where}: CORS {dict(h)}")
            if h.get("X-Frame-Options") != "DENY" or "frame-ancestors 'none'" not in h.get(
                    "Content-Security-Policy", ""):
                problems.append(f"{where}: frameable")
            if h.get("X-Content-Type-Options") != "nosniff":
                problems.append(f"{where}: sniffable")
            if h.get("Cross-Origin-Resource-Policy") != "same-origin":
                problems.append(f"{where}: embeddable cross-origin")
            if not url.startswith("/static/") and h.get("Cache-Control") != "no-store":
                problems.append(f"{where}: Cache-Control {h.get('Cache-Control')}")
            if h.get("Content-Type", "").startswith(("text/javascript", "application/javascript")
                                                     ) and not url.startswith("/static/"):
                problems.append(f"{where}: answers as a script")
    assert problems == []


def test_no_method_override_turns_a_link_into_an_action(app, conn, config):
    """An <img> or a link can only GET: no `_method=` or override header may make the
    officer's browser sign, return, erase or cancel through one."""
    v = victim_dossier(conn, config)
    officer = _staff(app, PIN, "/officer")
    pid = v.dossier.public_id
    before = victim_state(conn, v)
    override = {"X-HTTP-Method-Override": "POST", "X-Method-Override": "POST",
                "X-HTTP-Method": "POST"}
    for url in (f"/officer/dossiers/{pid}/sign", f"/officer/dossiers/{pid}/return",
                f"/officer/dossiers/{pid}/erase", f"/api/dossiers/{pid}/sign",
                f"/api/dossiers/{pid}/cancel"):
        r = officer.get(url, query_string={"_method": "POST", "checked": "yes",
                                           "confirm": "yes", "officer": "Mallory",
                                           "reason": "x"}, headers=override)
        assert r.status_code == 405, (url, r.status_code)
    assert victim_state(conn, v) == before


# --- what the wrong person types comes back as text, never as markup or data ----------

MARKUP = '"><svg/onload=alert(1)><script>alert(1)</script>'


@pytest.mark.parametrize("path", [
    "/kiosk/lookup?code={m}", "/kiosk?lang={m}", "/kiosk/consent?procedure={m}",
    "/staff/login?next=/officer{m}", "/nowhere/{m}", "/api/dossiers/{m}",
    "/kiosk/contrast?back=/kiosk{m}", "/officer?q={m}",
])
def test_typed_markup_is_never_echoed_as_markup(app, path):
    officer = _staff(app, PIN, "/officer")
    r = officer.get(path.format(m=MARKUP), follow_redirects=True)
    text = r.get_data(as_text=True)
    assert r.status_code < 500
    assert "<svg/onload" not in text and "<script>alert" not in text, text[:2000]


# --- leaving ends what a copied cookie can open ---------------------------------------

def _kiosk_citizen(app: Flask, conn: Any, config: Config) -> tuple[FlaskClient, int]:
    c = app.test_client()
    assert post_form(c, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE}).status_code == 302
    with c.session_transaction() as s:
        row = s[auth.DOSSIER]
    add_scanned_paper(conn, config, row, pages=1, fields=VICTIM_FIELDS, seed=9)
    return c, row


def _replay(app: Flask, cookie: str) -> FlaskClient:
    c = app.test_client()
    c.set_cookie("session", cookie)
    return c


def _reads(client: FlaskClient, d: Dossier) -> dict[str, int]:
    sha = d.papers[0].pages[0].sha256
    return {"dossier": client.get(f"/api/dossiers/{d.public_id}").status_code,
            "thumbnail": client.get(f"/api/pages/{sha}/thumbnail").status_code}


def test_a_cookie_copied_before_the_citizen_left_reads_nothing_after(app, conn, config):
    citizen, row = _kiosk_citizen(app, conn, config)
    copied = citizen.get_cookie("session")
    assert copied is not None
    assert set(_reads(citizen, dossiers.get(conn, row)).values()) == {200}
    assert post_form(citizen, "/kiosk/reset", page="/kiosk/dossier").status_code == 302
    d = dossiers.get(conn, row)
    assert d.status == "cancelled"
    assert _reads(_replay(app, copied.value), d) == {"dossier": 403, "thumbnail": 403}


def test_a_cookie_copied_before_submitting_reads_nothing_after(app, conn, config):
    citizen, row = _kiosk_citizen(app, conn, config)
    copied = citizen.get_cookie("session")
    assert copied is not None
    r = post_form(citizen, "/kiosk/dossier/submit", page="/kiosk/dossier")
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk/receipt")
    d = dossiers.get(conn, row)
    assert d.status == "submitted"
    assert _reads(citizen, d) == {"dossier": 403, "thumbnail": 403}  # the live session: held
    assert _reads(_replay(app, copied.value), d) == {"dossier": 403, "thumbnail": 403}


def test_an_officer_cookie_copied_before_logout_opens_nothing_after(app, conn, config):
    v = victim_dossier(conn, config)
    officer = _staff(app, PIN, "/officer")
    copied = officer.get_cookie("session")
    assert copied is not None
    assert officer.get(f"/officer/dossiers/{v.dossier.public_id}").status_code == 200
    assert post_form(officer, "/staff/logout", {"next": "/officer"},
                     page="/officer").status_code == 302
    assert officer.get("/officer").status_code == 302  # the browser itself: logged out
    replay = _replay(app, copied.value)
    r = replay.get(f"/api/dossiers/{v.dossier.public_id}")
    assert r.status_code == 403 and not leaks(r, v)
    assert replay.get("/officer").status_code == 302


# --- redirects stay on the device -------------------------------------------------------

OFFSITE = ["//evil.example/x", "/\\evil.example/x", "\\\\evil.example",
           "/\t/evil.example",
           "/%09/evil.example", "/%2F/evil.example", "https://evil.example",
           "/kiosk@evil.example", "/kiosk//evil.example", "/kiosk/..//evil.example",
           "javascript:alert(1)", "/ /evil.example"]


def _redirects(config: Config, target: str) -> list[TestResponse]:
    """`next=` on the keypad (GET on an install without PIN, POST with one), the logout
    form and the contrast switch's `back=`, each given `target`."""
    locked = create_app(config, {"TESTING": True, "OFFICER_PIN": PIN})
    open_ = create_app(config, {"TESTING": True})
    return [
        open_.test_client().get("/staff/login", query_string={"next": target}),
        open_.test_client().get("/kiosk/contrast", query_string={"back": target, "on": "1"}),
        post_form(locked.test_client(), "/staff/login", {"pin": PIN, "next": target},
                  page="/staff/login"),
        post_form(_staff(locked, PIN, "/officer"), "/staff/logout", {"next": target},
                  page="/officer"),
    ]


@pytest.mark.parametrize("target", OFFSITE)
def test_no_redirect_leaves_the_device(config, target):
    """Each Location resolves on this origin, read the way a browser reads it."""
    own = "http://localhost"
    for r in _redirects(config, target):
        assert r.status_code in (302, 303), r.status_code
        location = r.headers["Location"]
        # WHATWG URL parsing strips tabs and newlines and reads a backslash as a slash
        # in http(s) URLs.
        as_browser = re.sub(r"[\t\r\n]", "", location).replace("\\", "/")
        resolved = urlsplit(urljoin(own + "/staff/login", as_browser))
        assert (resolved.scheme, resolved.netloc) == ("http", "localhost"), location


@pytest.mark.parametrize("target", ["/officer\r\nSet-Cookie: x=1", "/\n/evil.example"])
def test_a_newline_in_next_is_refused_not_a_crash(config, target):
    for r in _redirects(config, target):
        assert r.status_code < 500
        assert "x=1" not in str(r.headers.getlist("Set-Cookie"))
