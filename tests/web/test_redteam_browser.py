"""Red team in Debian's real Chromium: what a browser can be made to show or hand over.

Why this file exists: test_web_browser_attacks.py shows that a hostile page cannot
*change* anything through the victim's browser. Here the hostile page tries to *read*
instead (fetch with credentials, <img>, <iframe>, window.open, all against an officer's
live session), to log the kiosk's browser in (login CSRF), and to send the officer
off the device through the keypad's `next=`; and the shared screen itself is attacked:
the Back button after a citizen left the kiosk or an officer logged out, and markup a
citizen could get OCR to read onto the officer's review screen. Only a real browser
answers these (CORP, X-Frame-Options, bfcache, URL parsing of a Location header), so
the appliance runs under gunicorn as in production and the attacker is another port
of 127.0.0.1: the same site for cookies, another origin for everything else.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from appliance.records import dossiers
from appliance.store.db import connect
from tests.web.attack import form_page, hostile_site
from tests.web.helpers import add_scanned_paper, public_id
from tests.web.test_web_browser import CHROMIUM, Server, start_server, stop_server

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
    pytest.mark.timeout(90),
]
sync_api = pytest.importorskip("playwright.sync_api")

PIN = "2468"
NAME = "PHẠM THỊ VICTIM"
CCCD = "079188123456"
MARKUP = '"><img src=x onerror="window.__pwned=1"><svg onload="window.__pwned=2"></svg>'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("redteam"), idle_seconds=120, officer_pin=PIN)
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture
def db(server: Server) -> Iterator[sqlite3.Connection]:
    conn = connect(server.config.paths.database)
    yield conn
    conn.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN")
    ctx.set_default_timeout(10000)
    yield ctx
    ctx.close()


def victim(conn: sqlite3.Connection, server: Server, values: dict[str, str] | None = None,
           title: str = "Tờ khai TK1-TS") -> int:
    """A submitted dossier whose paper names the victim (or carries `values`)."""
    row = dossiers.create(conn, server.config, "tk1-ts")
    add_scanned_paper(conn, server.config, row, title=title, pages=1, fields={
        "values": values or {"full_name": NAME, "cccd": CCCD}, "problems": [],
        "uncertain": []})
    dossiers.submit(conn, row)
    return row


def officer_logs_in(page: Any, server: Server, target: str = "/officer") -> None:
    """At the counter: the keypad, the PIN, and the screen asked for."""
    page.goto(f"{server.url}{target}")
    page.wait_for_url("**/staff/login**")
    page.locator("#pin").fill(PIN)
    page.locator("#pin-submit").click()
    page.wait_for_load_state("load")


def shows(page: Any, *secrets: str) -> list[str]:
    text = page.content()
    return [s for s in secrets if s in text]


# --- the shared screen: Back after leaving --------------------------------------------

def test_back_after_the_citizen_leaves_shows_nothing_of_theirs(server, db, context):
    """The next person at the kiosk taps Back (or swipes): every page the citizen saw
    is fetched again (no-store, no bfcache), and with the session gone it shows nothing."""
    page = context.new_page()
    page.goto(f"{server.url}/kiosk")
    page.get_by_role("button", name=re.compile("Đăng ký tham gia")).click()
    page.locator("#accept").click()
    page.wait_for_url("**/kiosk/dossier")
    row = dossiers.list_ids(db, "open")[0]
    add_scanned_paper(db, server.config, row, pages=1, fields={
        "values": {"full_name": NAME, "cccd": CCCD}, "problems": [], "uncertain": []})
    code = dossiers.get(db, row).code
    page.reload()
    page.goto(f"{server.url}/kiosk/dossier/summary")
    assert shows(page, code) == [code]
    page.evaluate("document.getElementById('submit-form').submit()")
    page.wait_for_url("**/kiosk/receipt")
    sync_api.expect(page.locator("#receipt-code")).to_have_text(code)
    page.locator("#done").click()
    page.wait_for_url(re.compile(r"/kiosk$"))
    seen = []
    for _ in range(3):  # receipt, summary, dossier screen
        page.go_back()
        page.wait_for_load_state("load")
        seen.append((page.url, shows(page, code, NAME, CCCD)))
    assert all(not found for _, found in seen), seen
    # a second citizen who leaves by the idle reset, with a scan on screen
    page.goto(f"{server.url}/kiosk")
    page.get_by_role("button", name=re.compile("Đăng ký tham gia")).click()
    page.locator("#accept").click()
    page.wait_for_url("**/kiosk/dossier")
    second = dossiers.get(db, dossiers.list_ids(db, "open")[0]).code
    page.evaluate("document.getElementById('idle-reset-form').submit()")
    page.wait_for_url(re.compile(r"/kiosk$"))
    page.go_back()
    page.wait_for_load_state("load")
    assert shows(page, second) == [], page.url


def test_back_after_the_officer_logs_out_shows_no_citizen(server, db, context):
    row = victim(db, server)
    page = context.new_page()
    officer_logs_in(page, server, f"/officer/dossiers/{public_id(db, row)}")
    assert shows(page, NAME, CCCD) == [NAME, CCCD]  # the detector sees them
    page.locator("#logout").click()
    page.wait_for_load_state("load")
    assert not shows(page, NAME, CCCD)
    page.go_back()
    page.wait_for_load_state("load")
    assert not shows(page, NAME, CCCD), page.url
    assert "/staff/login" in page.url


# --- a hostile page reading through the officer's session -----------------------------

def read_page(targets: dict[str, str]) -> str:
    """Each way a page can try to read another origin, reported in document.title."""
    return ("<!doctype html><title>reading</title><body><script>"
            f"const targets = {json.dumps(targets)}; const out = {{}};"
            "const jobs = Object.entries(targets).map(([name, url]) => {"
            "  if (name.startsWith('fetch')) {"
            "    return fetch(url, {credentials: 'include'}).then(r => r.text())"
            "      .then(t => { out[name] = 'read ' + t.slice(0, 300); },"
            "            () => { out[name] = 'blocked'; }); }"
            "  if (name.startsWith('img')) {"
            "    return new Promise(done => { const i = new Image();"
            "      i.onload = () => { out[name] = 'loaded ' + i.naturalWidth; done(); };"
            "      i.onerror = () => { out[name] = 'blocked'; done(); }; i.src = url; }); }"
            "  if (name.startsWith('window')) {"
            "    const w = window.open(url, '_blank');"
            "    return new Promise(done => setTimeout(() => {"
            "      try { out[name] = 'read ' + w.document.body.innerText.slice(0, 300); }"
            "      catch (e) { out[name] = 'blocked'; } done(); }, 1500)); }"
            "  return new Promise(done => { const f = document.createElement('iframe');"
            "    f.name = name; f.src = url; f.onload = () => {"
            "      try { out[name] = 'read ' + f.contentDocument.body.innerText.slice(0, 300); }"
            "      catch (e) { out[name] = 'blocked'; } done(); };"
            "    document.body.appendChild(f); setTimeout(done, 3000); }); });"
            "Promise.all(jobs).then(() => { document.title = 'done ' + JSON.stringify(out); });"
            "</script>")


def test_a_hostile_page_reads_nothing_through_the_officers_session(server, db, context):
    row = victim(db, server)
    d = dossiers.get(db, row)
    pid, sha, pdf = d.public_id, d.papers[0].pages[0].sha256, d.papers[0].pdf_sha256
    page = context.new_page()
    officer_logs_in(page, server)
    base = server.url
    with hostile_site() as site:
        site.add("own", "<!doctype html><title>own</title>")
        targets = {
            "fetch own page (the detector)": f"{site.url}/own.html",
            "fetch the dossier JSON": f"{base}/api/dossiers/{pid}",
            "fetch every dossier": f"{base}/api/dossiers",
            "fetch the session's CSRF token": f"{base}/api/session",
            "fetch the officer's screen": f"{base}/officer/dossiers/{pid}",
            "img the page image": f"{base}/api/pages/{sha}/image",
            "img the thumbnail": f"{base}/api/pages/{sha}/thumbnail",
            "iframe the officer's screen": f"{base}/officer/dossiers/{pid}",
            "iframe the PDF": f"{base}/api/papers/{pdf}/pdf",
            "window the officer's screen": f"{base}/officer/dossiers/{pid}",
        }
        attacker = context.new_page()
        attacker.goto(site.add("read", read_page(targets)))
        sync_api.expect(attacker).to_have_title(re.compile("^done "), timeout=20000)
        out = json.loads(attacker.title()[len("done "):])
        framed = [f for f in attacker.frames if f.name.startswith("iframe")]
        frame_text = " ".join(f.content() for f in framed)
    print("reads:", out)
    assert out.pop("fetch own page (the detector)").startswith("read ")
    assert out == {name: "blocked" for name in out}, out
    assert NAME not in frame_text and CCCD not in frame_text and d.code not in frame_text
    # the officer's session is untouched by all this
    page.goto(f"{base}/officer/dossiers/{pid}")
    assert shows(page, NAME) == [NAME]


def test_a_hostile_page_cannot_log_the_kiosk_browser_in(server, context):
    """Login CSRF: an attacker who knows a PIN (their own) posts the keypad's form from
    their page into the kiosk's browser; the kiosk must not become an officer screen."""
    kiosk = context.new_page()
    kiosk.goto(f"{server.url}/kiosk")
    with hostile_site() as site:
        attack = context.new_page()
        answers: list[int] = []
        attack.on("response", lambda r: answers.append(r.status)
                  if r.url.startswith(server.url) and r.request.method == "POST" else None)
        attack.goto(site.add("login", form_page(f"{server.url}/staff/login",
                                                {"pin": PIN, "next": "/officer"})))
        attack.wait_for_load_state("load")
        for _ in range(50):
            if answers:
                break
            attack.wait_for_timeout(100)
    assert answers and answers[0] in (400, 403), answers
    kiosk.goto(f"{server.url}/officer")
    kiosk.wait_for_load_state("load")
    assert "/staff/login" in kiosk.url


