"""The technician panel in Debian's Chromium against the real processes.

The eSCL emulator (`appliance demo-scanner`, through sane-airscan), the worker (the
only process that opens the scanner; OCR off, it is not what is tested here), the web
server under gunicorn and a real mosquitto run as separate processes, each stopped by
its PID. The technician signs in on the keypad with the technician PIN, finds the
scanner, chooses it, runs a test scan and sees the page and the timed steps; tests
the broker (connected, then a closed port with the next step); every screen is
checked at 800x480 and 1920x1080 for 48 px targets and with axe-core, and saved as a
screenshot (WEB_SCREENSHOT_DIR).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.records import dossiers
from appliance.store import state
from appliance.store.db import connect
from appliance.system import config as config_mod
from appliance.system.crypto import is_sealed_text
from tests.helpers.mosquitto import MosquittoProcess, start_mosquitto
from tests.helpers.processes import (
    Processes,
    demo_scanner_sane,
    free_port,
    start_scanning_appliance,
    wait_for,
)
from tests.web.helpers import submitted_dossier
from tests.web.test_web_browser import CHROMIUM
from tests.web.test_web_faces import (
    LARGE,
    SMALL,
    assert_accessible,
    assert_touch_targets,
    new_page,
    shot,
)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
    pytest.mark.timeout(240),
]
sync_api = pytest.importorskip("playwright.sync_api")

TECH_PIN = "424242"
OFFICER_PIN = "171717"


@dataclass
class Rig:
    base: str
    config: config_mod.Config
    procs: Processes
    broker: MosquittoProcess


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("tech")
    web_port, scanner_port = free_port(), free_port()
    broker = start_mosquitto(tmp / "broker")
    config = config_mod.with_overrides(
        config_mod.Config(),
        paths={"data_dir": str(tmp / "device")},
        web={"bind": f"127.0.0.1:{web_port}", "technician_pin": TECH_PIN,
             "officer_pin": OFFICER_PIN},
        scanner={"sane_config_dir": demo_scanner_sane(tmp, scanner_port)},
        ocr={"enabled": False},
        mqtt={"host": "127.0.0.1", "port": broker.port},
    )
    procs = Processes.for_config(tmp, config)
    try:
        base = start_scanning_appliance(procs, web_port, scanner_port, 2)
        yield Rig(base, config, procs, broker)
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
        broker.stop()


def expect(locator):
    return sync_api.expect(locator)


def sign_in(page, rig: Rig) -> None:
    page.goto(f"{rig.base}/technician")
    page.wait_for_url("**/staff/login**")
    page.locator("#pin").fill(TECH_PIN)
    page.locator("#pin-submit").click()
    page.wait_for_url("**/technician")


def wait_image(page, selector: str) -> None:
    for _ in range(100):
        if page.evaluate("(s) => { const i = document.querySelector(s); "
                         "return !!i && i.complete && i.naturalWidth > 0; }", selector):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"{selector} did not load")


def check(page, name: str, tmp_path: Path) -> None:
    assert_touch_targets(page)
    assert_accessible(page)
    shot(page, name, tmp_path)


def tech_api(rig: Rig, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"{rig.base}/api/technician{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"X-Technician-PIN": TECH_PIN,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_technician_finds_chooses_and_test_scans_the_scanner(browser, rig, tmp_path):
    context, page = new_page(browser, SMALL)
    try:
        sign_in(page, rig)
        expect(page.locator("h1")).to_have_text("Tình trạng thiết bị")
        check(page, "technician-status-800x480", tmp_path)
        page.locator("#scanner-search").click()
        row = page.locator("#scanner-list tbody tr")
        expect(row).to_have_count(1, timeout=60000)
        expect(row).to_contain_text("BHXH Demo Scanner")
        row.locator("button.choose").click()
        expect(page.locator("#chosen")).to_have_text("eSCL BHXH Demo Scanner", timeout=20000)
        expect(row.locator("strong")).to_have_text("Đang dùng", timeout=60000)
        conn = connect(rig.config.paths.database)
        try:
            chosen = state.chosen_scanner(conn)
        finally:
            conn.close()
        assert chosen.startswith("scanner:") and "BHXH" in chosen, chosen
        page.locator("#scanner-test").click()
        expect(page.locator("#scanner-thumb-box")).to_be_visible(timeout=120000)
        wait_image(page, "#scanner-thumb")
        expect(page.locator("#scanner-job")).to_have_text("Quét thử thành công.")
        steps = page.locator("#scanner-steps tbody tr td:first-child").all_inner_texts()
        assert steps[:3] == ["open", "capabilities", "page 1"] and steps[-1] == "close", steps
        ms = page.locator("#scanner-steps tbody tr td:nth-child(2)").all_inner_texts()
        assert all(float(v) >= 0 for v in ms) and float(ms[2]) > 0, ms
        page.locator("#scanner-thumb").scroll_into_view_if_needed()
        check(page, "technician-test-scan-800x480", tmp_path)
        # the test page is sealed at rest like every page (it may be a citizen's paper)
        conn = connect(rig.config.paths.database)
        try:
            row = conn.execute("SELECT progress_json FROM jobs WHERE kind='scanner_test' "
                               "ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            conn.close()
        stored = json.loads(row[0])["thumbnail_jpeg"]
        # No JPEG in clear (a JSON string starting as base64 JPEG does); "/9j/" alone
        # also turns up inside the sealed text's base64 now and then (a CI run at ea8d38f).
        assert is_sealed_text(stored) and '"/9j/' not in row[0]
        # the test opened the kiosk's own scanner: its capabilities are published
        conn = connect(rig.config.paths.database)
        try:
            assert "flatbed" in state.scanner_capabilities(conn)["sources"]
        finally:
            conn.close()
    finally:
        context.close()


def test_a_failed_test_scan_says_what_the_kiosk_would_say(rig):
    conn = connect(rig.config.paths.database)
    try:
        earlier = conn.execute("SELECT id FROM jobs WHERE kind='scanner_test' "
                               "ORDER BY id DESC LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    thumb = f"{rig.base}/api/technician/jobs/{earlier}/thumbnail"
    request = urllib.request.Request(thumb, headers={"X-Technician-PIN": TECH_PIN})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.read(3) == b"\xff\xd8\xff"  # the earlier test's page, a JPEG
    job = tech_api(rig, "POST", "/scanners/test",
                   {"device": "scanner:vendor=Nobody&model=Nothing", "source": "flatbed"})

    def ended() -> dict | None:
        found = tech_api(rig, "GET", f"/jobs/{job['job_id']}")
        return found if found["state"] in ("done", "failed") else None

    found = wait_for(ended, 60, "the failed test scan")
    assert found["state"] == "failed" and found["error_key"] == "scanner.not_found", found
    assert found["message"].startswith("Không tìm thấy máy quét")
    assert found["steps"][-1]["step"] == "open" and found["steps"][-1]["error_text"]
    # the kiosk's own scanner was not the one at fault: it stays ready
    assert tech_api(rig, "GET", "/status")["raw"]["scanner_state"] == "ready"
    # a new test scan drops the earlier test's page
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(request, timeout=10)
    assert gone.value.code == 404


def test_the_kiosk_scans_with_the_scanner_the_technician_chose(rig):
    """The choice is what the worker opens for citizens' scans too."""
    import http.cookiejar

    citizen = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    token: dict[str, str] = {}

    def call(method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(f"{rig.base}{path}", method=method,
                                     data=None if method == "GET" else json.dumps(
                                         body or {}).encode(),
                                     headers={"Content-Type": "application/json", **token})
        with citizen.open(req, timeout=10) as resp:
            return json.loads(resp.read())

    def scan() -> dict:
        job = call("POST", f"/api/dossiers/{dossier['id']}/scans", {"source": "flatbed"})

        def ended() -> dict | None:
            found = call("GET", f"/api/jobs/{job['job_id']}")
            return found if found["state"] in ("done", "failed") else None

        return wait_for(ended, 90, "the kiosk scan")

    listed = tech_api(rig, "POST", "/scanners/search")
    devices = wait_for(lambda: tech_api(rig, "GET", f"/jobs/{listed['job_id']}")["result"]
                       .get("devices"), 60, "the scanner list")
    real = devices[0]["identity"]
    dossier = call("POST", "/api/dossiers", {"procedure": "khac"})
    # from here a session cookie speaks for the citizen: its CSRF token goes along
    token["X-CSRFToken"] = call("GET", "/api/session")["csrf_token"]
    try:
        tech_api(rig, "POST", "/scanners/choose",
                 {"identity": "scanner:vendor=Nobody&model=Nothing"})
        failed = scan()
        assert failed["state"] == "failed" and failed["error_key"] == "scanner.not_found"
        tech_api(rig, "POST", "/scanners/choose", {"identity": real})
        done = scan()
        assert done["state"] == "done", done
    finally:
        tech_api(rig, "POST", "/scanners/choose", {"identity": real})


def test_config_view_names_a_bad_key_of_the_edited_file(browser, rig, tmp_path):
    path = Path(rig.procs.env["APPLIANCE_CONFIG"])
    good = path.read_text(encoding="utf-8")
    context, page = new_page(browser, SMALL)
    try:
        path.write_text(good.replace("[mqtt]\n", "[mqtt]\nprot = 1883\n"), encoding="utf-8")
        page.clock.install()  # the next poll is run on the page's clock, not waited for
        sign_in(page, rig)
        problems = page.locator("#config-problems")
        expect(problems).to_contain_text("mqtt.prot")
        expect(problems).to_contain_text("did you mean 'port'?")
        expect(page.locator("#config-ok")).to_have_count(0)
        page.locator("#h-config").evaluate("(e) => e.scrollIntoView({block: 'start'})")
        check(page, "technician-config-problem-800x480", tmp_path)
        path.write_text(good, encoding="utf-8")
        page.reload()
        expect(page.locator("#config-ok")).to_be_visible()
        # live: a record signed meanwhile shows in the queue at the next poll (10 s,
        # run at once on the page's clock)
        pending = page.locator('#queue-counts td[data-count="pending"]')
        expect(pending).to_have_text("0")

        def sign() -> None:  # PDF signing runs its own event loop: not Playwright's
            conn = connect(rig.config.paths.database)
            try:
                dossiers.sign_off(conn, rig.config, submitted_dossier(conn, rig.config),
                                  "Lê B")
            finally:
                conn.close()

        with ThreadPoolExecutor(1) as pool:
            pool.submit(sign).result()
        page.clock.run_for(10_000)
        expect(pending).to_have_text("1")
    finally:
        path.write_text(good, encoding="utf-8")
        context.close()


def test_polling_stops_on_an_abandoned_screen_so_the_session_can_lapse(browser, rig):
    context, page = new_page(browser, SMALL)
    try:
        page.clock.install()
        sign_in(page, rig)
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if "/api/technician/status"
                in r.url else None)
        page.clock.run_for(25_000)
        assert len(polls) >= 2, polls  # every 10 s while someone is there
        expect(page.locator("#refresh-idle")).to_be_hidden()
        page.clock.run_for(6 * 60_000)  # nobody touches the screen
        expect(page.locator("#refresh-idle")).to_be_visible()
        expect(page.locator("#auto-refresh")).to_have_text("Tự cập nhật mỗi 10 giây")
        count = len(polls)
        page.clock.run_for(60_000)
        assert len(polls) == count  # no request keeps the session alive
        page.locator("#auto-refresh").click()  # a touch: back to live figures
        expect(page.locator("#refresh-idle")).to_be_hidden()
        expect(page.locator("#auto-refresh")).to_have_text("Dừng tự cập nhật")
        page.clock.run_for(11_000)
        assert len(polls) > count
    finally:
        context.close()


