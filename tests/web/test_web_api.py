"""The JSON API on a real SQLite database: every route, and every refusal changes nothing."""

from __future__ import annotations

import json
import re

import pytest

from appliance.records import dossiers
from appliance.store.db import set_state
from tests.web.helpers import (
    add_job,
    add_scanned_paper,
    public_id,
    row_id,
    submitted_dossier,
)

UNKNOWN = "Zz9_-" * 4 + "xy"  # well-formed (22 URL-safe characters), names no dossier


@pytest.fixture
def client(app):
    """A program, not a browser: no cookie jar, as the end-to-end tests and scripts call.

    With no officer PIN configured (the default) it may do everything; what a browser's
    session may do, with its CSRF token, is in test_web_security.py.
    """
    return app.test_client(use_cookies=False)


def count(conn, table: str) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_health_and_procedures(client):
    assert client.get("/api/health").get_json() == {"ok": True}
    vi = client.get("/api/procedures").get_json()
    en = client.get("/api/procedures?lang=en").get_json()
    assert {p["code"] for p in vi} == {"tk1-ts", "cap-lai-the-bhyt", "huong-bhxh-mot-lan", "khac"}
    assert vi[0]["name"].startswith("Đăng ký") and en[0]["name"].startswith("Register")


def test_create_and_get_dossier(client, config):
    r = client.post("/api/dossiers", json={"procedure": "tk1-ts", "language": "vi"})
    assert r.status_code == 201
    body = r.get_json()
    assert set(body) == {"id", "code", "status"} and body["status"] == "open"
    assert re.fullmatch(r"000\.00\.12\.H42-\d{6}-0001", body["code"])
    assert r.headers["Location"].endswith(f"/api/dossiers/{body['id']}")
    d = client.get(f"/api/dossiers/{body['id']}").get_json()
    assert d["code"] == body["code"] and d["procedure"] == "tk1-ts"
    assert d["papers"] == [] and d["record_id"] is None and d["delivery"] is None


@pytest.mark.parametrize("kwargs, key", [
    ({"json": {"procedure": "nope"}}, "error.unknown_procedure"),
    ({"json": {}}, "error.unknown_procedure"),
    ({"json": {"procedure": "tk1-ts", "language": "fr"}}, "error.bad_language"),
    ({"json": ["tk1-ts"]}, "error.bad_json"),
    ({"data": "{not json", "content_type": "application/json"}, "error.bad_json"),
    ({"data": "procedure=tk1-ts", "content_type": "application/x-www-form-urlencoded"},
     "error.bad_json"),
])
def test_create_dossier_bad_input(client, conn, kwargs, key):
    r = client.post("/api/dossiers", **kwargs)
    assert r.status_code == 400
    assert r.get_json()["error"] == key and r.get_json()["message"]
    assert count(conn, "dossiers") == 0


def test_unknown_ids_are_translated_404s(client):
    r = client.get(f"/api/dossiers/{UNKNOWN}")
    assert r.status_code == 404
    assert r.mimetype == "application/problem+json"
    assert r.get_json() == {
        "type": "about:blank", "status": 404,
        "title": "Không tìm thấy hồ sơ. Hãy quay lại trang đầu và bắt đầu lại.",
        "error": "error.dossier_not_found",
        "message": "Không tìm thấy hồ sơ. Hãy quay lại trang đầu và bắt đầu lại.",
    }
    english = client.get(f"/api/dossiers/{UNKNOWN}?lang=en").get_json()["message"]
    assert english.startswith("The dossier")
    assert client.get("/api/dossiers/abc").get_json()["error"] == "error.not_found"
    assert client.get("/api/jobs/5").get_json()["error"] == "error.job_not_found"
    assert client.get("/api/nothing-here").status_code == 404
    r = client.get(f"/api/dossiers/{UNKNOWN}/submit")
    assert r.status_code == 405 and r.get_json()["error"] == "error.method_not_allowed"


