"""The three faces in Debian's Chromium at 800x480 and 1920x1080, Vietnamese and English.

Against the app served by gunicorn (`start_server` of test_web_browser). No worker
runs: the test plays the worker's part through the records functions it calls (store
a page, report progress, finish the job), so what the screens show is exactly what a
real scan leaves. Each main screen is saved as a screenshot (in WEB_SCREENSHOT_DIR when
set), checked for its next action being on screen above the footer, for touch targets
of at least 48 px, and with axe-core (vendored, injected) for serious or critical
accessibility violations.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from appliance.records import consent, dossiers, pages, pages_edit
from appliance.store import jobs
from appliance.store.db import connect, set_state
from appliance.store.files import FileStore
from tests.web.helpers import add_scanned_paper, page_image, page_text, submitted_dossier
from tests.web.test_web_browser import (
    CHROMIUM,
    latest_dossier,
    start_server,
    stop_server,
)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
    pytest.mark.timeout(120),
]
sync_api = pytest.importorskip("playwright.sync_api")

AXE = Path(__file__).with_name("vendor") / "axe.min.js"
SMALL = {"width": 800, "height": 480}
LARGE = {"width": 1920, "height": 1080}
SIZES = [pytest.param(SMALL, id="800x480"), pytest.param(LARGE, id="1920x1080")]
LANGS = ["vi", "en"]
# What a 48 px check looks at: everything a finger taps. Inline links inside running
# text are exempt (WCAG 2.5.5), so only links styled as controls are measured.
TARGETS = ("button:not([disabled]), .btn, .lang-link, .lang-current, .page-link, "
           "summary, label.choice, label.check, input[type=text], input[type=search], "
           "input[type=password], .thumb-link")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("faces"), idle_seconds=120)
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture(scope="module")
def server2(tmp_path_factory):
    """A second server for the state tests: the flood limits (5 new dossiers a minute
    per client) are per app, and the citizen flows above use them up."""
    s = start_server(tmp_path_factory.mktemp("faces2"), idle_seconds=120)
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture
def db2(server2):
    conn = connect(server2.config.paths.database)
    yield conn
    conn.close()


@pytest.fixture
def db(server):
    conn = connect(server.config.paths.database)
    yield conn
    conn.close()


def new_page(browser, viewport, lang="vi", **context_args):
    # bypass_csp: only so the test can inject axe-core; the app's own scripts are
    # files, and test_web_browser checks the CSP itself.
    context = browser.new_context(viewport=viewport, locale="vi-VN", bypass_csp=True,
                                  **context_args)
    page = context.new_page()
    page.set_default_timeout(10000)
    return context, page


def expect(locator):
    return sync_api.expect(locator)


def shot(page, name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    target = os.environ.get("WEB_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return path


def assert_on_screen(page, selector: str) -> None:
    """The element is inside the viewport and above the help line (nothing covers it)."""
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not displayed"
    vp = page.viewport_size
    footers = page.locator("footer")
    bottom = footers.first.bounding_box()["y"] if footers.count() else vp["height"]
    bar = page.locator("#actionbar")
    inside_bar = page.evaluate("(s) => !!document.querySelector(s).closest('#actionbar')",
                               selector)
    if bar.count() and not inside_bar:  # content scrolls above the action bar
        bottom = min(bottom, bar.bounding_box()["y"])
    assert box["x"] >= 0 and box["x"] + box["width"] <= vp["width"] + 0.5, (selector, box)
    assert box["y"] >= 0 and box["y"] + box["height"] <= bottom + 0.5, (selector, box, bottom)


def assert_in_scroll_view(page, selector: str) -> None:
    """Inside main's visible area (scrolled into view, not under the action bar)."""
    box = page.locator(selector).first.bounding_box()
    main = page.locator("main").bounding_box()
    assert box is not None and main is not None
    assert box["y"] >= main["y"] - 0.5 and box["y"] + box["height"] <= main["y"] + main[
        "height"] + 0.5, (selector, box, main)


