"""The technician panel shows `appliance doctor`'s verdicts: the same records the
command prints (`doctor.local_checks`), a translated name and verdict per line, the
command's own detail and next step, and the time of the doctor run for the lines the
web does not look at itself (scanner, broker, database, models).

Through Flask's client for the content, and once in Debian's Chromium against the
real web server (gunicorn), with the certificate `appliance provision` installed
beside the configuration file, for what the technician actually sees.
"""

from __future__ import annotations

import re
import time
from html import unescape
from pathlib import Path

import pytest

from appliance.system import doctor
from appliance.system.config import Config, with_overrides
from appliance.system.doctor import Check, Verdict
from appliance.web import create_app
from tests.system.test_doctor_facts import write_certificate

TECH_PIN = "246813"
TECH = {"X-Technician-PIN": TECH_PIN}
SCANNER = Check("scanner", Verdict.FAIL, "chosen scanner Fujitsu fi-8170 (A1B2C3) not found "
                                         "(0 other device(s))",
                "check the cable and power; or choose another one on the technician panel")


def rows(html: str) -> dict[str, tuple[str, str]]:
    """data-check -> (data-verdict, the row's text) from the #doctor table."""
    table = html.split('id="doctor"', 1)[1].split("</table>", 1)[0]
    found = {}
    for name, verdict, body in re.findall(
            r'<tr data-check="([^"]+)" data-verdict="([^"]+)">(.*?)</tr>', table, re.S):
        found[unescape(name)] = (verdict, " ".join(unescape(re.sub(r"<[^>]+>", " ", body))
                                                   .split()))
    return found


@pytest.fixture
def tech_config(config: Config, tmp_path: Path) -> Config:
    Path(config.paths.data_dir).mkdir(parents=True, exist_ok=True)
    cert = write_certificate(tmp_path / "device.crt", days_left=10)
    return with_overrides(config, web={"technician_pin": TECH_PIN},
                          mqtt={"cert_file": str(cert)})


def test_panel_shows_the_doctor_verdicts_with_next_steps(tech_config):
    client = create_app(tech_config, {"TESTING": True}).test_client()
    before = rows(client.get("/technician", headers=TECH).get_data(as_text=True))
    # Nothing kept yet: the lines the web does not look at say so, in Vietnamese.
    assert before["scanner"][0] == "skip" and "Không kiểm tra" in before["scanner"][1]
    assert "Trang kỹ thuật không tự kiểm tra mục này" in before["scanner"][1]
    assert "Chạy `appliance doctor` trên thiết bị." in before["scanner"][1]
    assert before["disk"][0] == "ok" and "Dung lượng đĩa" in before["disk"][1]

    # The hourly doctor found the chosen scanner gone, 30 minutes ago.
    at = time.time() - 1800
    doctor.save_report(tech_config, [Check("config", Verdict.OK, "valid"), SCANNER], now=at)
    page = client.get("/technician", headers=TECH).get_data(as_text=True)
    found = rows(page)
    verdict, text = found["scanner"]
    assert verdict == "fail"
    assert text.startswith("Máy quét Lỗi")
    assert SCANNER.summary in text and SCANNER.next_step in text
    assert f"kết quả lúc {time.strftime('%Y-%m-%d %H:%M', time.localtime(at))}" in text
    # A certificate expiring in 10 days: a warning with the renewal steps, in Vietnamese,
    # the command and the figures as the command prints them.
    verdict, text = found["certificate"]
    assert verdict == "warn" and "Chứng thư thiết bị Cần chú ý" in text
    assert "sẽ hết hạn sau 10 ngày" in text and "Gia hạn ngay: chạy `appliance provision " \
        "renew`" in text
    # The broker is never dialled in a request.
    assert found["broker"][0] == "skip"
    # Same lines, same order, as the function the CLI and the heartbeat use.
    assert list(found) == [c.name for c in doctor.local_checks(tech_config)]
    overall = re.search(r'id="doctor-verdict" data-verdict="(\w+)"', page)
    assert overall is not None and overall.group(1) == "fail"

    english = client.get("/technician?lang=en", headers=TECH).get_data(as_text=True)
    assert rows(english)["scanner"][1].startswith("Scanner Failed")


