"""A citizen's page corrections and consent, through the records functions themselves."""

from __future__ import annotations

import pytest

from appliance.records import consent, dossiers, pages_edit
from appliance.records.errors import InvalidState, ScanInProgress
from appliance.store import jobs
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.system.config import Config, with_overrides
from tests.web.helpers import add_job, add_scanned_paper


@pytest.fixture
def setup(tmp_path):
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")})
    conn = connect(config.paths.database)
    yield conn, config, FileStore(config.paths.files)
    conn.close()


def page_ids(conn, dossier_id):
    d = dossiers.get(conn, dossier_id)
    return [[pg.id for pg in p.pages] for p in d.papers]


def test_delete_and_move_keep_ordinals_and_rebuild_the_pdf(setup):
    conn, config, files = setup
    d = dossiers.create(conn, config, "tk1-ts")
    add_scanned_paper(conn, config, d, pages=3)
    add_scanned_paper(conn, config, d, title="Căn cước công dân", pages=1, seed=2)
    before = dossiers.get(conn, d)
    old_pdf = before.papers[0].pdf_sha256
    first, second, third = page_ids(conn, d)[0]
    assert pages_edit.move_page(conn, files, config, d, third, -1) == 2
    assert page_ids(conn, d)[0] == [first, third, second]
    assert pages_edit.move_page(conn, files, config, d, first, -1) == 1  # already first
    after = dossiers.get(conn, d)
    assert [pg.ordinal for pg in after.papers[0].pages] == [1, 2, 3]
    assert after.papers[0].pdf_sha256 not in (None, old_pdf)
    assert pages_edit.delete_page(conn, files, config, d, first) == before.papers[0].id
    assert page_ids(conn, d)[0] == [third, second]
    assert [pg.ordinal for pg in dossiers.get(conn, d).papers[0].pages] == [1, 2]
    # the last page of a paper takes the paper with it; papers are renumbered
    only = page_ids(conn, d)[1][0]
    pages_edit.delete_page(conn, files, config, d, only)
    pages_edit.delete_page(conn, files, config, d, third)
    pages_edit.delete_page(conn, files, config, d, second)
    assert dossiers.get(conn, d).papers == ()


def test_edits_refused_on_other_dossiers_busy_or_closed_ones(setup):
    conn, config, files = setup
    mine = dossiers.create(conn, config, "khac")
    theirs = dossiers.create(conn, config, "khac")
    add_scanned_paper(conn, config, theirs, pages=2)
    add_scanned_paper(conn, config, mine, pages=2)
    their_page = page_ids(conn, theirs)[0][0]
    with pytest.raises(pages_edit.PageNotFound):
        pages_edit.delete_page(conn, files, config, mine, their_page)
    my_page = page_ids(conn, mine)[0][0]
    job = add_job(conn, mine, "queued", {})
    with pytest.raises(ScanInProgress):
        pages_edit.delete_page(conn, files, config, mine, my_page)
    jobs.fail(conn, job, "x", "")
    dossiers.submit(conn, mine)
    with pytest.raises(InvalidState):
        pages_edit.move_page(conn, files, config, mine, my_page, 1)
    assert len(page_ids(conn, theirs)[0]) == 2


def test_consent_is_recorded_once(setup):
    conn, config, _ = setup
    d = dossiers.create(conn, config, "khac")
    assert consent.get(conn, d) is None
    consent.record(conn, d, "en")
    consent.record(conn, d, "vi")
    got = consent.get(conn, d)
    assert got is not None and got.language == "en" and got.notice_version == consent.NOTICE_VERSION


def test_ending_a_session_cancels_the_dossier_and_its_queued_scan(setup):
    conn, config, _ = setup
    d = dossiers.create(conn, config, "khac")
    job = add_job(conn, d, "queued", {})
    assert consent.end_session(conn, d) is False
    assert dossiers.get(conn, d).status == "cancelled"
    queued = jobs.get(conn, job)
    assert queued is not None and queued.state == "failed"
    assert queued.error_key == consent.SESSION_ENDED
    assert jobs.claim_next(conn, 1) is None  # the departed citizen's scan never runs
    # a scan already running is reported; the dossier is cancelled all the same
    other = dossiers.create(conn, config, "khac")
    add_job(conn, other, "running", {})
    assert consent.end_session(conn, other) is True
    assert dossiers.get(conn, other).status == "cancelled"


def test_a_queued_scan_can_be_withdrawn(setup):
    conn, config, _ = setup
    d = dossiers.create(conn, config, "khac")
    add_job(conn, d, "queued", {})
    assert consent.cancel_queued_scan(conn, d) is True
    assert consent.cancel_queued_scan(conn, d) is False
    assert jobs.active_for_dossier(conn, d) is None
