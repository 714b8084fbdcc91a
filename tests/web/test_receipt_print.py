"""The receipt is printed by the server through a real CUPS queue, never by the browser.

The design (issue 14's kiosk policy against issue 11's "printed when a printer is
configured"): the kiosk browser keeps PrintingEnabled=false, so no print dialog ever
opens over the kiosk; the receipt's Print button posts to the server, which renders a
PDF (the dossier code as text, and a QR at the top left with what Circular
01/2023 asks of a receipt) and runs `lp -d <printer.queue>`; without
a configured queue the button is not there. Debian's cupsd runs here in a temporary
folder (tests/helpers/cups.py) with one queue whose backend keeps what a printer
would have received, which the test reads back: the page rendered by pdftoppm, the
code decoded from its QR by zxing-cpp.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest

from appliance.records import dossiers
from appliance.store.db import connect
from appliance.system.config import Config, with_overrides
from appliance.web import create_app
from tests.helpers.cups import CUPSD, start_cups
from tests.helpers.processes import wait_for
from tests.web.helpers import add_scanned_paper, row_id

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not CUPSD.exists(),
                                reason="cups-daemon is not installed (apt-test.txt)")


@pytest.fixture(scope="module")
def cups():
    c = start_cups()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def cups_env(cups, monkeypatch):
    """`lp` in the web process reaches the test's cupsd, as it reaches the system's
    /run/cups/cups.sock on a device."""
    for name, value in cups.env.items():
        monkeypatch.setenv(name, value)
    return cups


def receipt_client(config: Config):
    """A kiosk session holding a just-submitted dossier's receipt, and its code."""
    client = create_app(config, {"TESTING": True}).test_client()
    created = client.post("/api/dossiers", json={"procedure": "khac"}).get_json()
    conn = connect(config.paths.database)
    try:
        add_scanned_paper(conn, config, row_id(conn, created["id"]), pages=2)
    finally:
        conn.close()
    token = client.get("/api/session").get_json()["csrf_token"]
    r = client.post(f"/api/dossiers/{created['id']}/submit", headers={"X-CSRFToken": token})
    assert r.status_code == 200, r.get_json()
    return client, created["code"]


def press_print(client):
    page = client.get("/kiosk/receipt").get_data(as_text=True)
    token = re.search(r'id="print-form"><input type="hidden" name="csrf_token" '
                      r'value="([^"]+)"', page).group(1)
    return client.post("/kiosk/receipt/print", data={"csrf_token": token})


