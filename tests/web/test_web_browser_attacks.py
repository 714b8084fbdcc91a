"""A page on another origin tries to change state through the victim's real Chromium.

The appliance runs under gunicorn as in production; the hostile site is another port
of 127.0.0.1, which is *the same site* for cookies (SameSite does not stop it) but
another origin: the CSRF token and the origin check must. The victim's browser holds
an officer session (PIN configured), a citizen's open dossier, or nothing at all on an
install without a PIN (the shipped default). After every attack the database is
compared with what it was: nothing may have changed.
"""

from __future__ import annotations

import re

import pytest

from appliance.records import dossiers
from appliance.store.db import connect
from tests.web.attack import fetch_page, form_page, hostile_site
from tests.web.helpers import public_id, submitted_dossier
from tests.web.test_web_browser import CHROMIUM, start_server, stop_server

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
    pytest.mark.timeout(120),
]
sync_api = pytest.importorskip("playwright.sync_api")

PIN = "2468"


def snapshot(conn) -> tuple:
    return (tuple(tuple(r) for r in conn.execute(
                "SELECT id, status, signed_by FROM dossiers ORDER BY id")),
            # the papers' extracted fields, which a correction would re-seal
            tuple(tuple(r) for r in conn.execute("SELECT id, fields_json FROM papers")),
            conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM records").fetchone()[0],
            tuple(tuple(r) for r in conn.execute("SELECT * FROM code_sequences")))


def attack_pages(site, base: str, dossier_id: str, paper_id: int = 1) -> dict[str, str]:
    """Every way a page can post to the appliance without its cooperation."""
    sign = f"{base}/officer/dossiers/{dossier_id}/sign"
    api = f"{base}/api/dossiers"
    correct = f"{api}/{dossier_id}/papers/{paper_id}/fields/full_name"
    form_correct = f"{base}/officer/dossiers/{dossier_id}/papers/{paper_id}/fields/full_name"
    return {
        "api correction, fetch no-cors": site.add(
            "fetch-correct", fetch_page(correct, {"value": "MALLORY", "officer": "Mallory"})),
        "api correction, text/plain json form": site.add("api-correct", form_page(
            correct, {'{"value": "MALLORY", "x": "': '"}'}, enctype="text/plain")),
        "officer correction form": site.add(
            "form-correct", form_page(form_correct, {"value": "MALLORY",
                                                     "officer": "Mallory"})),
        "officer sign form": site.add("sign", form_page(sign, {"officer": "Mallory",
                                                                     "checked": "yes"})),
        "officer sign form, forged token": site.add(
            "sign-token", form_page(sign, {"officer": "Mallory", "checked": "yes",
                                     "csrf_token": "x" * 40})),
        "api sign, text/plain json form": site.add("api-sign", form_page(
            f"{api}/{dossier_id}/sign", {'{"officer": "Mallory", "x": "': '"}'},
            enctype="text/plain")),
        "api sign, fetch no-cors": site.add(
            "fetch-sign", fetch_page(f"{api}/{dossier_id}/sign", {"officer": "Mallory"})),
        "api cancel, form": site.add("api-cancel", form_page(f"{api}/{dossier_id}/cancel", {})),
        "api cancel, fetch no-cors": site.add(
            "fetch-cancel", fetch_page(f"{api}/{dossier_id}/cancel")),
        "api create, fetch no-cors": site.add(
            "fetch-create", fetch_page(api, {"procedure": "khac"})),
        "kiosk create form": site.add(
            "kiosk-create", form_page(f"{base}/kiosk/dossiers", {"procedure": "khac",
                                                           "consent": "accept"})),
        "kiosk cancel form": site.add(
            "kiosk-cancel", form_page(f"{base}/kiosk/dossier/cancel", {})),
        "kiosk reset form": site.add("kiosk-reset", form_page(f"{base}/kiosk/reset", {})),
        "kiosk scan form": site.add(
            "kiosk-scan", form_page(f"{base}/kiosk/dossier/scan", {"source": "adf"})),
        "kiosk submit form": site.add(
            "kiosk-submit", form_page(f"{base}/kiosk/dossier/submit", {})),
        "staff logout form": site.add("logout", form_page(f"{base}/staff/logout", {})),
    }


