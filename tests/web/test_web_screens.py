"""Kiosk, officer and technician screens through the Flask test client."""

from __future__ import annotations

import re
import unicodedata

from appliance.records import dossiers
from appliance.store.db import set_state
from tests.web.forms import AGREE, post_form
from tests.web.helpers import add_job, add_scanned_paper, public_id, submitted_dossier


def html(response) -> str:
    text = response.get_data(as_text=True)
    assert unicodedata.normalize("NFC", text) == text
    return text


def start_dossier(client, procedure: str = "tk1-ts") -> None:
    r = post_form(client, "/kiosk/dossiers", data={"procedure": procedure, **AGREE})
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk/dossier")


def session_dossier(client) -> int | None:
    with client.session_transaction() as s:
        return s.get("dossier_id")


def test_root_redirects_to_kiosk(client):
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk")


def test_start_screen_vietnamese_first(client):
    page = html(client.get("/kiosk"))
    assert '<html lang="vi">' in page
    assert "Bạn cần số hóa giấy tờ cho thủ tục nào?" in page
    assert "Cấp lại, đổi thẻ BHYT" in page
    assert page.count('class="btn btn-procedure"') == 4
    assert "Hãy hỏi cán bộ tại quầy tiếp nhận" in page
    assert 'data-idle-seconds="120"' in page


def test_language_toggle_and_cookie(client):
    page = html(client.get("/kiosk?lang=en"))
    assert '<html lang="en">' in page and "Which procedure" in page
    assert "lang=en" in client.get("/kiosk?lang=en").headers["Set-Cookie"]
    assert "Which procedure" in html(client.get("/kiosk"))  # remembered by the cookie
    assert "Bạn cần" in html(client.get("/kiosk?lang=vi"))


def test_choose_procedure_opens_a_dossier(client, conn):
    start_dossier(client)
    dossier_id = session_dossier(client)
    d = dossiers.get(conn, dossier_id)
    page = html(client.get("/kiosk/dossier"))
    assert "Mã hồ sơ" in page and d.code in page
    assert "Quét một trang" in page and "Quét nhiều trang" in page
    assert 'id="submit" disabled' in page


def test_unknown_procedure_is_refused(client, conn):
    r = post_form(client, "/kiosk/dossiers", data={"procedure": "x", **AGREE},
                  follow_redirects=True)
    assert "Không có thủ tục này" in html(r)
    assert conn.execute("SELECT COUNT(*) FROM dossiers").fetchone()[0] == 0


def test_dossier_screen_requires_a_session(client, conn, config):
    other = dossiers.create(conn, config, "khac")
    r = client.get("/kiosk/dossier")
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk")
    assert other  # a dossier exists, yet nobody reaches it without its session


def test_scan_progress_and_jam(client, conn, config):
    start_dossier(client)
    dossier_id = session_dossier(client)
    r = post_form(client, "/kiosk/dossier/scan", page="/kiosk/dossier", data={"source": "adf"})
    assert r.status_code == 302
    job_id = conn.execute("SELECT id FROM jobs").fetchone()[0]
    page = html(client.get("/kiosk/dossier"))
    assert f'data-job-id="{job_id}"' in page and 'id="scan-adf" disabled' in page
    # the worker stored two pages, then the feeder jammed (it names the paper in every
    # report, the failure's included: that is what "scan on" continues)
    paper_id = add_scanned_paper(conn, config, dossier_id, pages=2, blank=(2,))
    conn.execute("UPDATE jobs SET state='failed', error_key='scanner.jammed', "
                 "progress_json=? WHERE id=?",
                 (f'{{"step": "scanning", "pages": 2, "paper_id": {paper_id}}}', job_id))
    page = html(client.get("/kiosk/dossier"))
    assert "Giấy bị kẹt trong máy quét" in page and "Quét tiếp" in page
    assert f'name="paper_id" value="{paper_id}"' in page
    assert "Trang trắng?" in page and page.count("/thumbnail") == 2
    post_form(client, "/kiosk/dossier/scan", page="/kiosk/dossier",
              data={"source": "adf", "paper_id": str(paper_id)})
    params = conn.execute("SELECT params_json FROM jobs ORDER BY id DESC").fetchone()[0]
    assert f'"paper_id": {paper_id}' in params
    # a second tap while the first is queued is refused with a message
    r = post_form(client, "/kiosk/dossier/scan", page="/kiosk/dossier",
                  data={"source": "flatbed"}, follow_redirects=True)
    assert "Máy quét đang xử lý một lượt quét" in html(r)


def test_submit_shows_receipt_and_forgets_the_dossier(client, conn, config):
    start_dossier(client)
    dossier_id = session_dossier(client)
    r = post_form(client, "/kiosk/dossier/submit", page="/kiosk/dossier", follow_redirects=True)
    assert "chưa có giấy tờ nào được quét xong" in html(r)
    add_scanned_paper(conn, config, dossier_id, pages=1)
    r = post_form(client, "/kiosk/dossier/submit", page="/kiosk/dossier", follow_redirects=True)
    page = html(r)
    code = dossiers.get(conn, dossier_id).code
    assert code in page and "Mang bản gốc" in page
    assert dossiers.get(conn, dossier_id).status == "submitted"
    assert session_dossier(client) is None


def test_reset_wipes_session_and_abandons_open_dossier(client, conn):
    start_dossier(client)
    dossier_id = session_dossier(client)
    client.get("/kiosk?lang=en")
    r = post_form(client, "/kiosk/reset")
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk")
    assert session_dossier(client) is None
    assert dossiers.get(conn, dossier_id).status == "cancelled"
    assert "Bạn cần" in html(client.get("/kiosk"))  # language back to the default
    assert client.get("/kiosk/dossier").status_code == 302