# --- markup a citizen gets onto the officer's screen ----------------------------------

def test_markup_read_off_a_paper_stays_text_on_the_officers_screen(server, db, context):
    """A citizen writes markup on the form (or names a file so): OCR reads it into the
    fields the officer reviews; the review screen, the list, the search and the
    remembered officer name must show it as text and run nothing."""
    row = victim(db, server, {"full_name": "AN" + MARKUP, "cccd": CCCD + MARKUP,
                              "address": MARKUP}, title="Tờ khai TK1-TS")
    pid = public_id(db, row)
    context.add_cookies([{"name": "officer_name", "value": MARKUP.replace('"', "'"),
                          "url": f"{server.url}/officer"}])
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dlg: (dialogs.append(dlg.message), dlg.dismiss()))
    officer_logs_in(page, server, f"/officer/dossiers/{pid}")
    checked = []
    for target in (f"/officer/dossiers/{pid}", "/officer?q=" + MARKUP, "/officer?q=AN",
                   "/kiosk/lookup?code=" + MARKUP, "/kiosk?lang=" + MARKUP):
        page.goto(f"{server.url}{target}")
        page.wait_for_load_state("load")
        injected = page.evaluate(
            "() => [document.querySelectorAll('img[src=\"x\"], svg[onload], [onerror]').length,"
            " window.__pwned || 0]")
        checked.append((target, injected))
    assert all(found == [0, 0] for _, found in checked), checked
    assert dialogs == []
    page.goto(f"{server.url}/officer/dossiers/{pid}")
    assert "onerror=" in page.locator("body").inner_text()  # shown, as text


