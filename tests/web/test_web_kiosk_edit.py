"""Kiosk corrections, consent, stale screens, lookup and the officer list, through the
Flask test client (the browser flows are in test_web_faces)."""

from __future__ import annotations

import time

import pytest

from appliance.records import consent, dossiers
from appliance.store import jobs, state
from appliance.store.db import set_state
from appliance.web import create_app
from tests.web.forms import AGREE, page_fields, post_form
from tests.web.helpers import add_job, add_scanned_paper, public_id, submitted_dossier


def open_dossier(client, procedure: str = "tk1-ts") -> int:
    r = post_form(client, "/kiosk/dossiers", {"procedure": procedure, **AGREE},
                  page=f"/kiosk/consent?procedure={procedure}")
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk/dossier")
    with client.session_transaction() as s:
        return int(s["dossier_id"])


def page_ids(conn, dossier_id):
    return [pg.id for p in dossiers.get(conn, dossier_id).papers for pg in p.pages]


def test_no_dossier_without_consent(client, conn):
    page = client.get("/kiosk/consent?procedure=tk1-ts").get_data(as_text=True)
    for text in ("Dữ liệu thu thập", "Mục đích", "Bên kiểm soát dữ liệu", "Quyền của bạn"):
        assert text in page
    r = post_form(client, "/kiosk/dossiers", {"procedure": "tk1-ts"}, follow_redirects=True)
    assert "Cần có sự đồng ý của bạn" in r.get_data(as_text=True)
    assert conn.execute("SELECT COUNT(*) FROM dossiers").fetchone()[0] == 0
    dossier_id = open_dossier(client)
    got = consent.get(conn, dossier_id)
    assert got is not None and got.notice_version == consent.NOTICE_VERSION


def test_a_dossier_with_pages_is_not_dropped_silently(client, conn, config):
    old = open_dossier(client)
    add_scanned_paper(conn, config, old, pages=1)
    page = client.get("/kiosk/consent?procedure=khac").get_data(as_text=True)
    assert 'id="unfinished"' in page and f'name="replace" value="{public_id(conn, old)}"' in page
    # a form without the "replace" the consent screen adds is refused, nothing lost
    r = post_form(client, "/kiosk/dossiers", {"procedure": "khac", **AGREE},
                  follow_redirects=True)
    assert "Bạn đang có hồ sơ chưa gửi" in r.get_data(as_text=True)
    assert dossiers.get(conn, old).status == "open"
    post_form(client, "/kiosk/dossiers", {"procedure": "khac", **AGREE,
                                          "replace": public_id(conn, old)})
    with client.session_transaction() as s:
        assert s["dossier_id"] != old
    assert dossiers.get(conn, old).status == "cancelled"


def test_a_new_procedure_during_a_running_scan_is_refused(client, conn, config):
    old = open_dossier(client)
    add_job(conn, old, "running", {"step": "scanning", "pages": 1})
    r = post_form(client, "/kiosk/dossiers", {"procedure": "khac", **AGREE,
                                          "replace": public_id(conn, old)},
                  follow_redirects=True)
    assert "Máy quét đang xử lý một lượt quét" in r.get_data(as_text=True)
    assert dossiers.get(conn, old).status == "open"


def test_a_new_procedure_withdraws_the_old_queued_scan(client, conn):
    old = open_dossier(client)
    job_id = add_job(conn, old, "queued", {})
    post_form(client, "/kiosk/dossiers", {"procedure": "khac", **AGREE,
                                          "replace": public_id(conn, old)})
    job = jobs.get(conn, job_id)
    assert job is not None and job.state == "failed" and job.error_key == consent.SESSION_ENDED
    assert dossiers.get(conn, old).status == "cancelled"


def test_stale_screen_forms_are_refused(client, conn, config):
    first = open_dossier(client)
    add_scanned_paper(conn, config, first, pages=2)
    stale = page_fields(client, "/kiosk/dossier")  # the screen of the first dossier
    page_id = page_ids(conn, first)[0]
    post_form(client, "/kiosk/dossiers", {"procedure": "khac", **AGREE,
                                          "replace": public_id(conn, first)})
    # the old screen's forms: its token died with the old session...
    r = client.post("/kiosk/dossier/scan", data={**stale, "source": "flatbed"},
                    follow_redirects=True)
    assert "Trang đã hết hạn" in r.get_data(as_text=True)
    # ...and even with a live token, a form naming another dossier is refused
    fresh = {**page_fields(client, "/kiosk/dossier"), "dossier": public_id(conn, first)}
    for path in ("/kiosk/dossier/scan", f"/kiosk/dossier/pages/{page_id}/delete",
                 "/kiosk/dossier/submit", "/kiosk/dossier/scan/withdraw"):
        r = client.post(path, data={**fresh, "source": "flatbed"}, follow_redirects=True)
        assert "Màn hình vừa rồi đã cũ" in r.get_data(as_text=True), path
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    assert len(page_ids(conn, first)) == 2


