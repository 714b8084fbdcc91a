"""Scan controls on the screens: stop a scan, one-tap presets, the dead-letter count.

A scan is stopped through the job queue's own verb (`jobs.request_cancel`): a queued
job fails at once with `scanner.cancelled`, a running one is flagged for the worker to
stop at the next page boundary (the test plays the worker with `jobs.claim_next`). The
presets the web offers are names it keeps itself (the web never imports the scanner),
so one test holds them equal to the scanner's.
"""

from __future__ import annotations

import os
import re
import unicodedata

import pytest

from appliance import status
from appliance.scanner import settings as scanner_settings
from appliance.scanner.errors import ScannerCancelled
from appliance.store import jobs, outbox
from appliance.web import create_app, i18n, usecases
from tests.web.forms import AGREE, post_form
from tests.web.helpers import public_id

PIN = "80413579"
STALE = "Màn hình vừa rồi đã cũ"


def html(response) -> str:
    text = response.get_data(as_text=True)
    assert unicodedata.normalize("NFC", text) == text
    return text


def start_dossier(client) -> int:
    r = post_form(client, "/kiosk/dossiers", data={"procedure": "tk1-ts", **AGREE})
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk/dossier")
    with client.session_transaction() as s:
        return int(s["dossier_id"])


def queue_scan(client, conn, **data: str) -> jobs.Job:
    r = post_form(client, "/kiosk/dossier/scan", page="/kiosk/dossier",
                  data={"source": "flatbed", **data})
    assert r.status_code == 302, html(r)
    job_id = conn.execute("SELECT MAX(id) FROM jobs").fetchone()[0]
    job = jobs.get(conn, job_id)
    assert job is not None and job.state == jobs.JobState.QUEUED
    return job


def stop_form(page: str) -> dict[str, str]:
    """The hidden fields of the screen's "stop scanning" form."""
    form = re.search(r'<form method="post" action="/kiosk/dossier/scan/stop".*?</form>',
                     page, re.S)
    assert form, "no stop form on the screen"
    return dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(0)))


# -- 1. stop scanning -----------------------------------------------------------------
def test_a_queued_scan_is_stopped_from_the_kiosk_and_said_as_a_notice(client, conn):
    start_dossier(client)
    job = queue_scan(client, conn)
    page = html(client.get("/kiosk/dossier"))
    assert 'id="stop-scan"' in page and "Dừng quét" in page
    fields = stop_form(page)
    assert fields["csrf_token"] and fields["job"] == str(job.id)

    r = client.post("/kiosk/dossier/scan/stop", data=fields)
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk/dossier")
    done = jobs.get(conn, job.id)
    assert done.state == jobs.JobState.FAILED and done.error_key == "scanner.cancelled"

    page = html(client.get("/kiosk/dossier"))
    # a notice, not the error panel with its retry and "ask an officer"
    assert 'id="job-stopped"' in page and "notice-info" in page
    assert "Đã dừng quét. Các trang đã quét được giữ lại." in page
    assert 'id="job-failed"' not in page and 'id="stop-scan"' not in page
    assert 'id="scan-flatbed" disabled' not in page  # a new scan can start at once
    en = html(client.get("/kiosk/dossier?lang=en"))
    assert "Scanning stopped. The pages already scanned are kept." in en


def test_a_running_scan_is_flagged_and_the_worker_stops_at_the_page(client, conn):
    start_dossier(client)
    job = queue_scan(client, conn)
    claimed = jobs.claim_next(conn, os.getpid())  # the worker took it
    assert claimed is not None and claimed.id == job.id
    fields = stop_form(html(client.get("/kiosk/dossier")))
    assert client.post("/kiosk/dossier/scan/stop", data=fields).status_code == 302

    assert jobs.cancel_requested(conn, job.id)
    assert jobs.get(conn, job.id).state == jobs.JobState.RUNNING  # until the page ends
    page = html(client.get("/kiosk/dossier"))
    assert 'id="stopping"' in page and 'id="stop-scan"' not in page
    # a second tap (a stale screen) changes nothing and fails nothing
    assert client.post("/kiosk/dossier/scan/stop", data=fields).status_code == 302

    # the worker stops at the page boundary and fails the job with the scanner's key
    jobs.fail(conn, job.id, ScannerCancelled.key, "cancelled")
    page = html(client.get("/kiosk/dossier"))
    assert 'id="job-stopped"' in page and 'id="job-failed"' not in page


