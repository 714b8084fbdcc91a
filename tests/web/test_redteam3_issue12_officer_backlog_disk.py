"""Red team 3 on issue 12, item 5: "officers see backlog and free disk".

A real outbox (records made through the product, rows pending, sending and delivered)
on a real small tmpfs; the officer's screen, in Vietnamese, against the figures: the
backlog must be the undelivered rows, and the free disk must tell an officer a disk
with room left (tens of MB: the scan floor's neighbourhood, where scanning stops) from
one full to the last byte.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store.db import connect
from appliance.system.config import Config, with_overrides
from appliance.web import create_app
from tests.helpers.device_records import add_record
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs
from tests.web.test_redteam_privacy import PIN, _staff

pytestmark = pytest.mark.timeout(30)

BACKLOG = re.compile(r"Chờ gửi về trung ương: (\d+)")
FREE = re.compile(r"Bộ nhớ trống: ([^<]+)<")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "data", "64m") as folder:
        yield folder


@pytest.fixture
def config(disk: Path) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(disk)})


def _outbox(config: Config) -> dict[str, int]:
    """Six records: two pending, two sending, two delivered."""
    conn = connect(config.paths.database)
    try:
        recs = [add_record(conn, config.paths.files, device_id=config.device.id,
                           pdf_sizes=(4000,)) for _ in range(6)]
        now = time.time()
        for r in recs[2:4]:
            conn.execute("UPDATE outbox SET state='sending', attempts=1 WHERE record_id=?",
                         (r.record_id,))
        for r in recs[4:]:
            conn.execute("UPDATE outbox SET state='delivered', delivered_at=? "
                         "WHERE record_id=?", (now, r.record_id))
        conn.commit()
        return {str(row[0]): int(row[1]) for row in
                conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")}
    finally:
        conn.close()


def _screen(app, officer) -> tuple[int, str]:  # noqa: ANN001 - Flask objects
    del app
    page = html.unescape(officer.get("/officer", follow_redirects=True).get_data(as_text=True))
    backlog = BACKLOG.search(page)
    free = FREE.search(page)
    assert backlog and free, page[:3000]
    return int(backlog.group(1)), free.group(1).strip()


def test_the_officer_backlog_is_the_undelivered_rows(config: Config, disk: Path) -> None:
    counts = _outbox(config)
    assert counts == {"pending": 2, "sending": 2, "delivered": 2}
    app = create_app(config, {"TESTING": True, "OFFICER_PIN": PIN})
    officer = _staff(app, PIN, "/officer")
    backlog, _ = _screen(app, officer)
    assert backlog == 4
    status = officer.get("/api/status").get_json()
    assert status["queue_depth"] == 4
    assert abs(status["disk_free_bytes"] - free_bytes(disk)) < 1 << 20


def test_the_officer_tells_a_disk_with_room_from_a_full_one(config: Config,
                                                            disk: Path) -> None:
    _outbox(config)
    held = connect(config.paths.database)  # the worker, holding the database open
    app = create_app(config, {"TESTING": True, "OFFICER_PIN": PIN})
    officer = _staff(app, PIN, "/officer")
    room = fill(disk, leave=40 << 20, name="room")
    try:
        assert 39 << 20 <= free_bytes(disk) <= 41 << 20
        _, with_room = _screen(app, officer)
        full = fill(disk, name="full")
        try:
            assert free_bytes(disk) == 0
            _, when_full = _screen(app, officer)
        finally:
            full.unlink()
    finally:
        room.unlink()
        held.close()
    assert with_room != when_full, (
        f"40 MiB free shows {with_room!r}, a full disk {when_full!r}")
    assert not re.fullmatch(r"0([.,]0+)?\s*\S*", with_room), with_room


def test_the_officer_home_on_a_full_disk_is_never_a_redirect_to_itself(
        config: Config, disk: Path) -> None:
    """The web alone on the database (sync and worker not holding it open: restarting,
    or not started yet after a reboot): the officer, signed in, opens the home page on
    a disk full to the last byte, which is when backlog and free disk matter most."""
    _outbox(config)
    app = create_app(config, {"TESTING": True, "OFFICER_PIN": PIN})
    officer = _staff(app, PIN, "/officer")
    assert officer.get("/officer").status_code == 200
    full = fill(disk)
    try:
        assert free_bytes(disk) == 0
        seen = []
        answer = officer.get("/officer")
        for _ in range(5):
            if answer.status_code != 302:
                break
            seen.append(answer.headers["Location"])
            answer = officer.get(answer.headers["Location"])
        assert answer.status_code != 302, f"redirected {len(seen)}+ times: {seen}"
        assert answer.status_code in (200, 507), answer.status_code
    finally:
        full.unlink()
