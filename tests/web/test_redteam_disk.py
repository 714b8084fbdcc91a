"""Red team: the kiosk on a data disk full to the last byte (a real tmpfs), not merely
below the scan floor.

Why: tests/web/test_web_disk_full.py sets the floor above the free space (the disk
still takes writes) and checks the web's start on a full disk; here every write
fails for real. "Bad input gets a clear message and changes nothing": a citizen who
opens a dossier on a full disk must see the disk-full message in Vietnamese, no
dossier may be half made, and no dossier code may be burnt (codes are accounted for
one by one; the next dossier after space is back takes the next number).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from appliance.records import dossiers
from appliance.store.db import connect
from appliance.system.config import Config, with_overrides
from appliance.web import create_app
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs
from tests.web.forms import AGREE, page_fields, post_form
from tests.web.test_redteam_privacy import PIN, _staff

MESSAGE = "Bộ nhớ của thiết bị đã đầy nên không lưu thêm được trang nào."
CONSENT = "/kiosk/consent?procedure=tk1-ts"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "data", "8m") as folder:
        yield folder


@pytest.fixture
def config(disk: Path) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(disk)},
                          health={"scan_min_free_mb": 1})


@pytest.fixture
def conn(config: Config) -> Iterator[sqlite3.Connection]:
    c = connect(config.paths.database)  # the worker, holding the database open
    yield c
    c.close()


def _open_dossier(client: FlaskClient, fields: dict[str, str]):  # noqa: ANN202 - response
    return client.post("/kiosk/dossiers", data={**fields, "procedure": "tk1-ts", **AGREE})


def _codes(conn: sqlite3.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT code FROM dossiers ORDER BY id")]


def test_a_dossier_opened_on_a_full_disk_is_refused_with_the_message_and_burns_no_code(
        conn: sqlite3.Connection, config: Config, disk: Path) -> None:
    client = create_app(config, {"TESTING": True}).test_client()
    first = _open_dossier(client, page_fields(client, CONSENT))
    assert first.status_code == 302, first.status_code
    [code_one] = _codes(conn)

    other = create_app(config, {"TESTING": True}).test_client()  # the next citizen
    fields = page_fields(other, CONSENT)
    filler = fill(disk)
    try:
        assert free_bytes(disk) == 0
        refused = _open_dossier(other, fields)
        text = refused.get_data(as_text=True)
        if refused.status_code == 302:  # a refusal shown on the page it leads to
            text = other.get(refused.headers["Location"],
                             follow_redirects=True).get_data(as_text=True)
        assert refused.status_code in (302, 507), refused.status_code
        assert MESSAGE in text, text[:2000]
        assert _codes(conn) == [code_one], "nothing is made on a full disk"
    finally:
        filler.unlink()

    again = _open_dossier(other, page_fields(other, CONSENT))
    assert again.status_code == 302, again.status_code
    codes = _codes(conn)
    assert len(codes) == 2
    seq_one, seq_two = (int(c.rsplit("-", 1)[1]) for c in codes)
    assert seq_two == seq_one + 1, f"a code was burnt on the full disk: {codes}"
    with other.session_transaction() as s:
        assert dossiers.get(conn, int(s["dossier_id"])).code == codes[1]


def test_an_officer_signs_in_and_out_on_a_full_disk(
        conn: sqlite3.Connection, config: Config, disk: Path) -> None:
    """Officers must see the backlog and the free disk when the disk is full: signing in
    writes nothing (store/sessions.py), and signing out on a full disk still empties
    the browser's session, whatever could not be written."""
    app = create_app(config, {"TESTING": True, "OFFICER_PIN": PIN})
    filler = fill(disk)
    try:
        assert free_bytes(disk) == 0
        officer = _staff(app, PIN, "/officer")
        desk = officer.get("/officer")
        assert desk.status_code == 200, desk.status_code
        out = post_form(officer, "/staff/logout", {"next": "/officer"}, page="/officer")
        assert out.status_code == 302
        assert officer.get("/officer").status_code == 302  # back to the keypad
    finally:
        filler.unlink()
