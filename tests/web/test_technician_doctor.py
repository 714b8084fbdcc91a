"""The technician panel shows `appliance doctor`'s verdicts: the same records the
command prints (`doctor.local_checks`), a translated name and verdict per line, the
command's own detail and next step, and the time of the doctor run for the lines the
web does not look at itself (scanner, broker, database, models).

Through Flask's client for the content, and once in Debian's Chromium against the
real web server (gunicorn), with the certificate `appliance provision` installed
beside the configuration file, for what the technician actually sees.
"""

from __future__ import annotations

import json
import re
import socket
import time
from html import unescape
from pathlib import Path

import pytest

from appliance.system import doctor
from appliance.system.config import Config, with_overrides
from appliance.system.doctor import Check, Verdict
from appliance.web import create_app, i18n
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


# --- summaries and next steps in the session's language ------------------------------

TABLES = {lang: json.loads((i18n.TRANSLATIONS_DIR / f"{lang}.json").read_text("utf-8"))
          for lang in i18n.LANGUAGES}


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_check_reads_in_vietnamese_and_in_english(tech_config):
    """A real failure (the disk below its threshold, looked at in the request) and a
    real one from the last doctor round (the broker unreachable): Vietnamese text with
    the figures, paths and commands as printed; English for lang=en; the command's own
    English beside it."""
    config = with_overrides(tech_config, health={"disk_fail_mb": 10**9,
                                                 "disk_warn_mb": 10**9})
    client = create_app(config, {"TESTING": True}).test_client()
    unreachable = doctor.check_broker(with_overrides(
        config, mqtt={"host": "127.0.0.1", "port": dead_port(), "tls": False}))
    assert unreachable.verdict is Verdict.WARN and unreachable.summary_msg is not None
    doctor.save_report(config, [unreachable], now=time.time() - 600)
    data = client.get("/api/technician/doctor", headers=TECH).get_json()
    got = {r["name"]: r for r in data["rows"]}
    disk = got["disk"]
    probe = config.paths.data_dir
    assert disk["verdict"] == "fail" and disk["verdict_text"] == "Lỗi"
    assert re.fullmatch(rf"Còn trống \d+ MB trên {re.escape(str(probe))} "
                        rf"\(dưới ngưỡng {10**9} MB\)", disk["summary"]), disk["summary"]
    assert disk["next_step"] == TABLES["vi"]["tech.doctor.next.disk.free_now"]
    assert disk["next_step"].startswith("Giải phóng dung lượng ngay")
    assert "`journalctl --vacuum-size=100M`" in disk["next_step"]  # the command, literal
    assert (disk["summary_lang"], disk["next_step_lang"]) == ("vi", "vi")
    assert disk["summary_en"].endswith(f"MB free on {probe} (below {10**9} MB)")
    assert disk["next_step_en"].startswith("free space now: check the broker link")
    broker = got["broker"]
    port = unreachable.summary_msg.args["address"]
    assert broker["summary"].startswith(f"Không kết nối được {port}: ")
    assert broker["next_step"] == TABLES["vi"]["tech.doctor.next.broker.link"]
    assert broker["as_of_text"].startswith("kết quả lúc ")
    assert broker["summary_en"] == unreachable.summary
    # The certificate expiring in 10 days, and the page says the same as the JSON.
    cert = got["certificate"]
    assert cert["summary"].endswith("sẽ hết hạn sau 10 ngày")
    page = rows(client.get("/technician", headers=TECH).get_data(as_text=True))
    # Free space is looked at again for the page, and other processes write meanwhile:
    # the figure may move by a megabyte, the words may not.
    def figureless(text: str) -> str:
        return re.sub(r"Còn trống \d+ MB", "Còn trống N MB", text)
    assert figureless(disk["summary"]) in figureless(page["disk"][1])
    assert disk["next_step"] in page["disk"][1]
    assert broker["next_step"] in page["broker"][1]

    english = {r["name"]: r for r in client.get("/api/technician/doctor?lang=en",
                                                headers=TECH).get_json()["rows"]}
    assert re.fullmatch(rf"\d+ MB free on {re.escape(str(probe))} \(below {10**9} MB\)",
                        english["disk"]["summary"])
    assert english["disk"]["next_step"] == TABLES["en"]["tech.doctor.next.disk.free_now"]
    assert english["disk"]["next_step"] != disk["next_step"]
    assert english["broker"]["summary"].startswith(f"{port} unreachable: ")
    assert (english["disk"]["summary_lang"], english["disk"]["next_step_lang"]) == ("en", "en")
    assert english["certificate"]["summary"].endswith("expires in 10 day(s)")


def test_an_old_report_without_keys_shows_the_commands_english(tech_config):
    """doctor/report.json as a release before the keys saved it: the lines load and read
    in English (marked as English), never blank; a key this build lacks, or one without
    the arguments its text needs, falls back the same way."""
    at = time.time() - 3600
    report = doctor.report_path(tech_config)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"at": at, "checks": [
        {"name": "config", "verdict": "ok", "summary": "valid", "next_step": "",
         "as_of": None},
        {"name": "scanner", "verdict": "fail", "summary": SCANNER.summary,
         "next_step": SCANNER.next_step, "as_of": None},
        {"name": "broker", "verdict": "warn", "summary": "10.0.0.5:8883 unreachable: timed out",
         "next_step": "check the office's Internet link and firewall; records wait safely",
         "summary_key": "tech.doctor.summary.from_a_newer_release", "summary_args": {},
         "next_key": "tech.doctor.next.broker.link", "next_args": {}},
        {"name": "models", "verdict": "fail", "summary": "model file x.onnx missing",
         "next_step": "reinstall the models",
         "summary_key": "tech.doctor.summary.models.problem", "summary_args": {}},
    ]}), encoding="utf-8")
    client = create_app(tech_config, {"TESTING": True}).test_client()
    data = client.get("/api/technician/doctor", headers=TECH).get_json()
    got = {r["name"]: r for r in data["rows"]}
    scanner = got["scanner"]
    assert (scanner["label"], scanner["verdict_text"]) == ("Máy quét", "Lỗi")
    assert (scanner["summary"], scanner["next_step"]) == (SCANNER.summary, SCANNER.next_step)
    assert (scanner["summary_lang"], scanner["next_step_lang"]) == ("en", "en")
    assert scanner["as_of_text"] == (
        f"kết quả lúc {time.strftime('%Y-%m-%d %H:%M', time.localtime(at))}")
    broker = got["broker"]
    assert broker["summary"] == "10.0.0.5:8883 unreachable: timed out"  # unknown key
    assert broker["summary_lang"] == "en"
    assert broker["next_step"] == TABLES["vi"]["tech.doctor.next.broker.link"]  # known key
    models = got["models"]  # a known key without the {error} its text needs
    assert (models["summary"], models["summary_lang"]) == ("model file x.onnx missing", "en")
    assert models["next_step"] == "reinstall the models"
    for r in data["rows"]:
        assert r["summary"].strip(), r
        assert "{" not in r["summary"] + r["next_step"], r
        if r["verdict"] in ("warn", "fail"):
            assert r["next_step"].strip(), r
    html = client.get("/technician", headers=TECH).get_data(as_text=True)
    row = html.split('<tr data-check="scanner"', 1)[1].split("</tr>", 1)[0]
    assert '<td lang="en">' in row and unescape(SCANNER.summary) in unescape(row)
    assert SCANNER.next_step in unescape(row)
