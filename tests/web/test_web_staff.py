"""The optional staff PIN in front of the officer and technician screens."""

from __future__ import annotations

import pytest

from appliance.web import create_app
from tests.web.forms import post_form
from tests.web.helpers import public_id, submitted_dossier

PIN = "2468"


@pytest.fixture
def locked(config):
    return create_app(config, {"TESTING": True, "OFFICER_PIN": PIN}).test_client()


def login(client, pin: str, next_path: str = "/officer"):
    return post_form(client, "/staff/login", {"pin": pin, "next": next_path},
                     page=f"/staff/login?next={next_path}")


@pytest.mark.parametrize("path", ["/officer", "/technician",
                                  "/officer/dossiers/" + "A" * 22])
def test_staff_screens_ask_for_the_pin(locked, path):
    r = locked.get(path)
    assert r.status_code == 302 and "/staff/login?next=" in r.headers["Location"]
    page = locked.get(r.headers["Location"]).get_data(as_text=True)
    assert "Nhập mã PIN cán bộ" in page and 'data-key="7"' in page


def test_login_logout(locked):
    r = login(locked, "1111", "/technician")
    assert r.status_code == 403 and "Mã PIN không đúng" in r.get_data(as_text=True)
    assert locked.get("/technician").status_code == 302
    r = login(locked, PIN, "/technician")
    assert r.status_code == 302 and r.headers["Location"] == "/technician"
    page = locked.get("/technician").get_data(as_text=True)
    assert "Tình trạng thiết bị" in page and 'id="logout"' in page
    assert locked.get("/officer").status_code == 200
    post_form(locked, "/staff/logout", page="/officer")
    assert locked.get("/officer").status_code == 302


def test_next_must_stay_on_the_device(locked):
    r = login(locked, PIN, "//evil.example/x")
    assert r.headers["Location"] == "/officer"


def test_kiosk_needs_no_pin(locked):
    assert locked.get("/kiosk").status_code == 200
    token = locked.get("/api/session").get_json()["csrf_token"]  # a browser: it has a cookie
    r = locked.post("/api/dossiers", json={"procedure": "khac"}, headers={"X-CSRFToken": token})
    assert r.status_code == 201


def test_api_sign_needs_the_pin(locked, conn, config):
    dossier_id = submitted_dossier(conn, config)
    pid = public_id(conn, dossier_id)  # what URLs carry
    r = locked.post(f"/api/dossiers/{pid}/sign", json={"officer": "Trần Văn C"})
    assert r.status_code == 403 and r.get_json()["error"] == "error.staff_only"
    assert locked.get("/api/dossiers").status_code == 403
    r = locked.post(f"/api/dossiers/{pid}/sign", json={"officer": "Trần Văn C"},
                    headers={"X-Officer-PIN": "0000"})
    assert r.status_code == 403
    r = locked.post(f"/api/dossiers/{pid}/sign", json={"officer": "Trần Văn C"},
                    headers={"X-Officer-PIN": PIN})
    assert r.status_code == 200 and r.get_json()["papers"][0]["result_code"]


def test_without_a_pin_nothing_is_locked(client):
    assert client.get("/officer").status_code == 200
    assert client.get("/staff/login?next=/technician").headers["Location"] == "/technician"
    assert 'id="logout"' not in client.get("/officer").get_data(as_text=True)