def test_stop_reaches_only_the_citizens_own_scan(app, conn):
    alice, bob = app.test_client(), app.test_client()
    start_dossier(alice)
    job = queue_scan(alice, conn)
    start_dossier(bob)
    alice_fields = stop_form(html(alice.get("/kiosk/dossier")))
    bob_token = re.search(r'name="csrf_token" value="([^"]+)"',
                          html(bob.get("/kiosk/dossier"))).group(1)
    bob_fields = {**alice_fields, "csrf_token": bob_token}

    # Bob names Alice's dossier: refused as a stale screen
    r = bob.post("/kiosk/dossier/scan/stop", data=bob_fields, follow_redirects=True)
    assert STALE in html(r)
    assert jobs.get(conn, job.id).state == jobs.JobState.QUEUED
    # Bob names his own dossier and Alice's job: his dossier has no scan, nothing stops
    own = {**bob_fields, "dossier": public_id(conn, _session_dossier(bob))}
    bob.post("/kiosk/dossier/scan/stop", data=own)
    assert jobs.get(conn, job.id).state == jobs.JobState.QUEUED
    # without the CSRF token, nothing happens either
    no_token = {k: v for k, v in alice_fields.items() if k != "csrf_token"}
    r = alice.post("/kiosk/dossier/scan/stop", data=no_token)
    assert r.status_code in (302, 400)
    assert jobs.get(conn, job.id).state == jobs.JobState.QUEUED
    # an earlier job's id (a stale screen) does not stop the current one
    stale = {**alice_fields, "job": str(job.id + 1000)}
    r = alice.post("/kiosk/dossier/scan/stop", data=stale, follow_redirects=True)
    assert STALE in html(r)
    assert jobs.get(conn, job.id).state == jobs.JobState.QUEUED


def _session_dossier(client) -> int:
    with client.session_transaction() as s:
        return int(s["dossier_id"])


def test_the_cancelled_key_reads_in_both_languages():
    tr = i18n.Translations.load()
    assert tr.text("vi", "scanner.cancelled") == "Đã dừng quét. Các trang đã quét được giữ lại."
    assert tr.text("en", "scanner.cancelled") == (
        "Scanning stopped. The pages already scanned are kept.")
    assert ScannerCancelled.key == usecases.SCAN_CANCELLED


# -- 2. one-tap presets ---------------------------------------------------------------
def test_web_preset_names_are_the_scanners():
    assert set(usecases.PRESET_SOURCES) == set(scanner_settings.PRESETS)
    assert set(usecases.STAFF_PRESETS) == set(scanner_settings.PRESETS)
    assert set(usecases.KIOSK_PRESETS) == {"a4_form", "cccd"}
    assert usecases.KIOSK_PRESETS[0] == usecases.DEFAULT_PRESET == "a4_form"
    for name, p in scanner_settings.PRESETS.items():
        assert p.label_key == f"scanner.preset.{name}"
        # the web's source for the preset is where the scanner takes the paper from
        feeder = usecases.PRESET_SOURCES[name] == "adf"
        assert feeder == p.settings.source.feeder, name


def test_kiosk_offers_the_glass_presets_and_the_choice_reaches_the_job(client, conn):
    start_dossier(client)
    page = html(client.get("/kiosk/dossier"))
    offered = re.findall(r'name="preset" value="(\w+)"( checked)?', page)
    assert offered == [("a4_form", " checked"), ("cccd", "")]
    assert "Tờ khai A4 (mặt kính)" in page and "Thẻ CCCD" in page

    job = queue_scan(client, conn, preset="cccd")
    assert job.params["preset"] == "cccd" and job.params["source"] == "flatbed"
    jobs.request_cancel(conn, job.id, "scanner.cancelled")
    # the feeder button takes the plain feeder batch, whatever the glass choice
    job = queue_scan(client, conn, source="adf", preset="cccd")
    assert "preset" not in job.params and job.params["source"] == "adf"
    jobs.request_cancel(conn, job.id, "scanner.cancelled")
    # a staff preset is not the citizen's: refused, nothing queued
    before = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    r = post_form(client, "/kiosk/dossier/scan", page="/kiosk/dossier",
                  data={"source": "flatbed", "preset": "duplex"}, follow_redirects=True)
    assert "Không dùng được cách quét này" in html(r)
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == before
    assert "ID card (CCCD)" in html(client.get("/kiosk/dossier?lang=en"))


def test_retry_after_a_fault_keeps_the_preset(client, conn):
    start_dossier(client)
    job = queue_scan(client, conn, preset="cccd")
    jobs.claim_next(conn, os.getpid())
    jobs.fail(conn, job.id, "scanner.cover_open", "cover")
    page = html(client.get("/kiosk/dossier"))
    assert 'id="job-failed"' in page
    assert '<input type="hidden" name="preset" value="cccd">' in page


