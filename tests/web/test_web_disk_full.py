"""Below health.scan_min_free_mb the kiosk refuses a new scan (and a retake, before
the page is taken out) with the disk-full message in Vietnamese; no job is queued.
The 8 MB tmpfs test with the real processes is tests/worker/test_disk_full.py; here
the threshold is simply set above the free space of the test's own disk."""

from __future__ import annotations

import pytest

from appliance.records import dossiers
from appliance.store import jobs
from appliance.system.config import with_overrides
from appliance.web import create_app
from tests.web.forms import AGREE, post_form
from tests.web.helpers import add_scanned_paper

MESSAGE = "Bộ nhớ của thiết bị đã đầy nên không lưu thêm được trang nào."


@pytest.fixture
def full_client(config):
    huge = with_overrides(config, health={"scan_min_free_mb": 1 << 40})  # never enough
    return create_app(huge, {"TESTING": True}).test_client()


def test_kiosk_refuses_new_scans_with_the_disk_full_message(full_client, conn, config):
    r = post_form(full_client, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE},
                  page="/kiosk/consent?procedure=tk1-ts")
    assert r.status_code == 302  # opening a dossier writes a few bytes: still allowed
    with full_client.session_transaction() as s:
        dossier_id = int(s["dossier_id"])
    add_scanned_paper(conn, config, dossier_id, pages=1)
    r = post_form(full_client, "/kiosk/dossier/scan", {"source": "flatbed"},
                  page="/kiosk/dossier", follow_redirects=True)
    assert MESSAGE in r.get_data(as_text=True)
    page_id = dossiers.get(conn, dossier_id).papers[0].pages[0].id
    r = post_form(full_client, f"/kiosk/dossier/pages/{page_id}/retake", {},
                  page=f"/kiosk/dossier/pages/{page_id}", follow_redirects=True)
    assert MESSAGE in r.get_data(as_text=True)
    assert dossiers.get(conn, dossier_id).page_count == 1, "the page was not taken out"
    assert jobs.active_for_dossier(conn, dossier_id) is None, "no scan was queued"


def test_web_starts_on_a_full_data_disk_and_says_so(tmp_path, config):
    """The web's first start writes its session key into the data folder; on a full
    disk that used to crash the app factory, so the screen never came up to say why.
    A real full disk: a 1 MB tmpfs filled to the last byte after the database exists."""
    import os
    import subprocess

    from appliance.store.db import connect

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "full"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        full = with_overrides(config, paths={"data_dir": str(disk)})
        # The worker made the database earlier and holds it open (its WAL files exist).
        worker_conn = connect(full.paths.database)
        fd = os.open(disk / "filler.bin", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (65536, 4096, 1):
                try:
                    while os.write(fd, b"\0" * size):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        assert not (disk / "web-secret-key").exists()
        client = create_app(full, {"TESTING": True}).test_client()
        r = client.get("/kiosk/")
        assert r.status_code == 200
        assert not (disk / "web-secret-key").exists()
        worker_conn.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