def assert_touch_targets(page) -> None:
    small = page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel))
             .filter(e => e.offsetParent !== null && !e.closest('[hidden]'))
             .map(e => [e.id || e.className || e.tagName, e.getBoundingClientRect()])
             .filter(([, r]) => r.width > 0 && (r.width < 47.5 || r.height < 47.5))
             .map(([n, r]) => n + ' ' + Math.round(r.width) + 'x' + Math.round(r.height))""",
        TARGETS)
    assert small == [], small


def assert_accessible(page) -> list[str]:
    """axe-core's serious and critical violations: none. Returns the moderate ones."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """() => axe.run(document, {resultTypes: ['violations']}).then(r =>
             r.violations.map(v => ({id: v.id, impact: v.impact,
               nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))""")
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    report = os.environ.get("WEB_AXE_REPORT")
    if report:  # the lesser findings, for a person to read
        with open(report, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"url": page.url, "violations": result},
                                ensure_ascii=False) + "\n")
    assert bad == [], bad
    return [v["id"] for v in result]


def check_screen(page, name, tmp_path, next_action=None):
    page.wait_for_load_state("load")  # a form's new page, stylesheet and all
    if next_action:
        assert_on_screen(page, next_action)
    assert_touch_targets(page)
    assert_accessible(page)
    shot(page, name, tmp_path)


def play_worker_scan(conn, config, dossier_id: int, pages_n: int = 1,
                     seed: int = 0) -> int:
    """What the worker does for the queued scan: claim it, store pages into the paper
    it names (or a new one with its title), build the PDF, finish. Returns the paper."""
    job = jobs.claim_next(conn, os.getpid())
    assert job is not None and job.dossier_id == dossier_id, job
    paper_id = job.params.get("paper_id")
    title = job.params["title"]
    if paper_id is None:
        paper_id = add_scanned_paper(conn, config, dossier_id, title=title, pages=pages_n,
                                     seed=seed)
    else:
        files = FileStore(config.paths.files)
        for n in range(pages_n):
            stored = pages.store_page(conn, files, dossier_id, paper_id,
                                      page_image(seed * 10 + n), title, dpi=200)
            pages.set_page_text(conn, stored.page_id, page_text(n + 1))
        pages_edit.rebuild_paper(conn, files, config, paper_id)
    jobs.set_progress(conn, job.id, step="done", pages=pages_n, paper_id=paper_id)
    jobs.finish(conn, job.id)
    return paper_id


def open_kiosk_dossier(page, url: str, procedure: str = "khac", lang: str = "") -> None:
    """The citizen's way into a dossier: start screen, a procedure, consent accepted."""
    page.goto(f"{url}/kiosk" + (f"?lang={lang}" if lang else ""))
    page.locator(f"button[data-procedure={procedure}]").click()
    page.locator("#accept").click()
    page.wait_for_url("**/kiosk/dossier")


def wait_images(page) -> None:
    for _ in range(100):
        if page.evaluate("() => Array.from(document.images).every(i => i.complete && "
                         "i.naturalWidth > 0)"):
            return
        page.wait_for_timeout(100)
    raise AssertionError("images did not load")


# Both languages on the small screen, where the layout is tight (English is the longer
# text: 46 of the 78 kiosk strings), and Vietnamese, the office's language, on the
# large one. English at 1920x1080, the roomiest of the four and the same flow, is left
# out: about 8 s of the suite for nothing the other three do not check.
CITIZEN_FLOWS = [pytest.param("vi", SMALL, id="vi-800x480"),
                 pytest.param("en", SMALL, id="en-800x480"),
                 pytest.param("vi", LARGE, id="vi-1920x1080")]


@pytest.mark.parametrize(("lang", "viewport"), CITIZEN_FLOWS)
def test_citizen_flow(server, browser, db, tmp_path, viewport, lang):
    """Consent, paper choice, scan, enlarge, move, delete, retake, summary, receipt with
    a QR code that decodes to the dossier code, print, lookup."""
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    size = f"{viewport['width']}x{viewport['height']}-{lang}"
    context, page = new_page(browser, viewport)
    try:
        page.goto(f"{server.url}/kiosk?lang={lang}")
        check_screen(page, f"kiosk-start-{size}", tmp_path, "#lookup-link")
        before = db.execute("SELECT COUNT(*) FROM dossiers").fetchone()[0]
        page.locator("button[data-procedure=tk1-ts]").click()
        page.wait_for_url(re.compile(r"/kiosk/consent"))
        check_screen(page, f"kiosk-consent-{size}", tmp_path, "#accept")
        # no dossier before consent (other tests' dossiers may exist: counted before)
        assert db.execute("SELECT COUNT(*) FROM dossiers").fetchone()[0] == before
        page.locator("#accept").click()
        page.wait_for_url("**/kiosk/dossier")
        d = latest_dossier(db)
        got = consent.get(db, d.id)
        assert got is not None and got.language == lang
        # which paper is on the glass: the procedure's first mandatory one is chosen
        checked = page.locator("input[name=paper]:checked")
        expect(checked).to_have_value("tk1-ts")
        check_screen(page, f"kiosk-dossier-empty-{size}", tmp_path, "#scan-flatbed")
        page.locator("label.choice", has=page.locator("input[value=cccd-front]")).click()
        page.locator("#scan-adf").click()
        expect(page.locator("#job")).to_be_visible()
        params = db.execute("SELECT params_json FROM jobs WHERE dossier_id=?",
                            (d.id,)).fetchone()[0]
        assert "Căn cước công dân (mặt trước)" in params
        paper_id = play_worker_scan(db, server.config, d.id, pages_n=3)
        expect(page.locator("#job-done")).to_be_visible()
        wait_images(page)
        assert_in_scroll_view(page, ".thumb-new")
        check_screen(page, f"kiosk-dossier-pages-{size}", tmp_path, "#submit")
        if lang == "en":
            expect(page.locator(".paper h3").first).to_contain_text(
                "Citizen identity card (front)")
        # enlarge page 3, move it earlier, delete page 1, retake what is now page 2
        page.locator(".thumb-link").nth(2).click()
        page.wait_for_url(re.compile(r"/kiosk/dossier/pages/\d+"))
        wait_images(page)
        check_screen(page, f"kiosk-page-{size}", tmp_path, "#retake")
        before = [pg.id for pg in dossiers.get(db, d.id).papers[0].pages]
        page.locator("#move-earlier").click()
        page.wait_for_load_state()
        after = [pg.id for pg in dossiers.get(db, d.id).papers[0].pages]
        assert after == [before[0], before[2], before[1]]
        page.locator("#back").click()
        page.locator(".thumb-link").first.click()
        page.locator("#delete-ask").click()
        assert_on_screen(page, "#delete-yes")
        page.locator("#delete-yes").click()
        page.wait_for_url("**/kiosk/dossier")
        assert [pg.id for pg in dossiers.get(db, d.id).papers[0].pages] == after[1:]
        page.locator(".thumb-link").nth(1).click()
        page.locator("#retake").click()
        page.wait_for_url("**/kiosk/dossier")
        expect(page.locator("#job")).to_be_visible()
        play_worker_scan(db, server.config, d.id, pages_n=1, seed=7)
        expect(page.locator("#job-done")).to_be_visible()
        paper = dossiers.get(db, d.id).papers[0]
        assert paper.id == paper_id and len(paper.pages) == 2
        assert paper.pages[0].id == after[1] and paper.pages[1].id not in after
        # still missing: the declaration (mandatory) is named, on screen and in summary
        expect(page.locator("#missing")).to_be_visible()
        page.locator("#submit").click()
        page.wait_for_url("**/kiosk/dossier/summary")
        expect(page.locator("#summary-missing")).to_be_visible()
        check_screen(page, f"kiosk-summary-{size}", tmp_path, "#confirm-submit")
        page.locator("#confirm-submit").click()
        page.wait_for_url("**/kiosk/receipt")
        expect(page.locator("#receipt-code")).to_have_text(d.code)
        check_screen(page, f"kiosk-receipt-{size}", tmp_path, "#done")
        # no printer configured on this server: no Print button (the browser never
        # prints; test_receipt_print.py prints through a CUPS queue)
        expect(page.locator("#print-receipt")).to_have_count(0)
        png = page.locator("#receipt-qr svg").screenshot()
        decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]
        assert decoded == [d.code]
        page.emulate_media(media="print")
        expect(page.locator("#actionbar")).to_be_hidden()
        expect(page.locator("#receipt-code")).to_be_visible()
        page.emulate_media(media="screen")
        page.locator("#done").click()
        page.wait_for_url(re.compile(r"/kiosk(\?.*)?$"))
        # the receipt is gone from this session; the status is found by code only
        page.goto(f"{server.url}/kiosk/receipt")
        assert re.search(r"/kiosk$", page.url)
        page.goto(f"{server.url}/kiosk/lookup?lang={lang}")
        page.locator("#code").fill(d.code)
        page.locator("#lookup-submit").click()
        expect(page.locator("#lookup-result")).to_contain_text(d.code)
        check_screen(page, f"kiosk-lookup-{size}", tmp_path, "#lookup-submit")
        assert "NGUYỄN" not in page.content()
        assert dossiers.get(db, d.id).status == "submitted"
    finally:
        context.close()