# --- the keypad's next= ---------------------------------------------------------------

def _phishing_catcher(context: Any) -> list[str]:
    """Every request Chromium makes to the attacker's host (a redirect's target is not
    routed by Playwright, so it is watched, and fails to resolve: evil.example)."""
    phished: list[str] = []
    context.on("request", lambda r: phished.append(r.url)
               if urlsplit(r.url).hostname == "evil.example" else None)
    return phished


def _go(page: Any, url: str) -> None:
    # A followed redirect to the attacker's host fails to resolve: that is the finding.
    with contextlib.suppress(sync_api.Error):
        page.goto(url)


def test_the_keypad_never_sends_the_officer_off_the_device(server, context):
    """With a PIN: the keypad keeps `next=` in its form and posts it back. The server
    used to answer `Location: //evil.example` (a tab in `next=`, dropped on the way
    out), which only the CSP's form-action 'self' kept Chromium from following; now
    `next=` must be a plain path on the device (security.local_path), and this checks
    both layers hold together."""
    phished = _phishing_catcher(context)
    page = context.new_page()
    page.goto(f"{server.url}/staff/login?next=/%09/evil.example")
    page.locator("#pin").fill(PIN)
    page.locator("#pin-submit").click()
    page.wait_for_timeout(1000)
    assert phished == [], phished
    assert page.url.startswith(server.url), page.url