def test_pages_of_another_dossier_are_not_reachable(client, conn, config):
    other = dossiers.create(conn, config, "khac")
    add_scanned_paper(conn, config, other, pages=1)
    theirs = page_ids(conn, other)[0]
    mine = open_dossier(client)
    add_scanned_paper(conn, config, mine, pages=1)
    assert client.get(f"/kiosk/dossier/pages/{theirs}").status_code == 404
    r = post_form(client, f"/kiosk/dossier/pages/{theirs}/delete", page="/kiosk/dossier")
    assert r.status_code == 404
    assert page_ids(conn, other) == [theirs]


def test_delete_move_and_retake(client, conn, config):
    dossier_id = open_dossier(client)
    add_scanned_paper(conn, config, dossier_id, pages=3)
    a, b, c = page_ids(conn, dossier_id)
    page = client.get(f"/kiosk/dossier/pages/{c}").get_data(as_text=True)
    assert "/image" in page and 'id="retake"' in page
    post_form(client, f"/kiosk/dossier/pages/{c}/move", {"direction": "earlier"},
              page="/kiosk/dossier")
    assert page_ids(conn, dossier_id) == [a, c, b]
    post_form(client, f"/kiosk/dossier/pages/{a}/delete", page="/kiosk/dossier")
    assert page_ids(conn, dossier_id) == [c, b]
    paper_id = dossiers.get(conn, dossier_id).papers[0].id
    post_form(client, f"/kiosk/dossier/pages/{b}/retake", page="/kiosk/dossier")
    assert page_ids(conn, dossier_id) == [c]
    job = jobs.active_for_dossier(conn, dossier_id)
    assert job is not None and job.params["paper_id"] == paper_id
    assert job.params["source"] == "flatbed"
    # while the scan runs, the pages cannot change
    r = post_form(client, f"/kiosk/dossier/pages/{c}/delete", page="/kiosk/dossier",
                  follow_redirects=True)
    assert "Máy quét đang xử lý một lượt quét" in r.get_data(as_text=True)


def test_scan_names_the_paper_on_the_glass(client, conn):
    dossier_id = open_dossier(client)
    post_form(client, "/kiosk/dossier/scan", {"source": "flatbed", "paper": "cccd-back"},
              page="/kiosk/dossier")
    job = jobs.active_for_dossier(conn, dossier_id)
    assert job is not None and job.params["title"] == "Căn cước công dân (mặt sau)"
    jobs.fail(conn, job.id, "x", "")
    r = post_form(client, "/kiosk/dossier/scan", {"source": "flatbed", "paper": "nope"},
                  page="/kiosk/dossier")
    assert r.status_code == 302 and jobs.active_for_dossier(conn, dossier_id) is None


def test_silent_worker_is_said_at_once(client, conn):
    dossier_id = open_dossier(client)
    post_form(client, "/kiosk/dossier/scan", {"source": "flatbed"}, page="/kiosk/dossier")
    set_state(conn, "worker.heartbeat", str(time.time() - 600))
    page = client.get("/kiosk/dossier").get_data(as_text=True)
    assert 'id="worker-down"' in page and 'class="spinner"' not in page
    assert 'id="cancel-ask" disabled' not in page
    job = jobs.active_for_dossier(conn, dossier_id)
    assert client.get(f"/api/jobs/{job.id}").get_json()["stalled"] is True
    post_form(client, "/kiosk/dossier/scan/withdraw", page="/kiosk/dossier")
    assert jobs.active_for_dossier(conn, dossier_id) is None
    r = post_form(client, "/kiosk/dossier/scan", {"source": "flatbed"}, page="/kiosk/dossier",
                  follow_redirects=True)
    assert "Bộ xử lý quét của thiết bị đang không hoạt động" in r.get_data(as_text=True)
    assert jobs.active_for_dossier(conn, dossier_id) is None