def test_idle_countdown_reset_and_back_shows_nothing(browser, tmp_path):
    server = start_server(tmp_path, idle_seconds=6)
    context, page = new_page(browser, SMALL)
    conn = connect(server.config.paths.database)
    try:
        # The page's timers run on Playwright's clock: the 6 s of idleness are run
        # forward below instead of waited for (the page counts and resets as it would).
        page.clock.install()
        open_kiosk_dossier(page, server.url)
        d = latest_dossier(conn)
        add_scanned_paper(conn, server.config, d.id, pages=1)
        page.reload()
        # The installed clock also flows with real time: on a loaded CI machine the
        # real seconds spent below added to the 5.5 s run forward and reset the page
        # before the countdown was looked at (#actionbar gone). Paused, it moves only
        # when run forward; a key press (no action on the kiosk) starts the idle
        # time at the paused instant.
        page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 0.1)
        page.keyboard.press("Shift")
        page.clock.run_for(3_500)  # the warning comes at half the idle time
        expect(page.locator("#idle-warning")).to_be_visible()
        seen = set()
        for _ in range(2):
            seen.add(page.locator("#idle-countdown").text_content())
            page.clock.run_for(1_000)
        assert seen and all(s and s.isdigit() and 1 <= int(s) <= 15 for s in seen), seen
        assert len(seen) >= 2, seen  # it counts down
        assert_on_screen(page, "#idle-stay")
        shot(page, "kiosk-idle-800x480-vi", tmp_path)
        page.clock.run_for(2_000)  # past the idle time: the reset
        page.wait_for_url(re.compile(r"/kiosk$"), timeout=10000)
        assert dossiers.get(conn, d.id).status == "cancelled"
        page.go_back()
        expect(page.locator("#dossier-code")).to_have_count(0)
        assert d.code not in page.content()
    finally:
        conn.close()
        context.close()
        stop_server(server)