def test_print_button_sends_the_receipt_pdf_with_code_and_qr_to_the_cups_queue(
        config, cups_env, tmp_path):
    cups = cups_env
    printing = with_overrides(config, printer={"queue": cups.queue, "copies_per_receipt": 2})
    client, code = receipt_client(printing)
    page = client.get("/kiosk/receipt").get_data(as_text=True)
    assert 'id="print-receipt"' in page
    before = len(cups.jobs())
    r = press_print(client)
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk/receipt")
    page = client.get("/kiosk/receipt").get_data(as_text=True)
    assert "Đã gửi phiếu tới máy in" in page
    job = wait_for(lambda: len(cups.jobs()) > before and cups.jobs()[-1], 20,
                   "the receipt in the CUPS queue's output")
    pdf = job.read_bytes()
    assert pdf.startswith(b"%PDF")
    (tmp_path / "receipt.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile",
                    str(tmp_path / "receipt.pdf"), str(tmp_path / "page")], check=True)
    import zxingcpp
    from PIL import Image

    rendered = Image.open(tmp_path / "page.png")
    [qr] = zxingcpp.read_barcodes(rendered)
    # Circular 01/2023: at the top left, with the dossier code, the procedure, the
    # applicant, the document's name, the issuing system and the time it was issued.
    assert qr.position.top_left.x < rendered.width / 3
    assert qr.position.top_left.y < rendered.height / 4
    (prefix, version, dossier_code, procedure, applicant, document, system, issued,
     appointment) = qr.text.split("|")
    assert (prefix, version, dossier_code, procedure) == ("BHXHBN", "1", code, "khac")
    assert document == "Phiếu biên nhận hồ sơ số hóa"
    device = printing.device
    assert system == f"{device.agency_name} ({device.agency_code}), {device.id}"
    assert issued.endswith("+07:00")
    assert abs(datetime.fromisoformat(issued).timestamp() - time.time()) < 120
    conn = connect(printing.paths.database)
    try:
        read = [p.fields["values"].get("cccd") for p in dossiers.get(
            conn, conn.execute("SELECT id FROM dossiers WHERE code=?",
                               (code,)).fetchone()[0]).papers]
    finally:
        conn.close()
    assert applicant in read and len(applicant) == 12  # the CCCD read on the papers
    assert appointment == ""  # the counter gives the appointment, not the kiosk
    assert unicodedata.is_normalized("NFC", qr.text)
    # lp named the job after the receipt (the job's title in the queue's log)
    log = subprocess.run(["lpstat", "-W", "completed", "-o", cups.queue], env={
        **cups.env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True).stdout
    assert log.strip(), cups.log()
    # a second tap prints one more copy, a third none
    assert press_print(client).status_code == 302
    wait_for(lambda: len(cups.jobs()) == before + 2, 20, "the second copy")
    press_print(client)
    page = client.get("/kiosk/receipt").get_data(as_text=True)
    assert "Phiếu này đã được in rồi" in page
    assert len(cups.jobs()) == before + 2
    assert not list((Path(printing.paths.data_dir) / "print").iterdir())  # nothing left


def test_without_a_printer_there_is_no_print_button(config, cups_env):
    client, _ = receipt_client(config)
    page = client.get("/kiosk/receipt").get_data(as_text=True)
    assert 'id="print-receipt"' not in page and "print-form" not in page
    token = client.get("/api/session").get_json()["csrf_token"]
    r = client.post("/kiosk/receipt/print", data={"csrf_token": token})
    assert r.status_code == 404


def test_a_printer_that_fails_is_a_notice_on_the_receipt(config, cups_env):
    before = len(cups_env.jobs())
    broken = with_overrides(config, printer={"queue": "no-such-queue"})
    client, code = receipt_client(broken)
    r = press_print(client)
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk/receipt")
    page = client.get("/kiosk/receipt").get_data(as_text=True)
    assert "Chưa in được phiếu" in page and code in page
    missing = with_overrides(config, printer={"queue": "receipt",
                                               "command": "/nonexistent/lp {file}"})
    client, _ = receipt_client(missing)
    press_print(client)
    assert "cups-client" in client.get("/kiosk/receipt").get_data(as_text=True)
    assert len(cups_env.jobs()) == before


def test_the_kiosk_browser_itself_never_prints():
    policy = json.loads((REPO / "provisioning/kiosk/appliance-kiosk.json").read_text("utf-8"))
    assert policy["PrintingEnabled"] is False
    script = (REPO / "appliance/web/static/kiosk.js").read_text("utf-8")
    assert "window.print" not in script


# --- in Chromium, against gunicorn with a printer configured --------------------------
CHROMIUM_PRESENT = Path("/usr/lib/chromium/chromium").exists()


@pytest.fixture(scope="module")
def printing_server(cups, tmp_path_factory):
    """The web server as `appliance web` runs it, its `lp` pointed at the test's cupsd."""
    import os

    from appliance.system import config as config_mod
    from tests.helpers.processes import Processes, free_port, http

    tmp = tmp_path_factory.mktemp("printing")
    port = free_port()
    config = with_overrides(Config(), paths={"data_dir": str(tmp / "data")},
                            web={"bind": f"127.0.0.1:{port}"},
                            printer={"queue": cups.queue})
    toml = tmp / "appliance.toml"
    toml.write_text(config_mod.dump(config), encoding="utf-8")
    (tmp / "logs").mkdir()
    env = {**os.environ, config_mod.CONFIG_ENV: str(toml), **cups.env}
    env.pop("NOTIFY_SOCKET", None)
    procs = Processes(tmp / "logs", env)
    try:
        procs.start("web", "web")
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http("GET", f"{base}/api/health")[0] == 200, 30, "the web server")
        yield base, config
    finally:
        procs.stop_all()


@pytest.mark.skipif(not CHROMIUM_PRESENT, reason="Debian chromium is not installed")
@pytest.mark.parametrize("viewport", [{"width": 800, "height": 480},
                                      {"width": 1920, "height": 1080}],
                         ids=["800x480", "1920x1080"])
def test_print_button_on_the_receipt_screen_prints_through_cups(
        browser, printing_server, cups, tmp_path, viewport):
    from tests.web.test_web_faces import (
        assert_accessible,
        assert_on_screen,
        assert_touch_targets,
        new_page,
        shot,
    )

    base, config = printing_server
    context, page = new_page(browser, viewport)
    try:
        page.goto(f"{base}/kiosk")
        token = page.request.get(f"{base}/api/session").json()["csrf_token"]
        created = page.request.post(f"{base}/api/dossiers", data={"procedure": "khac"},
                                    headers={"X-CSRFToken": token, "Origin": base}).json()
        conn = connect(config.paths.database)
        try:
            add_scanned_paper(conn, config, row_id(conn, created["id"]), pages=1)
        finally:
            conn.close()
        token = page.request.get(f"{base}/api/session").json()["csrf_token"]
        r = page.request.post(f"{base}/api/dossiers/{created['id']}/submit",
                              headers={"X-CSRFToken": token, "Origin": base})
        assert r.ok, r.text()
        page.goto(f"{base}/kiosk/receipt")
        assert_on_screen(page, "#print-receipt")
        assert_touch_targets(page)
        assert_accessible(page)
        before = len(cups.jobs())
        page.locator("#print-receipt").click()
        page.wait_for_url("**/kiosk/receipt")
        notice = page.locator(".notice-ok")
        assert notice.inner_text() == "Đã gửi phiếu tới máy in. Hãy lấy phiếu ở máy in."
        wait_for(lambda: len(cups.jobs()) > before, 20, "the printed receipt")
        assert cups.jobs()[-1].read_bytes().startswith(b"%PDF")
        size = f"{viewport['width']}x{viewport['height']}"
        shot(page, f"kiosk-receipt-printed-{size}", tmp_path)
        assert_on_screen(page, "#done")
    finally:
        context.close()
