"""The screens in Debian's real Chromium, against the app served by gunicorn.

The server is `python -m appliance.web.server` (what `appliance web` runs) on a free
loopback port, stopped by its process group at teardown even when a test fails. No
worker runs: the tests write job progress and pages into the database themselves,
exactly where the worker would, and watch the page react.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.records import dossiers
from appliance.store.db import connect
from appliance.system import config as config_mod
from appliance.system.config import Config
from appliance.system.process import stop_process
from tests.helpers.processes import REPO, free_port, http, wait_for
from tests.web.helpers import add_scanned_paper, submitted_dossier, update_job

CHROMIUM = Path("/usr/lib/chromium/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
    pytest.mark.timeout(60),
]
sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Server:
    url: str
    config: Config
    proc: subprocess.Popen[bytes]
    log: Path


def start_server(root: Path, idle_seconds: int, **web: object) -> Server:
    port = free_port()
    config = config_mod.with_overrides(
        Config(), paths={"data_dir": str(root / "data")},
        web={"bind": f"127.0.0.1:{port}", "threads": 4, "idle_reset_seconds": idle_seconds,
             **web},
    )
    toml = root / "appliance.toml"
    toml.write_text(config_mod.dump(config), encoding="utf-8")
    log = root / "web.log"
    env = {**os.environ, config_mod.CONFIG_ENV: str(toml)}
    env.pop("NOTIFY_SOCKET", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.web.server"], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", config, proc, log)
    try:
        wait_for(lambda: http("GET", f"{server.url}/api/health")[0] == 200, 20, "web health")
    except AssertionError:
        stop_server(server)
        raise AssertionError(log.read_text(errors="replace")[-3000:]) from None
    return server


def stop_server(server: Server) -> None:
    stop_process(server.proc, timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("web"), idle_seconds=120)
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN")
    pg = context.new_page()
    pg.set_default_timeout(10000)
    yield pg
    context.close()


@pytest.fixture
def db(server):
    conn = connect(server.config.paths.database)
    yield conn
    conn.close()


def expect(locator):
    return sync_api.expect(locator)


def latest_dossier(conn):
    return dossiers.get(conn, dossiers.list_ids(conn, limit=1)[0])


def test_kiosk_start_dossier_and_language(server, page, db):
    page.goto(f"{server.url}/")
    assert page.url.endswith("/kiosk")
    expect(page.locator("h1")).to_have_text("Xin chào! Bạn cần số hóa giấy tờ cho thủ tục nào?")
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    page.get_by_role("button", name=re.compile("Cấp lại, đổi thẻ BHYT")).click()
    page.locator("#accept").click()
    page.wait_for_url("**/kiosk/dossier")
    d = latest_dossier(db)
    assert d.procedure_code == "cap-lai-the-bhyt"
    expect(page.locator("#dossier-code")).to_have_text(d.code)
    expect(page.get_by_text("Mã hồ sơ", exact=True)).to_be_visible()
    page.locator("a[data-lang=en]").click()
    expect(page.get_by_text("Dossier code", exact=True)).to_be_visible()
    expect(page.locator("#dossier-code")).to_have_text(d.code)
    expect(page.locator("#scan-adf")).to_contain_text("Scan several pages")
    page.locator("a[data-lang=vi]").click()
    expect(page.locator("#scan-adf")).to_contain_text("Quét nhiều trang")


def test_kiosk_scan_progress_jam_and_retry(server, page, db, tmp_path):
    page.goto(f"{server.url}/kiosk")
    page.get_by_role("button", name=re.compile("Đăng ký tham gia")).click()
    page.locator("#accept").click()
    page.wait_for_url("**/kiosk/dossier")
    page.locator("#scan-adf").click()
    expect(page.locator("#job")).to_be_visible()
    expect(page.locator("#scan-flatbed")).to_be_disabled()
    d = latest_dossier(db)
    job_id = db.execute("SELECT id FROM jobs WHERE dossier_id=?", (d.id,)).fetchone()[0]
    update_job(db, job_id, "running", {"step": "scanning", "pages": 2})
    expect(page.locator("#job-message")).to_have_text("Đang quét… đã nhận 2 trang")
    paper_id = add_scanned_paper(db, server.config, d.id, pages=3, blank=(3,))
    update_job(db, job_id, "running", {"step": "reading", "page": 1, "pages": 3})
    expect(page.locator("#job-message")).to_have_text("Đang đọc nội dung trang 1/3…")
    # the worker names the paper it was filling in every progress report, a failed
    # job's included: "scan on" reads it from there, never from timestamps
    update_job(db, job_id, "failed", {"step": "scanning", "pages": 3, "paper_id": paper_id},
               "scanner.jammed")
    expect(page.locator("#job-error")).to_have_text(
        "Giấy bị kẹt trong máy quét. Các trang đã quét vẫn được giữ. "
        "Hãy gỡ tờ giấy bị kẹt rồi bấm “Quét tiếp”.")
    expect(page.locator("#retry")).to_have_text("Quét tiếp")
    expect(page.locator(".thumb img")).to_have_count(3)
    expect(page.locator(".thumb-blank")).to_have_count(1)
    # Polled from Python: wait_for_function compiles a string in the page, which the
    # app's Content-Security-Policy (no 'unsafe-eval') rightly forbids.
    for _ in range(100):
        if page.evaluate("() => Array.from(document.querySelectorAll('.thumb img'))"
                         ".every(i => i.naturalWidth > 0)"):
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("thumbnails did not load")
    shot = tmp_path / "kiosk-dossier.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("WEB_SCREENSHOT_DIR"):
        Path(os.environ["WEB_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, os.environ["WEB_SCREENSHOT_DIR"])
    assert shot.stat().st_size > 10000
    page.locator("#retry").click()
    expect(page.locator("#job")).to_be_visible()
    retry = db.execute("SELECT id, params_json FROM jobs WHERE dossier_id=? ORDER BY id DESC",
                       (d.id,)).fetchone()
    assert f'"paper_id": {paper_id}' in retry["params_json"]
    update_job(db, retry["id"], "done", {"step": "done", "pages": 1, "paper_id": paper_id})
    expect(page.locator("#job-done")).to_have_text("Đã quét xong 1 trang.")
    expect(page.locator("#submit")).to_be_enabled()
    page.locator("#submit").click()
    page.wait_for_url("**/kiosk/dossier/summary")
    page.locator("#confirm-submit").click()
    page.wait_for_url("**/kiosk/receipt")
    expect(page.locator("#receipt-code")).to_have_text(d.code)
    next_step = "Mang bản gốc các giấy tờ vừa quét đến quầy tiếp nhận."
    expect(page.get_by_text(next_step)).to_be_visible()
    assert dossiers.get(db, d.id).status == "submitted"


def test_idle_reset_returns_to_start_and_wipes_session(browser, tmp_path):
    server = start_server(tmp_path, idle_seconds=2)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{server.url}/kiosk?lang=en")
        page.get_by_role("button", name=re.compile("Digitize papers on request")).click()
        page.locator("#accept").click()
        page.wait_for_url("**/kiosk/dossier")
        before = {c["name"]: c["value"] for c in context.cookies()}["session"]
        conn = connect(server.config.paths.database)
        try:
            d = latest_dossier(conn)
            # no touch for 2 s: the page posts the reset itself
            expect(page.locator("#dossier-code")).to_have_count(0, timeout=8000)
            page.wait_for_url(re.compile(r"/kiosk$"))
            expect(page.locator("html")).to_have_attribute("lang", "vi")
            cookies = {c["name"]: c["value"] for c in context.cookies()}
            # The start page's form token opens a fresh session: none of the old one.
            assert "lang" not in cookies and cookies.get("session") != before
            assert page.evaluate("() => fetch('/api/session').then(r => r.json())"
                                 ".then(s => s.dossier_id)") is None
            assert dossiers.get(conn, d.id).status == "cancelled"
            page.goto(f"{server.url}/kiosk/dossier")
            assert page.url.endswith("/kiosk")
        finally:
            conn.close()
    finally:
        context.close()
        stop_server(server)


def test_officer_signs_off(server, page, db):
    dossier_id = submitted_dossier(db, server.config, pages=2, blank=(2,))
    code = dossiers.get(db, dossier_id).code
    page.goto(f"{server.url}/officer")
    page.locator("#waiting tr", has_text=code).get_by_role("link", name="Kiểm tra").click()
    expect(page.locator("#dossier-code")).to_have_text(code)
    expect(page.locator(".fields [data-value]").first).to_have_text("NGUYỄN VĂN AN")
    expect(page.locator(".viewer-img").first).to_be_visible()
    page.locator(".page-link").first.click()
    expect(page.locator("img.full-page")).to_be_visible()
    page.go_back()
    page.locator("#checked").check()
    page.locator("#officer").fill("Nguyễn Văn A")
    page.get_by_role("button", name="Ký xác nhận và cấp mã kết quả số hóa").click()
    page.locator("#sign-yes").click()
    expect(page.locator("#signed-result .result-code")).to_have_text(f"{code}.01")
    expect(page.locator("#delivery")).to_have_text("Đang chờ gửi về trung ương")
    d = dossiers.get(db, dossier_id)
    assert d.status == "signed" and d.signed_by == "Nguyễn Văn A" and d.delivery == "pending"
    page.goto(f"{server.url}/officer")
    expect(page.locator("#signed tr", has_text=code)).to_contain_text("Đang chờ gửi về trung ương")