def test_two_tabs_and_a_new_procedure_with_pages(server2, browser, db2, tmp_path):
    """A scan tapped in a stale tab never lands in the other tab's dossier; choosing a
    procedure over a dossier with pages asks first."""
    context, first = new_page(browser, LARGE)
    try:
        open_kiosk_dossier(first, server2.url)
        old = latest_dossier(db2)
        add_scanned_paper(db2, server2.config, old.id, pages=1)
        second = context.new_page()
        second.goto(f"{server2.url}/kiosk")
        expect(second.locator("#continue-box")).to_contain_text(old.code)
        second.locator("button[data-procedure=tk1-ts]").click()
        expect(second.locator("#unfinished")).to_contain_text(old.code)
        shot(second, "kiosk-consent-unfinished-1920x1080-vi", tmp_path)
        second.locator("#accept").click()
        second.wait_for_url("**/kiosk/dossier")
        new = latest_dossier(db2)
        assert new.id != old.id and dossiers.get(db2, old.id).status == "cancelled"
        # the first tab still shows the old dossier: its scan is refused, nothing queued
        first.locator("#scan-flatbed").click()
        expect(first.locator(".notice-error")).to_be_visible()
        expect(first.locator("#dossier-code")).to_have_text(new.code)
        assert db2.execute("SELECT COUNT(*) FROM jobs WHERE dossier_id IN (?, ?)",
                          (old.id, new.id)).fetchone()[0] == 0
    finally:
        context.close()