def test_scan_queue_and_conflicts(client, conn):
    dossier_id = client.post("/api/dossiers", json={"procedure": "tk1-ts"}).get_json()["id"]
    r = client.post(f"/api/dossiers/{dossier_id}/scans", json={"source": "adf"})
    assert r.status_code == 202
    job_id = r.get_json()["job_id"]
    job = conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
    assert job["kind"] == "scan" and job["state"] == "queued"
    assert job["dossier_id"] == row_id(conn, dossier_id)
    assert '"title": "Tờ khai TK1-TS"' in job["params_json"]
    r = client.post(f"/api/dossiers/{dossier_id}/scans", json={"source": "flatbed"})
    assert r.status_code == 409 and r.get_json()["error"] == "error.job_active"
    assert count(conn, "jobs") == 1
    j = client.get(f"/api/jobs/{job_id}").get_json()
    assert j["state"] == "queued" and j["message"] == "Đang chuẩn bị máy quét…"
    latest = client.get(f"/api/dossiers/{dossier_id}/jobs/latest").get_json()
    assert latest["id"] == job_id and latest["dossier_id"] == dossier_id


@pytest.mark.parametrize("body, status, key", [
    ({"source": "camera"}, 400, "error.bad_source"),
    ({}, 400, "error.bad_source"),
    ({"source": "adf", "paper_id": "1"}, 400, "error.bad_paper"),
    ({"source": "adf", "paper_id": 4242}, 400, "error.bad_paper"),
])
def test_scan_bad_input(client, conn, body, status, key):
    dossier_id = client.post("/api/dossiers", json={"procedure": "khac"}).get_json()["id"]
    r = client.post(f"/api/dossiers/{dossier_id}/scans", json=body)
    assert (r.status_code, r.get_json()["error"]) == (status, key)
    assert count(conn, "jobs") == 0


def test_scan_refused_for_unknown_or_closed_dossier(client, conn, config):
    assert client.post(f"/api/dossiers/{UNKNOWN}/scans",
                       json={"source": "adf"}).status_code == 404
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    r = client.post(f"/api/dossiers/{pid}/scans",
                    json={"source": "adf"})
    assert r.status_code == 409 and r.get_json()["error"] == "error.invalid_state"
    other = dossiers.create(conn, config, "khac")
    paper_of_first = dossiers.get(conn, dossier_id).papers[0].id
    r = client.post(f"/api/dossiers/{public_id(conn, other)}/scans",
                    json={"source": "adf", "paper_id": paper_of_first})
    assert r.get_json()["error"] == "error.bad_paper"
    assert count(conn, "jobs") == 0


def test_continue_a_paper_after_a_jam(client, conn, config):
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    pid = public_id(conn, dossier_id)  # what URLs carry
    paper_id = add_scanned_paper(conn, config, dossier_id, pages=2)
    add_job(conn, dossier_id, "failed", {"step": "scanning", "pages": 2}, "scanner.jammed")
    r = client.post(f"/api/dossiers/{pid}/scans",
                    json={"source": "adf", "paper_id": paper_id})
    assert r.status_code == 202
    params = conn.execute("SELECT params_json FROM jobs WHERE id=?",
                          (r.get_json()["job_id"],)).fetchone()[0]
    assert f'"paper_id": {paper_id}' in params