def test_models_checked_and_journal_reloaded_from_the_panel(browser, rig, tmp_path):
    context, page = new_page(browser, LARGE)
    try:
        sign_in(page, rig)
        checks = page.locator("#models .model-check")
        assert checks.count() >= 2
        expect(checks.first).to_have_text("Chưa kiểm tra")
        page.locator("#models-verify").click()
        for i in range(checks.count()):
            expect(checks.nth(i)).to_have_text("Khớp SHA-256", timeout=20000)
        with page.expect_response("**/api/technician/journal**") as answer:
            page.locator("#journal-refresh").click()
        assert answer.value.status == 200
        body = answer.value.json()
        if body["entries"]:  # a machine with a journal of appliance-* units
            expect(page.locator("#journal .journal-line")).to_have_count(len(body["entries"]))
        else:  # none here: a sentence, not an error page
            expect(page.locator("#journal-message")).to_have_text(body["message"])
            assert body["message"]
        page.locator("#sec-models").scroll_into_view_if_needed()
        check(page, "technician-models-1920x1080", tmp_path)
    finally:
        context.close()


def test_broker_test_connected_then_a_closed_port(browser, rig, tmp_path):
    context, page = new_page(browser, LARGE)
    try:
        sign_in(page, rig)
        page.locator("#broker-test").click()
        result = page.locator("#broker-result")
        expect(result).to_contain_text(f"Đã kết nối tới máy chủ 127.0.0.1:{rig.broker.port}")
        expect(result).to_have_class("notice notice-ok")
        check(page, "technician-broker-1920x1080", tmp_path)
        rig.broker.stop()
        page.locator("#broker-test").click()
        expect(result).to_contain_text("từ chối kết nối")
        expect(result).to_contain_text("Bước tiếp")
        expect(result).to_have_class("notice notice-error")
        page.locator("a[data-lang=en]").click()
        page.locator("#broker-test").click()
        expect(page.locator("#broker-result")).to_contain_text("refused the connection")
        page.locator("#sec-journal").scroll_into_view_if_needed()
        check(page, "technician-journal-1920x1080", tmp_path)
    finally:
        context.close()
