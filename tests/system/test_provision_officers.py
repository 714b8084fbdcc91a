"""Officers enrolled at provisioning open the officer screens with their own PIN,
through the same lockout as the configured PIN, and the session knows who it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import session

from appliance.store import officers
from appliance.store.db import connect
from appliance.system.config import Config, with_overrides
from appliance.web import auth, create_app
from tests.web.forms import post_form


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")})


def enrol(config: Config, name: str, pin: str) -> None:
    conn = connect(config.paths.database)
    try:
        officers.enrol(conn, name, pin)
    finally:
        conn.close()


def login(client, pin: str):
    return post_form(client, "/staff/login", {"pin": pin, "next": "/officer"},
                     page="/staff/login?next=/officer")


def test_without_officers_or_pin_the_screens_stay_open(config):
    client = create_app(config, {"TESTING": True}).test_client()
    assert client.get("/officer").status_code == 200


def test_an_enrolled_officer_signs_in_and_is_named(config):
    app = create_app(config, {"TESTING": True})
    enrol(config, "Nguyễn Văn An", "4321")
    client = app.test_client()
    assert client.get("/officer").status_code == 302  # enrolment locked the screens
    assert login(client, "1111").status_code == 403
    with client:
        r = login(client, "4321")
        assert r.status_code == 302 and r.headers["Location"] == "/officer"
        assert session[auth.OFFICER_NAME] == "Nguyễn Văn An"
    assert client.get("/officer").status_code == 200
    # A program with the header: the same check, the officer named for that request.
    other = app.test_client()
    with app.test_request_context("/api/status", headers={auth.OFFICER_HEADER: "4321"}):
        assert auth.is_officer() and auth.officer_name() == "Nguyễn Văn An"
    assert other.get("/officer", headers={auth.OFFICER_HEADER: "9999"}).status_code == 302


def test_the_configured_pin_still_opens_and_names_nobody(config):
    app = create_app(config, {"TESTING": True, "OFFICER_PIN": "2468"})
    enrol(config, "Nguyễn Văn An", "4321")
    client = app.test_client()
    with client:
        assert login(client, "2468").status_code == 302
        assert auth.OFFICER_NAME not in session
    with client:
        client.post("/staff/logout", data={})
    fresh = app.test_client()
    with fresh:
        assert login(fresh, "4321").status_code == 302
        assert session[auth.OFFICER_NAME] == "Nguyễn Văn An"


def test_enrolled_pins_go_through_the_lockout(config):
    app = create_app(config, {"TESTING": True, "PIN_FREE_PER_CLIENT": 3})
    enrol(config, "Nguyễn Văn An", "4321")
    client = app.test_client()
    for _ in range(3):
        assert login(client, "0000").status_code == 403
    r = login(client, "4321")  # right PIN, but locked: refused without checking
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_a_disabled_officer_no_longer_opens(config):
    app = create_app(config, {"TESTING": True})
    enrol(config, "Nguyễn Văn An", "4321")
    enrol(config, "Trần Thị Bình", "8765")
    conn = connect(config.paths.database)
    assert officers.disable(conn, "Nguyễn Văn An")
    assert officers.match(conn, "4321") is None and officers.match(conn, "8765")
    conn.close()
    assert login(app.test_client(), "4321").status_code == 403


def test_disabling_an_officer_ends_their_open_session(config):
    """A session opened with an officer's PIN is pushed on by every request; removing
    the officer must close it at their next request, not leave it open for good."""
    app = create_app(config, {"TESTING": True})
    enrol(config, "Nguyễn Văn An", "4321")
    enrol(config, "Trần Thị Bình", "8765")
    an, binh = app.test_client(), app.test_client()
    assert login(an, "4321").status_code == 302 and login(binh, "8765").status_code == 302
    assert an.get("/officer").status_code == 200
    conn = connect(config.paths.database)
    try:
        assert officers.disable(conn, "Nguyễn Văn An")
    finally:
        conn.close()
    r = an.get("/officer")
    assert r.status_code == 302 and "/staff/login" in r.headers["Location"]
    with an:
        an.get("/staff/login")
        assert auth.OFFICER_NAME not in session
    assert binh.get("/officer").status_code == 200  # the others stay signed in