def test_summary_receipt_qr_and_lookup(client, conn, config):
    dossier_id = open_dossier(client)
    add_scanned_paper(conn, config, dossier_id, pages=1)
    page = client.get("/kiosk/dossier/summary").get_data(as_text=True)
    assert "Kiểm tra trước khi gửi" in page and 'id="summary-missing"' in page
    r = post_form(client, "/kiosk/dossier/submit", page="/kiosk/dossier/summary",
                  follow_redirects=True)
    page = r.get_data(as_text=True)
    code = dossiers.get(conn, dossier_id).code
    assert '<svg viewBox=' in page and 'class="qr"' in page
    assert 'id="print-receipt"' not in page  # no printer configured: no Print button
    assert 'style=' not in page.split('id="receipt-qr"')[1].split("</figure>")[0]
    other = client.application.test_client()
    found = other.get(f"/kiosk/lookup?code={code}").get_data(as_text=True)
    assert "đang chờ cán bộ đối chiếu" in found and "NGUYỄN" not in found
    assert "Không tìm thấy hồ sơ" in other.get("/kiosk/lookup?code=X-1").get_data(
        as_text=True)


def test_lookup_is_rate_limited(client):
    codes = [client.get(f"/kiosk/lookup?code=A-{n}").status_code for n in range(12)]
    assert codes[:10] == [200] * 10 and 429 in codes[10:]


def test_officer_list_search_count_and_wait(client, conn, config):
    first = submitted_dossier(conn, config)
    second = submitted_dossier(conn, config)
    page = client.get("/officer").get_data(as_text=True)
    assert 'id="waiting-count">2<' in page and 'class="waited"' in page
    code = dossiers.get(conn, second).code
    page = client.get(f"/officer?q={code[-4:]}").get_data(as_text=True)
    assert code in page and dossiers.get(conn, first).code not in page
    page = client.get("/officer?q=%25").get_data(as_text=True)  # LIKE wildcards are text
    assert code not in page


@pytest.fixture
def locked(config):
    return create_app(config, {"TESTING": True, "OFFICER_PIN": "2468"}).test_client()


def test_under_a_pin_the_name_is_optional(locked, conn, config):
    post_form(locked, "/staff/login", {"pin": "2468", "next": "/officer"},
              page="/staff/login?next=/officer")
    dossier_id = submitted_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    assert "không bắt buộc" in locked.get(detail).get_data(as_text=True)
    post_form(locked, f"{detail}/sign", {"officer": "", "checked": "yes"}, page=detail)
    d = dossiers.get(conn, dossier_id)
    assert d.status == "signed" and d.signed_by == f"Cán bộ tiếp nhận ({config.device.id})"


def test_a_refused_retake_keeps_the_page(config, conn):
    """A retake takes the page out, then queues the glass scan: a refusal of that scan
    (the client's scan tokens spent, a scanner without glass) comes before the page is
    taken out, so the page is never lost to it."""
    app = create_app(config, {"TESTING": True, "SCAN_BURST": 1, "SCAN_EVERY_SECONDS": 3600})
    client = app.test_client()
    dossier_id = open_dossier(client)
    add_scanned_paper(conn, config, dossier_id, pages=2)
    a, b = page_ids(conn, dossier_id)
    post_form(client, f"/kiosk/dossier/pages/{b}/retake", page="/kiosk/dossier")
    assert page_ids(conn, dossier_id) == [a]  # the one token: taken out, scan queued
    jobs.finish(conn, jobs.active_for_dossier(conn, dossier_id).id)
    r = post_form(client, f"/kiosk/dossier/pages/{a}/retake", page="/kiosk/dossier")
    assert r.status_code == 429
    assert page_ids(conn, dossier_id) == [a] and jobs.active_for_dossier(conn, dossier_id) is None


def test_a_retake_on_a_scanner_without_glass_keeps_the_page(client, conn, config):
    dossier_id = open_dossier(client)
    add_scanned_paper(conn, config, dossier_id, pages=2)
    state.set_scanner_capabilities(conn, {"sources": ["adf"]})  # a feeder-only scanner
    a, b = page_ids(conn, dossier_id)
    r = post_form(client, f"/kiosk/dossier/pages/{b}/retake", page="/kiosk/dossier")
    assert r.status_code == 302  # back to the page with the refusal, not a 500
    assert page_ids(conn, dossier_id) == [a, b]
    assert jobs.active_for_dossier(conn, dossier_id) is None