def test_api_presets_by_role(config, conn):
    app = create_app(config, {"TESTING": True, "OFFICER_PIN": PIN})
    citizen = app.test_client()

    def post(path: str, body: dict | None = None):
        token = citizen.get("/api/session").get_json()["csrf_token"]
        return citizen.post(path, json=body, headers={"X-CSRFToken": token})

    dossier_id = post("/api/dossiers", {"procedure": "tk1-ts"}).get_json()["id"]
    scans = f"/api/dossiers/{dossier_id}/scans"
    r = post(scans, {"source": "adf", "preset": "duplex"})
    assert r.status_code == 400 and r.get_json()["error"] == "error.bad_preset"
    r = post(scans, {"source": "adf", "preset": "cccd"})  # an ID card lies on the glass
    assert r.status_code == 400 and r.get_json()["error"] == "error.bad_preset"
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    r = post(scans, {"source": "flatbed", "preset": "cccd"})
    assert r.status_code == 202
    job_id = r.get_json()["job_id"]
    assert jobs.get(conn, job_id).params["preset"] == "cccd"

    # the citizen stops its own scan through the API too
    r = post(f"/api/jobs/{job_id}/cancel")
    assert r.status_code == 200
    assert r.get_json()["state"] == "failed"
    assert r.get_json()["error_key"] == "scanner.cancelled"

    # an officer has the feeder presets as well
    officer = app.test_client(use_cookies=False)
    r = officer.post(f"/api/dossiers/{dossier_id}/scans", headers={"X-Officer-PIN": PIN},
                     json={"source": "adf", "preset": "duplex"})
    assert r.status_code == 202
    job_id = r.get_json()["job_id"]
    assert jobs.get(conn, job_id).params == {
        "source": "adf", "preset": "duplex", "title": jobs.get(conn, job_id).params["title"]}
    # nobody else may stop it
    stranger = app.test_client(use_cookies=False)
    assert stranger.post(f"/api/jobs/{job_id}/cancel").status_code == 403
    assert jobs.get(conn, job_id).state == jobs.JobState.QUEUED
    r = officer.post(f"/api/jobs/{job_id}/cancel", headers={"X-Officer-PIN": PIN})
    assert r.status_code == 200 and r.get_json()["error_key"] == "scanner.cancelled"


# -- 4. the dead-letter counter ------------------------------------------------------
def test_status_and_technician_show_the_sync_dead_letters(client, conn, config):
    assert status.snapshot(conn, config)["sync_dead_letters"] == 0
    assert client.get("/api/status").get_json()["sync_dead_letters"] == 0
    for kind in (outbox.DeadLetterKind.FORGED, outbox.DeadLetterKind.MALFORMED):
        outbox.put_dead_letter(conn, "bhxh/ack", kind, "test", b"{}")
    snap = status.snapshot(conn, config)
    assert snap["sync_dead_letters"] == 2 and isinstance(snap["sync_dead_letters"], int)
    assert client.get("/api/status").get_json()["sync_dead_letters"] == 2
    page = html(client.get("/technician"))
    assert re.search(r"Tin đồng bộ bị loại[^<]*</th><td>2</td>", page)
    assert "Sync messages set aside" in html(client.get("/technician?lang=en"))


@pytest.mark.parametrize("value", ["", "x"])
def test_a_broken_dead_letter_counter_reads_as_zero(conn, config, value):
    from appliance.store.db import set_state

    set_state(conn, outbox.DEAD_LETTER_STATE_KEY, value)
    assert status.snapshot(conn, config)["sync_dead_letters"] == 0


# -- 1 and 3 in Chromium: the stop button, and no browser menu on the kiosk -------------
@pytest.mark.timeout(120)
def test_kiosk_in_chromium_stops_a_scan_and_cancels_the_context_menu(tmp_path):
    from tests.web.test_web_browser import (
        CHROMIUM,
        CHROMIUM_ARGS,
        latest_dossier,
        start_server,
        stop_server,
    )

    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    from appliance.store.db import connect

    server = start_server(tmp_path, idle_seconds=120)
    db = connect(server.config.paths.database)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 800, "height": 480})
                page.set_default_timeout(10000)
                page.goto(f"{server.url}/kiosk?lang=vi")
                page.locator("button[data-procedure=tk1-ts]").click()
                page.wait_for_url(re.compile(r"/kiosk/consent"))
                page.locator("#accept").click()
                page.wait_for_url("**/kiosk/dossier")
                page.wait_for_load_state("load")

                # the kiosk's script cancels the browser's menu (no inline script: a file)
                assert page.evaluate(
                    "() => document.dispatchEvent(new MouseEvent('contextmenu', "
                    "{cancelable: true}))") is False
                page.evaluate("() => window.addEventListener('contextmenu', e => "
                              "{ window.__menu = e.defaultPrevented; })")
                page.mouse.click(200, 200, button="right")
                assert page.evaluate("() => window.__menu") is True

                # the one-tap preset: the default is the A4 form, the ID card one tap away
                expect = sync_api.expect
                expect(page.locator("input[name=preset][value=a4_form]")).to_be_checked()
                page.locator("label.choice-preset", has_text="Thẻ CCCD").click()
                page.locator("#scan-flatbed").click()
                page.wait_for_load_state("load")
                stop = page.locator("#stop-scan")
                expect(stop).to_be_visible()
                expect(stop).to_have_text("Dừng quét")
                d = latest_dossier(db)
                job = jobs.active_for_dossier(db, d.id)
                assert job is not None and job.params["preset"] == "cccd"

                stop.click()
                expect(page.locator("#job-stopped")).to_contain_text("Đã dừng quét")
                expect(page.locator("#job-failed")).to_have_count(0)
                done = jobs.get(db, job.id)
                assert done.state == jobs.JobState.FAILED
                assert done.error_key == "scanner.cancelled"
                expect(page.locator("#scan-flatbed")).to_be_enabled()
            finally:
                browser.close()
    finally:
        db.close()
        stop_server(server)