def test_worker_down_is_said_at_once(server2, browser, db2, tmp_path):
    context, page = new_page(browser, SMALL, )
    try:
        open_kiosk_dossier(page, server2.url, lang="en")
        d = latest_dossier(db2)
        page.locator("#scan-flatbed").click()
        expect(page.locator("#job")).to_be_visible()
        # the worker stops beating while the scan waits: said within a poll, not 170 s
        set_state(db2, "worker.heartbeat", str(time.time() - 600))
        expect(page.locator("#worker-down")).to_be_visible(timeout=5000)
        expect(page.locator(".spinner")).to_have_count(0)
        check_screen(page, "kiosk-worker-down-800x480-en", tmp_path, "#cancel-ask")
        assert_on_screen(page, "#withdraw")
        page.locator("#withdraw").click()
        expect(page.locator(".notice-info")).to_be_visible()
        assert jobs.active_for_dossier(db2, d.id) is None
        # a new scan is refused at once while the worker is silent
        page.locator("#scan-flatbed").click()
        expect(page.locator(".notice-error")).to_contain_text("scan service is not running")
        page.locator("#cancel-ask").click()
        page.locator("#cancel-yes").click()
        page.wait_for_url(re.compile(r"/kiosk$"))
        assert dossiers.get(db2, d.id).status == "cancelled"
    finally:
        set_state(db2, "worker.heartbeat", str(time.time()))
        context.close()


@pytest.mark.parametrize("viewport", SIZES)
@pytest.mark.parametrize("lang", LANGS)
def test_officer_review_and_sign_off(server, browser, db, tmp_path, viewport, lang):
    dossier_id = submitted_dossier(db, server.config, pages=2, blank=(2,))
    code = dossiers.get(db, dossier_id).code
    size = f"{viewport['width']}x{viewport['height']}-{lang}"
    context, page = new_page(browser, viewport)
    try:
        page.goto(f"{server.url}/officer?lang={lang}")
        expect(page.locator("#waiting-count")).to_have_text(re.compile(r"^\d+$"))
        page.locator("#q").fill(code[-6:])
        page.locator("#search-submit").click()
        expect(page.locator("#waiting tbody tr")).to_have_count(1)
        expect(page.locator("#waiting .waited")).to_have_text(re.compile(r"\d"))
        check_screen(page, f"officer-list-{size}", tmp_path, "#waiting a.btn")
        page.locator("#waiting a.btn").click()
        expect(page.locator("#dossier-code")).to_have_text(code)
        wait_images(page)
        viewer = page.locator("[data-viewer]").first
        shot(page, f"officer-detail-top-{size}", tmp_path)
        frame = page.locator(".viewer-frame").first.bounding_box()
        footer = page.locator("footer").first.bounding_box()
        assert frame is not None and footer is not None
        # the page image starts on the first screen, beside the fields, with room to read
        assert frame["y"] + 200 <= footer["y"], (frame, footer)
        viewer.locator("[data-action=rotate]").click()
        viewer.locator("[data-action=zoom-in]").click()
        expect(viewer).to_have_attribute("data-rotation", "90")
        expect(viewer).to_have_attribute("data-zoom", "1.5")
        viewer.locator(".page-tab").nth(1).click()
        expect(viewer.locator(".viewer-img")).to_have_attribute(
            "src", re.compile(dossiers.get(db, dossier_id).papers[0].pages[1].sha256))
        viewer.locator("[data-action=fit]").click()
        check_screen(page, f"officer-detail-{size}", tmp_path, "[data-action=rotate]")
        if viewport is SMALL:
            height = page.evaluate("() => document.documentElement.scrollHeight")
            assert height < 1600, height  # was 7,274 px
        page.locator("#checked").check()
        page.locator("#officer").fill("Nguyễn Văn A")
        page.locator("#sign-button").click()
        expect(page.locator("#sign-confirm")).to_be_visible()
        assert_on_screen(page, "#sign-yes")
        shot(page, f"officer-confirm-{size}", tmp_path)
        assert dossiers.get(db, dossier_id).status == "submitted"  # not before confirming
        page.locator("#sign-yes").click()
        expect(page.locator("#signed-result .result-code")).to_have_text(f"{code}.01")
        expect(page.locator("#dossier-status")).to_have_class(re.compile("badge-signed"))
        d = dossiers.get(db, dossier_id)
        assert d.status == "signed" and d.signed_by == "Nguyễn Văn A"
    finally:
        context.close()