@pytest.mark.parametrize("state, progress, error_key, vi, en", [
    ("running", {"step": "scanning", "pages": 2}, None,
     "Đang quét… đã nhận 2 trang", "Scanning… pages received: 2"),
    ("running", {"step": "reading", "page": 1, "pages": 3}, None,
     "Đang đọc nội dung trang 1/3…", "Reading the text of page 1/3…"),
    ("running", {"step": "assembling"}, None,
     "Đang tạo bản điện tử (PDF)…", "Making the electronic copy (PDF)…"),
    ("done", {"step": "done", "pages": 3, "paper_id": 1}, None,
     "Đã quét xong 3 trang.", "Finished. Pages scanned: 3."),
    ("failed", {"step": "scanning", "pages": 2}, "scanner.jammed",
     "Giấy bị kẹt trong máy quét. Các trang đã quét vẫn được giữ. "
     "Hãy gỡ tờ giấy bị kẹt rồi bấm “Quét tiếp”.", "Paper is jammed in the scanner."),
    ("failed", {}, "something.new", "Đã có lỗi xảy ra.", "Something went wrong."),
])
def test_job_messages(client, conn, config, state, progress, error_key, vi, en):
    dossier_id = dossiers.create(conn, config, "khac")
    job_id = add_job(conn, dossier_id, state, progress, error_key)
    j = client.get(f"/api/jobs/{job_id}").get_json()
    assert j["state"] == state and j["progress"] == progress and j["error_key"] == error_key
    assert j["message"].startswith(vi)
    assert client.get(f"/api/jobs/{job_id}?lang=en").get_json()["message"].startswith(en)
    by_header = client.get(f"/api/jobs/{job_id}", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert by_header.get_json()["message"].startswith(en)


def test_submit(client, conn, config):
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    pid = public_id(conn, dossier_id)
    r = client.post(f"/api/dossiers/{pid}/submit")
    assert r.status_code == 409 and r.get_json()["error"] == "error.nothing_scanned"
    add_scanned_paper(conn, config, dossier_id, pages=2, blank=(2,))
    job_id = add_job(conn, dossier_id, "running", {"step": "scanning", "pages": 1})
    r = client.post(f"/api/dossiers/{pid}/submit")
    assert r.status_code == 409 and r.get_json()["error"] == "error.job_active"
    conn.execute("UPDATE jobs SET state='done' WHERE id=?", (job_id,))
    assert client.post(f"/api/dossiers/{pid}/submit", data="{bad",
                       content_type="application/json").status_code == 400
    assert dossiers.get(conn, dossier_id).status == "open"
    r = client.post(f"/api/dossiers/{pid}/submit")
    assert r.status_code == 200
    d = r.get_json()
    assert d["status"] == "submitted"
    pages = d["papers"][0]["pages"]
    assert [p["blank"] for p in pages] == [False, True]  # flagged, not dropped
    assert set(pages[0]) >= {"ordinal", "sha256", "blank", "width", "height", "thumbnail_url"}
    assert d["papers"][0]["fields"]["values"]["cccd"] == "001203004567"
    r = client.post(f"/api/dossiers/{pid}/submit")
    assert r.status_code == 409 and r.get_json()["error"] == "error.invalid_state"
    assert client.post(f"/api/dossiers/{UNKNOWN}/submit").status_code == 404


def test_sign(client, conn, config):
    open_id = dossiers.create(conn, config, "khac")
    r = client.post(f"/api/dossiers/{public_id(conn, open_id)}/sign",
                    json={"officer": "Nguyễn Văn A"})
    assert r.status_code == 409 and r.get_json()["error"] == "error.invalid_state"
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)
    for body in ({}, {"officer": "   "}, {"officer": 5}):
        r = client.post(f"/api/dossiers/{pid}/sign", json=body)
        assert r.status_code == 400 and r.get_json()["error"] == "error.officer_required"
    assert count(conn, "records") == 0 and count(conn, "outbox") == 0
    r = client.post(f"/api/dossiers/{pid}/sign", json={"officer": "Nguyễn Văn A"})
    assert r.status_code == 200
    body = r.get_json()
    code = dossiers.get(conn, dossier_id).code
    assert body["papers"][0]["result_code"] == f"{code}.01"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["record_id"])
    d = client.get(f"/api/dossiers/{pid}").get_json()
    assert d["status"] == "signed" and d["record_id"] == body["record_id"]
    assert d["delivery"] == "pending"
    again = client.post(f"/api/dossiers/{pid}/sign", json={"officer": "B"})
    assert again.status_code == 409 and count(conn, "records") == 1


def test_cancel(client, conn, config):
    dossier_id = dossiers.create(conn, config, "khac")
    pid = public_id(conn, dossier_id)  # what URLs carry
    assert client.post(f"/api/dossiers/{pid}/cancel").get_json()["status"] == "cancelled"
    assert client.post(f"/api/dossiers/{pid}/cancel").status_code == 409


