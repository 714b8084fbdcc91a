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


def test_a_copied_database_alone_cannot_test_pin_guesses(config):
    """The device-wide salt sits in the same database as the hashes: an unkeyed scrypt
    would let a copy of the file try all 10 000 four-digit PINs in minutes. The stored
    hash is keyed with the installation key (a file of its own), so the salt and a
    guess, even the right one, do not give it."""
    import hashlib
    import sqlite3

    enrol(config, "Nguyễn Văn An", "4321")
    copy = sqlite3.connect(config.paths.database)  # what a thief has: no key file
    salt = bytes.fromhex(copy.execute("SELECT value FROM device_state WHERE key=?",
                                      (officers.SALT_KEY,)).fetchone()[0])
    stored = copy.execute("SELECT pin_hash FROM officers").fetchone()[0]
    copy.close()
    guess = hashlib.scrypt(b"4321", salt=salt, n=officers.SCRYPT_N, r=officers.SCRYPT_R,
                           p=officers.SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32).hex()
    assert guess not in stored and stored.startswith("scrypt-keyed$")
    conn = connect(config.paths.database)
    try:
        assert officers.match(conn, "4321") == "Nguyễn Văn An"
    finally:
        conn.close()


def test_an_unkeyed_hash_of_the_first_build_opens_once_and_is_rewritten(config):
    import hashlib

    enrol(config, "Trần Thị Bình", "8765")  # makes the salt
    conn = connect(config.paths.database)
    try:
        salt = bytes.fromhex(officers.get_state(conn, officers.SALT_KEY)[0])
        old = "scrypt$" + hashlib.scrypt(b"4321", salt=salt, n=2**14, r=8, p=1,
                                         maxmem=64 * 1024 * 1024, dklen=32).hex()
        conn.execute("INSERT INTO officers(name, pin_hash, created_at, updated_at) "
                     "VALUES ('Nguyễn Văn An', ?, 0, 0)", (old,))
        assert officers.match(conn, "4321") == "Nguyễn Văn An"
        stored = conn.execute("SELECT pin_hash FROM officers WHERE name='Nguyễn Văn An'"
                              ).fetchone()[0]
        assert stored.startswith("scrypt-keyed$") and stored != old
        assert officers.match(conn, "4321") == "Nguyễn Văn An"
        assert officers.match(conn, "1234") is None
    finally:
        conn.close()


def test_a_name_typed_with_decomposed_marks_is_one_officer_in_nfc(config):
    import unicodedata

    nfc = unicodedata.normalize("NFC", "Nguyễn Văn An")
    enrol(config, unicodedata.normalize("NFD", "Nguyễn  Văn An"), "4321")
    enrol(config, nfc, "4321")  # the same officer, the same PIN: nothing new
    conn = connect(config.paths.database)
    try:
        assert [o.name for o in officers.listing(conn)] == [nfc]
        assert officers.match(conn, "4321") == nfc
    finally:
        conn.close()


def test_a_pin_no_keypad_can_type_is_refused(config):
    """A PIN with a trailing newline (a script's echo) or non-ASCII digits would be
    enrolled as a PIN nobody can ever type on the keypad: refused, with the rule."""
    conn = connect(config.paths.database)
    try:
        for pin in ("1234\n", "١٢٣٤", "12 34", "123"):
            with pytest.raises(officers.OfficerError, match="4-12 digits"):
                officers.enrol(conn, "Nguyễn Văn An", pin)
        assert officers.listing(conn) == []
    finally:
        conn.close()