def test_reset_during_a_running_scan_cancels_the_dossier_where_officers_see_it(client, conn):
    """Left open, it would stay on no screen for good; the worker finishes its scan
    into the cancelled dossier and a queued one never starts."""
    start_dossier(client)
    dossier_id = session_dossier(client)
    job_id = add_job(conn, dossier_id, "running", {"step": "scanning", "pages": 1})
    post_form(client, "/kiosk/reset")
    assert dossiers.get(conn, dossier_id).status == "cancelled"
    assert conn.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()[0] == "running"
    assert session_dossier(client) is None


def test_cancel(client, conn):
    start_dossier(client)
    dossier_id = session_dossier(client)
    r = post_form(client, "/kiosk/dossier/cancel", page="/kiosk/dossier", follow_redirects=True)
    assert "Hồ sơ đã được hủy" in html(r)
    assert dossiers.get(conn, dossier_id).status == "cancelled"


def test_officer_flow(client, conn, config):
    dossier_id = submitted_dossier(conn, config, pages=2, blank=(2,))
    pid = public_id(conn, dossier_id)  # what URLs carry
    code = dossiers.get(conn, dossier_id).code
    page = html(client.get("/officer"))
    assert code in page and "Hồ sơ chờ kiểm tra" in page
    page = html(client.get(f"/officer/dossiers/{pid}"))
    assert "NGUYỄN VĂN AN" in page and "Số CCCD" in page and "Ngày sinh" in page
    assert "Họ và tên: Nguyễn Văn An" in page and "Trang trắng?" in page
    assert "Ký xác nhận và cấp mã kết quả số hóa" in page
    assert 'id="dossier-status"' in page  # the officer sees the dossier's state
    # a value read with low confidence is shown and marked, an invalid one marked red
    assert re.search(r'data-field="cccd" data-status="uncertain">\s*<button[^>]*>\s*'
                     r'<span class="rf-label">Số CCCD</span>\s*'
                     r'<span class="rf-value" data-value>001203004567</span>', page)
    assert 'class="viewer-img"' in page and 'data-action="rotate"' in page
    assert "cần đối chiếu" in page and 'data-field="birth_date" data-status="problem"' in page
    assert re.search(r'data-field="full_name" data-status="valid">\s*<button[^>]*>\s*'
                     r'<span class="rf-label">Họ và tên</span>\s*'
                     r'<span class="rf-value" data-value>NGUYỄN VĂN AN</span>', page)
    sha = dossiers.get(conn, dossier_id).papers[0].pages[0].sha256
    assert "/image" in html(client.get(f"/officer/dossiers/{pid}/pages/{sha}"))
    detail = f"/officer/dossiers/{pid}"
    # the sign-off asks for the "checked against the originals" tick, then (no PIN set,
    # so nobody is identified) a name
    r = post_form(client, f"{detail}/sign", page=detail, data={"officer": "Nguyễn Văn A"},
                  follow_redirects=True)
    assert "Hãy đánh dấu đã đối chiếu với bản gốc" in html(r)
    r = post_form(client, f"{detail}/sign", page=detail, data={"officer": " ", "checked": "yes"},
                  follow_redirects=True)
    assert "Hãy nhập họ tên cán bộ" in html(r)
    r = post_form(client, f"{detail}/sign", page=detail,
                  data={"officer": "Nguyễn Văn A", "checked": "yes"}, follow_redirects=True)
    page = html(r)
    assert f"{code}.01" in page and "Đang chờ gửi về trung ương" in page
    assert "Nguyễn Văn A" in page
    assert 'id="link-down"' not in page  # the sync state is not known to be down
    set_state(conn, "sync.state", "no_broker")
    assert ("Chưa cấu hình máy chủ trung ương: kết quả đang được lưu chờ trên thiết bị"
            in html(client.get("/officer")))
    conn.execute("UPDATE outbox SET state='delivered', delivered_at=1")
    page = html(client.get("/officer"))
    assert "Đã gửi về trung ương" in page and 'id="link-down"' not in page
    assert "Không tìm thấy hồ sơ" in html(client.get("/officer/dossiers/9223372036854775808",
                                                       follow_redirects=True))


def test_technician_status(client, conn):
    page = html(client.get("/technician"))
    assert "Tình trạng thiết bị" in page and "Chưa có thông tin" in page
    set_state(conn, "sync.state", "no_broker")
    set_state(conn, "scanner.state", "error:scanner.cover_open")
    set_state(conn, "worker.heartbeat", "0")
    page = html(client.get("/technician"))
    assert ("Chưa cấu hình máy chủ trung ương: kết quả đang được lưu chờ trên thiết bị"
            in page)
    assert "Lỗi: Nắp máy quét đang mở" in page
    assert "ngày trước" in page
    assert "Device status" in html(client.get("/technician?lang=en"))
    assert 'id="models"' in page or "Không đọc được danh sách mô hình" in page
    assert 'id="versions"' in page and "officer_pin" in page


def test_technician_config_hides_pins(config):
    from appliance.system.config import with_overrides
    from appliance.web import create_app

    locked = with_overrides(config, web={"officer_pin": "97531", "technician_pin": "8642"})
    client = create_app(locked, {"TESTING": True}).test_client()
    page = html(client.get("/technician", headers={"X-Technician-PIN": "8642"}))
    assert "97531" not in page and "8642" not in page and "đã đặt (ẩn)" in page


def test_html_errors_are_translated_pages(client):
    r = client.get("/kiosk/nowhere")
    assert r.status_code == 404 and "Không tìm thấy trang" in html(r)
    assert "Traceback" not in html(r)