def test_files(client, conn, config):
    dossier_id = dossiers.create(conn, config, "khac")
    pid = public_id(conn, dossier_id)  # what URLs carry
    add_scanned_paper(conn, config, dossier_id, pages=1)
    paper = client.get(f"/api/dossiers/{pid}").get_json()["papers"][0]
    page = paper["pages"][0]
    thumb = client.get(page["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert thumb.data[:2] == b"\xff\xd8"
    image = client.get(f"/api/pages/{page['sha256']}/image")
    assert image.mimetype == "image/png" and image.data[:4] == b"\x89PNG"
    pdf = client.get(f"/api/papers/{paper['pdf_sha256']}/pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data[:5] == b"%PDF-"
    assert client.get(f"/api/pages/{'0' * 64}/image").status_code == 404
    assert client.get("/api/pages/..%2F..%2Fetc%2Fpasswd/image").status_code == 404
    r = client.get(f"/api/papers/{page['sha256']}/pdf")  # a page hash is not a PDF
    assert r.status_code == 404 and r.get_json()["error"] == "error.not_found"


def test_status(client, conn, config):
    s = client.get("/api/status").get_json()
    assert {"queue_depth", "oldest_undelivered_age_s", "last_delivery_at", "sync_state",
            "scanner_state", "ocr_state", "disk_free_bytes"} <= set(s)
    assert s["queue_depth"] == 0 and s["disk_free_bytes"] > 0
    set_state(conn, "sync.state", "no_broker")
    set_state(conn, "scanner.state", "error:scanner.jammed")
    set_state(conn, "ocr.state", "ready")
    dossiers.sign_off(conn, config, submitted_dossier(conn, config), "Lê Thị B")
    s = client.get("/api/status").get_json()
    assert s["queue_depth"] == 1 and s["oldest_undelivered_age_s"] >= 0
    assert s["last_delivery_at"] is None
    assert (s["sync_state"], s["scanner_state"], s["ocr_state"]) == (
        "no_broker", "error:scanner.jammed", "ready")


def test_openapi_describes_every_api_route(app, client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in spec["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], (path, method)
    refs = set(re.findall(r'"\$ref":\s*"#/components/schemas/(\w+)"', json.dumps(spec)))
    assert refs and refs <= set(spec["components"]["schemas"])


def test_unexpected_error_is_a_translated_500(app, client, conn, config, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(dossiers, "get", boom)
    r = client.get(f"/api/dossiers/{public_id(conn, dossiers.create(conn, config, 'khac'))}")
    assert r.status_code == 500 and r.get_json()["error"] == "error.generic"
    assert b"secret internals" not in r.data and b"Traceback" not in r.data


def test_queued_job_with_a_silent_worker_says_to_ask_for_help(client, conn, config):
    import time

    dossier_id = dossiers.create(conn, config, "khac")
    job_id = add_job(conn, dossier_id, "queued", {})
    set_state(conn, "worker.heartbeat", str(time.time()))
    assert client.get(f"/api/jobs/{job_id}").get_json()["message"] == "Đang chuẩn bị máy quét…"
    set_state(conn, "worker.heartbeat", str(time.time() - 600))
    message = client.get(f"/api/jobs/{job_id}").get_json()["message"]
    assert message.startswith("Máy quét chưa sẵn sàng") and "cán bộ" in message


def test_dossiers_are_named_by_unguessable_public_ids_never_row_ids(client, conn):
    """Issue 8: a sequential row id never names a dossier in a URL or a body."""
    first = client.post("/api/dossiers", json={"procedure": "khac"}).get_json()
    second = client.post("/api/dossiers", json={"procedure": "khac"}).get_json()
    for body in (first, second):
        assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", body["id"]), body["id"]
    assert first["id"] != second["id"]
    row = row_id(conn, first["id"])
    assert isinstance(row, int) and str(row) not in (first["id"], second["id"])
    assert client.get(f"/api/dossiers/{first['id']}").get_json()["id"] == first["id"]
    for url in (f"/api/dossiers/{row}", f"/api/dossiers/{row}/jobs/latest",
                f"/officer/dossiers/{row}", f"/officer/dossiers/{row}/pages/{'0' * 64}"):
        r = client.get(url)
        assert r.status_code == 404, url
    for url in (f"/api/dossiers/{row}/scans", f"/api/dossiers/{row}/submit",
                f"/api/dossiers/{row}/cancel", f"/api/dossiers/{row}/sign"):
        r = client.post(url, json={"source": "adf", "officer": "A"})
        assert r.status_code == 404, url
    assert dossiers.get(conn, row).status == "open"
    job_id = client.post(f"/api/dossiers/{first['id']}/scans",
                         json={"source": "adf"}).get_json()["job_id"]
    assert client.get(f"/api/jobs/{job_id}").get_json()["dossier_id"] == first["id"]


def test_openapi_describes_dossier_ids_as_strings(client):
    spec = client.get("/api/openapi.json").get_json()
    for path, item in spec["paths"].items():
        for op in item.values():
            for param in op.get("parameters", []):
                if param["name"] == "dossier_id":
                    assert param["schema"]["type"] == "string", path
                    assert param["schema"]["minLength"] >= 16
    assert spec["components"]["schemas"]["Dossier"]["properties"]["id"]["type"] == "string"