def test_officer_screen_leaves_after_idle(browser, tmp_path):
    """With a PIN set, an idle officer page logs out to the keypad."""
    server = start_server(tmp_path, idle_seconds=120, officer_pin="2468")
    context, page = new_page(browser, SMALL)
    conn = connect(server.config.paths.database)
    try:
        submitted_dossier(conn, server.config)
        # The idle time is the app's OFFICER_IDLE_SECONDS (default 180 s); shortened in
        # the page before its script reads it, so the test need not wait 3 minutes.
        page.add_init_script("""new MutationObserver((_, o) => { if (document.body) {
            document.body.setAttribute('data-idle-seconds', '2'); o.disconnect(); } })
            .observe(document, {childList: true, subtree: true});""")
        page.goto(f"{server.url}/officer")
        page.wait_for_url(re.compile(r"/staff/login"))
        check_screen(page, "staff-pin-800x480-vi", tmp_path, "#pin-submit")
        for digit in "2468":
            page.locator(f"#keypad [data-key='{digit}']").click()
        page.locator("#pin-submit").click()
        page.wait_for_url(re.compile(r"/officer"))
        expect(page.locator("#waiting")).to_be_visible()
        assert page.evaluate("() => document.body.getAttribute('data-idle-seconds')") == "2"
        page.wait_for_url(re.compile(r"/staff/login"), timeout=10000)
        page.goto(f"{server.url}/officer")
        assert "/staff/login" in page.url  # the session really ended
    finally:
        conn.close()
        context.close()
        stop_server(server)


@pytest.mark.parametrize("viewport", SIZES)
def test_technician_panel_readable(server, browser, db, tmp_path, viewport):
    set_state(db, "scanner.state", "ready")
    context, page = new_page(browser, viewport)
    try:
        page.goto(f"{server.url}/technician")
        rows = page.locator("#status tr")
        expect(rows.first).to_be_visible()
        for i in range(rows.count()):
            box = rows.nth(i).bounding_box()
            assert box is not None and box["x"] + box["width"] <= viewport["width"] + 0.5
        # scanner, scan service, disk and queue: on the first screen, even at 800x480
        for i in range(4):
            box = rows.nth(i).bounding_box()
            assert box["y"] + box["height"] <= viewport["height"], (i, box)
        check_screen(page, f"technician-{viewport['width']}x{viewport['height']}-vi",
                     tmp_path)
        size = page.evaluate("() => parseFloat(getComputedStyle("
                             "document.querySelector('#status td')).fontSize)")
        assert size >= 16
    finally:
        context.close()


@pytest.mark.parametrize("lang", LANGS)
def test_high_contrast(server2, browser, tmp_path, lang):
    """The ◐ button switches the kiosk to white on black with yellow actions; axe checks
    its colour contrast; the idle reset (like Done) switches it off for the next person."""
    context, page = new_page(browser, SMALL)
    try:
        page.goto(f"{server2.url}/kiosk?lang={lang}")
        page.locator("#contrast-toggle").click()
        expect(page.locator("body")).to_have_class(re.compile(r"\bcontrast\b"))
        check_screen(page, f"kiosk-start-contrast-800x480-{lang}", tmp_path, "#lookup-link")
        page.locator("button[data-procedure=khac]").click()
        expect(page.locator("body")).to_have_class(re.compile(r"\bcontrast\b"))
        check_screen(page, f"kiosk-consent-contrast-800x480-{lang}", tmp_path, "#accept")
        page.locator("#decline").click()
        page.locator("#contrast-toggle").click()
        expect(page.locator("body")).not_to_have_class(re.compile(r"\bcontrast\b"))
    finally:
        context.close()