def run_attacks(context, pages: dict[str, str], base: str) -> dict[str, int | str]:
    """Open each hostile page in a tab of the victim's browser; what did the appliance say?"""
    results: dict[str, int | str] = {}
    for name, url in pages.items():
        page = context.new_page()
        answers: list[int] = []
        page.on("response", lambda r, answers=answers: answers.append(r.status)
                if r.url.startswith(base) and r.request.method == "POST" else None)
        page.goto(url)
        if "fetch" in name:
            sync_api.expect(page).to_have_title(re.compile("sent|failed"), timeout=10000)
            results[name] = "sent (opaque answer)"
        else:
            page.wait_for_load_state("load")
            for _ in range(50):
                if answers:
                    break
                page.wait_for_timeout(100)
            results[name] = answers[0] if answers else "no answer"
        page.close()
    return results


def assert_all_refused(results: dict[str, int | str]) -> None:
    print("attacks:", results)
    for name, answer in results.items():
        assert answer == "sent (opaque answer)" or answer in (400, 403), (name, answer)


def test_hostile_page_cannot_use_the_officers_session(browser, tmp_path):
    server = start_server(tmp_path, idle_seconds=120, officer_pin=PIN)
    context = browser.new_context()
    conn = connect(server.config.paths.database)
    try:
        dossier_id = submitted_dossier(conn, server.config)
        # the officer logs in on the keypad, as at the counter
        page = context.new_page()
        page.goto(f"{server.url}/officer")
        page.wait_for_url("**/staff/login**")
        for digit in PIN:
            page.locator(f'[data-key="{digit}"]').click()
        page.locator("#pin-submit").click()
        page.wait_for_url(re.compile(r"/officer$"))
        before = snapshot(conn)
        with hostile_site() as site:
            pages = attack_pages(site, server.url, public_id(conn, dossier_id),
                                 dossiers.get(conn, dossier_id).papers[0].id)
            results = run_attacks(context, pages, server.url)
        assert_all_refused(results)
        assert snapshot(conn) == before
        d = dossiers.get(conn, dossier_id)
        assert d.status == "submitted" and d.signed_by is None
        # the officer is still logged in (the logout was refused), and can still sign
        page.goto(f"{server.url}/officer/dossiers/{public_id(conn, dossier_id)}")
        page.locator("#checked").check()
        page.locator("#officer").fill("Nguyễn Văn A")
        page.get_by_role("button", name="Ký xác nhận và cấp mã kết quả số hóa").click()
        page.locator("#sign-yes").click()
        sync_api.expect(page.locator("#signed-result .result-code")).to_have_count(1)
        assert dossiers.get(conn, dossier_id).signed_by == "Nguyễn Văn A"
    finally:
        conn.close()
        context.close()
        stop_server(server)


def test_hostile_page_cannot_act_on_an_install_without_a_pin(browser, tmp_path):
    """The shipped default: no PIN at all; the origin check and the token still hold."""
    server = start_server(tmp_path, idle_seconds=120)
    context = browser.new_context()
    conn = connect(server.config.paths.database)
    try:
        dossier_id = submitted_dossier(conn, server.config)
        context.new_page().goto(f"{server.url}/officer")  # the browser has a session
        before = snapshot(conn)
        with hostile_site() as site:
            pages = attack_pages(site, server.url, public_id(conn, dossier_id))
            results = run_attacks(context, pages, server.url)
        assert_all_refused(results)
        assert snapshot(conn) == before
    finally:
        conn.close()
        context.close()
        stop_server(server)


def test_hostile_page_cannot_touch_the_citizens_open_dossier(browser, tmp_path):
    server = start_server(tmp_path, idle_seconds=120, officer_pin=PIN)
    context = browser.new_context()
    conn = connect(server.config.paths.database)
    try:
        kiosk = context.new_page()
        kiosk.goto(f"{server.url}/kiosk")
        kiosk.get_by_role("button", name=re.compile("Đăng ký tham gia")).click()
        kiosk.locator("#accept").click()
        kiosk.wait_for_url("**/kiosk/dossier")
        mine = dossiers.list_ids(conn, "open")[0]
        before = snapshot(conn)
        with hostile_site() as site:
            results = run_attacks(context, attack_pages(site, server.url, mine), server.url)
        assert_all_refused(results)
        assert snapshot(conn) == before
        assert dossiers.get(conn, mine).status == "open"
        kiosk.reload()
        sync_api.expect(kiosk.locator("#dossier-code")).to_have_text(
            dossiers.get(conn, mine).code)  # the citizen's session survived too
    finally:
        conn.close()
        context.close()
        stop_server(server)
