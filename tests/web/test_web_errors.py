"""One failure path per face: a translated notice and a redirect on the screens, a JSON
problem on the API; and the web layer holds no SQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.records import dossiers
from appliance.web import errors as web_errors
from tests.web.forms import AGREE, post_form
from tests.web.helpers import public_id, submitted_dossier

UNKNOWN = "Zz9_-" * 4 + "xy"  # a well-formed public id that names no dossier

WEB = Path(web_errors.__file__).parent


def test_officer_page_of_a_missing_dossier_redirects_like_the_dossier_view(client):
    """Was a 500: the page view did not catch DossierNotFound."""
    sha = "a" * 64
    for path in (f"/officer/dossiers/{UNKNOWN}/pages/{sha}", f"/officer/dossiers/{UNKNOWN}"):
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"] == "/officer", path
        page = client.get("/officer").get_data(as_text=True)
        assert "Không tìm thấy hồ sơ" in page


def test_officer_page_of_an_unknown_sha_goes_back_to_the_dossier(client, conn, config):
    dossier_id = public_id(conn, submitted_dossier(conn, config))
    r = client.get(f"/officer/dossiers/{dossier_id}/pages/{'b' * 64}")
    assert r.status_code == 302 and r.headers["Location"] == f"/officer/dossiers/{dossier_id}"
    assert "Không tìm thấy trang" in client.get(r.headers["Location"]).get_data(as_text=True)


def test_api_refusals_are_problem_documents(client):
    r = client.get(f"/api/dossiers/{UNKNOWN}?lang=en")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["status"] == 404 and body["error"] == "error.dossier_not_found"
    assert body["title"] == body["message"] and body["message"].startswith("The dossier")
    r = client.post("/api/dossiers", json={"procedure": "x"})
    assert r.mimetype == "application/problem+json" and r.get_json()["status"] == 400


def test_kiosk_refusals_are_notices_on_the_screen(client, conn):
    post_form(client, "/kiosk/dossiers", {"procedure": "khac", **AGREE})
    r = post_form(client, "/kiosk/dossier/scan", {"source": "camera"}, page="/kiosk/dossier")
    assert r.status_code == 302 and r.headers["Location"] == "/kiosk/dossier"
    page = client.get("/kiosk/dossier").get_data(as_text=True)
    assert "Nguồn quét không hợp lệ" in page
    r = post_form(client, "/kiosk/dossier/scan", {"source": "adf", "paper_id": "x"},
                  page="/kiosk/dossier", follow_redirects=True)
    assert "Không tìm thấy giấy tờ cần quét tiếp" in r.get_data(as_text=True)
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


def test_a_storage_failure_is_a_notice_not_a_crash(client, conn, monkeypatch):
    from appliance.store.errors import DiskFull

    def full(*args, **kwargs):
        raise DiskFull("no space left")

    monkeypatch.setattr(dossiers, "create", full)
    r = post_form(client, "/kiosk/dossiers", {"procedure": "khac", **AGREE}, follow_redirects=True)
    assert "Bộ nhớ của thiết bị đã đầy" in r.get_data(as_text=True)
    r = client.post("/api/dossiers", json={"procedure": "khac"},
                    headers={"X-CSRFToken": client.get("/api/session").get_json()["csrf_token"]})
    assert r.status_code == 507 and r.get_json()["error"] == "error.disk_full"


@pytest.mark.parametrize("path", sorted(WEB.glob("*.py")), ids=lambda p: p.name)
def test_no_sql_in_the_web_layer(path):
    text = path.read_text("utf-8")
    assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE)\s+(\w+\s+)?(FROM|INTO|\w+\s+SET)\b",
                         text), path.name
    assert ".execute(" not in text, path.name


def test_views_do_not_translate_errors_one_by_one():
    """The blueprints' one handler answers; no view converts or flashes an error itself."""
    for name in ("kiosk.py", "officer.py", "api.py", "staff.py", "technician.py"):
        text = (WEB / name).read_text("utf-8")
        assert "from_records(" not in text and "from_store(" not in text, name
        assert "except WebError" not in text and "except StoreError" not in text, name
        assert 'flash("error.' not in text, name