def test_only_a_technician_sees_the_doctor(tech_config):
    client = create_app(tech_config, {"TESTING": True}).test_client()
    r = client.get("/technician")
    assert r.status_code == 302 and 'id="doctor"' not in r.get_data(as_text=True)
    r = client.get("/api/technician/doctor")
    assert r.status_code == 403 and r.mimetype == "application/problem+json"


def test_doctor_json_is_what_the_page_shows(tech_config):
    """/api/technician/doctor: what the panel's poll rebuilds the table from."""
    client = create_app(tech_config, {"TESTING": True}).test_client()
    doctor.save_report(tech_config, [SCANNER], now=time.time() - 60)
    data = client.get("/api/technician/doctor", headers=TECH).get_json()
    page = rows(client.get("/technician", headers=TECH).get_data(as_text=True))
    assert [r["name"] for r in data["rows"]] == list(page)
    assert data["verdict"] == "fail" and data["verdict_text"] == "Lỗi"
    scanner = next(r for r in data["rows"] if r["name"] == "scanner")
    assert (scanner["label"], scanner["verdict"], scanner["verdict_text"]) == (
        "Máy quét", "fail", "Lỗi")
    assert scanner["summary"] == SCANNER.summary and scanner["next_step"] == SCANNER.next_step
    assert scanner["as_of_text"] == f"kết quả lúc {scanner['as_of']}"
    for r in data["rows"]:
        assert page[r["name"]][0] == r["verdict"]
        assert page[r["name"]][1].startswith(f"{r['label']} {r['verdict_text']}")
    english = client.get("/api/technician/doctor?lang=en", headers=TECH).get_json()
    assert english["verdict_text"] == "Failed"


# --- in Chromium ---------------------------------------------------------------------

def test_doctor_section_in_chromium(browser, tmp_path):
    from tests.web.test_web_browser import CHROMIUM, start_server, stop_server
    from tests.web.test_web_faces import SMALL, assert_accessible, new_page

    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    pytest.importorskip("playwright.sync_api")
    # What `appliance provision install-cert` leaves beside the configuration file;
    # mqtt.cert_file does not name it, the doctor looks there anyway.
    generation = tmp_path / "tls" / "gen-0001"
    write_certificate(generation / "device.crt", days_left=10)
    (tmp_path / "tls" / "current").symlink_to("gen-0001")
    server = start_server(tmp_path, idle_seconds=120)
    try:
        Path(server.config.paths.data_dir).mkdir(parents=True, exist_ok=True)
        doctor.save_report(server.config, [SCANNER], now=time.time() - 600)
        context, page = new_page(browser, SMALL)
        try:
            page.goto(f"{server.url}/technician")
            assert "Lỗi" in page.locator("#doctor-link").inner_text()  # the top of the panel
            page.click("#doctor-link")
            cert = page.locator("#doctor tr[data-check='certificate']")
            assert cert.get_attribute("data-verdict") == "warn"
            assert "tls/current/device.crt sẽ hết hạn sau 10 ngày" in cert.inner_text()
            scanner = page.locator("#doctor tr[data-check='scanner']")
            assert scanner.is_visible()
            assert "Lỗi" in scanner.inner_text()
            # The word, not only the colour: fail and ok badges differ in both.
            colours = page.evaluate(
                "() => ['fail', 'ok'].map(v => getComputedStyle(document.querySelector("
                "`#doctor tr[data-verdict=${v}] .badge`)).backgroundColor)")
            assert colours[0] != colours[1]
            assert_accessible(page)
            # The technician fixes it and runs the doctor again: the table follows
            # without a reload (the panel polls with its status figures).
            doctor.save_report(server.config, [Check("scanner", Verdict.OK,
                                                     "found as airscan:e0:Office")])
            sync_api = pytest.importorskip("playwright.sync_api")
            sync_api.expect(scanner).to_have_attribute("data-verdict", "ok", timeout=20000)
            assert "found as airscan:e0:Office" in scanner.inner_text()
            assert "Tốt" in scanner.inner_text()
            assert page.locator("#doctor-link-verdict").inner_text() == "Cần chú ý"
        finally:
            context.close()
    finally:
        stop_server(server)