def test_a_link_to_the_keypad_never_leaves_the_device(tmp_path, context):
    open_server = start_server(tmp_path, idle_seconds=120)  # no PIN, as shipped
    try:
        phished = _phishing_catcher(context)
        page = context.new_page()
        _go(page, f"{open_server.url}/staff/login?next=/%09/evil.example")
        assert phished == [], phished
        assert page.url.startswith(open_server.url), page.url
    finally:
        stop_server(open_server)


def test_the_keypad_takes_the_officer_where_asked_on_the_device(server, context):
    """The other half of the redirect tests: a `next=` on the device is still followed."""
    page = context.new_page()
    page.goto(f"{server.url}/staff/login?next=/officer%3Fq%3DAN")
    page.locator("#pin").fill(PIN)
    page.locator("#pin-submit").click()
    page.wait_for_url(re.compile(r"/officer\?q=AN$"))


def test_the_servers_log_names_no_citizen(server, db, context):
    """What the technician's journal shows is what the server logged: an officer's
    search by a citizen's name or CCCD, their dossier viewed, returned with a reason
    naming them, and a keypad form carrying their CCCD leave neither in gunicorn's
    output."""
    row = victim(db, server)
    pid = public_id(db, row)
    page = context.new_page()
    officer_logs_in(page, server, f"/officer/dossiers/{pid}")
    assert shows(page, NAME) == [NAME]
    for target in (f"/officer?q={NAME}", f"/officer?q={CCCD}", f"/api/dossiers/{CCCD}{CCCD}",
                   f"/kiosk/lookup?code={CCCD}", f"/officer/dossiers/{pid}"):
        page.goto(f"{server.url}{target}")
    page.evaluate("(why) => { const f = document.getElementById('return-form');"
                  " f.reason.value = why; f.submit(); }", f"thiếu CCCD {CCCD} của {NAME}")
    page.wait_for_url(re.compile(r"/officer$"))
    assert dossiers.get(db, row).status == "cancelled"
    # a keypad form whose next= holds a newline and the CCCD (a 500: test_redteam_privacy)
    page.goto(f"{server.url}/staff/login?next=/officer%0a{CCCD}")
    page.locator("#pin").fill(PIN)
    page.locator("#pin-submit").click()
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)
    logged = server.log.read_text(encoding="utf-8", errors="replace")
    assert "returned to the citizen" in logged  # the app's own lines are in this log
    assert NAME not in logged and CCCD not in logged
