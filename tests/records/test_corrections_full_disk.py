"""An officer's correction on a data disk that is full for real (a small tmpfs).

The correction itself is a few database rows; the paper's PDF that the review screen
shows is rebuilt after it commits. Before, a rebuild that failed for want of space
left the old PDF in place: the officer saw a deleted page still in the paper's PDF,
and nothing ever rebuilt it while the dossier stayed submitted. Now the correction
forgets the old PDF in its own transaction, and the worker's recovery makes the PDF
again from the masters once there is space, leaving the officer's field corrections
as they are. Page counts come from poppler's pdfinfo, not from our own reading.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.records import corrections, dossiers, pages
from appliance.store.db import connect
from appliance.store.errors import is_disk_full
from appliance.system.config import Config, with_overrides
from appliance.worker.context import Liveness, Tools
from appliance.worker.pipeline import recover_unfinished_papers
from tests.helpers.signed_papers import files_of, scanned_forms
from tests.helpers.small_disk import fill, mounted_tmpfs

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    with mounted_tmpfs(tmp_path / "data", "12m") as disk:
        yield with_overrides(Config(), paths={"data_dir": str(disk)},
                             health={"scan_min_free_mb": 1})


@pytest.fixture
def conn(config: Config) -> Iterator[sqlite3.Connection]:
    c = connect(config.paths.database)
    yield c
    c.close()


def _pdfinfo_pages(pdf: bytes, tmp_path: Path) -> int:
    path = tmp_path / "paper.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return int(re.search(r"^Pages:\s+(\d+)", out, re.MULTILINE).group(1))


def _fields(conn: sqlite3.Connection, paper_id: int) -> dict:
    row = conn.execute("SELECT fields_json FROM papers WHERE id=?", (paper_id,)).fetchone()
    return dossiers.paper_fields(conn, paper_id, row["fields_json"])


def test_a_correction_on_a_full_disk_never_leaves_a_pdf_that_is_not_the_pages(
        conn: sqlite3.Connection, config: Config, tmp_path: Path) -> None:
    files = files_of(conn, config)
    forms = scanned_forms(conn, config, ((4, 5, 6),))  # submitted, with a correction
    [paper] = dossiers.get(conn, forms.dossier_id).papers
    assert _pdfinfo_pages(files.read(paper.pdf_sha256, ".pdf"), tmp_path) == 3
    fields_before = _fields(conn, paper.id)
    # Room for the correction's WAL frames (as on a device whose WAL has grown before),
    # none for a new PDF.
    for n in range(200):
        conn.execute("INSERT INTO device_state (key, value, updated_at) VALUES (?, ?, 0)",
                     (f"redteam.{n}", "x" * 3000))
    conn.execute("DELETE FROM device_state WHERE key LIKE 'redteam.%'")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    disk = Path(config.paths.data_dir)
    filler = fill(disk)
    try:
        with pytest.raises(Exception) as failed:  # noqa: PT011 - checked just below
            corrections.delete_page(conn, config, dossier_id=forms.dossier_id,
                                    page_id=paper.pages[0].id, officer="Trần Văn Bình",
                                    reason="Trang trùng")
        assert is_disk_full(failed.value) or is_disk_full(failed.value.__cause__), failed.value
        [during] = dossiers.get(conn, forms.dossier_id).papers
        # What the review screen shows while the disk is full: no PDF, or the right one.
        assert during.pdf_sha256 is None or _pdfinfo_pages(
            files.read(during.pdf_sha256, ".pdf"), tmp_path) == len(during.pages)
    finally:
        filler.unlink()
    [after] = dossiers.get(conn, forms.dossier_id).papers
    assert len(after.pages) == 2, "the correction did not commit: nothing to check"
    assert after.pdf_sha256 is None, "a PDF was built on a full disk?"
    unfinished = [p for p in pages.unfinished_papers(conn) if p.id == after.id]
    assert unfinished and unfinished[0].submitted
    # Space is back: the idle worker's recovery makes the PDF from the two pages left,
    # and keeps the fields (with the officer's correction) as the correction left them.
    fields_corrected = _fields(conn, after.id)
    tools = Tools(config, conn, files, None, Liveness(conn, None), threading.Event())
    assert recover_unfinished_papers(tools, set()) == 1
    [rebuilt] = dossiers.get(conn, forms.dossier_id).papers
    assert rebuilt.pdf_sha256 is not None
    assert _pdfinfo_pages(files.read(rebuilt.pdf_sha256, ".pdf"), tmp_path) == 2
    assert _fields(conn, after.id) == fields_corrected
    # The officer's correction of the BHXH number is still there (the worker's
    # finish_paper would have read the fields again from the OCR lines, without it).
    assert fields_before["fields"]["bhxh_number"]["source"] == "officer"
    assert fields_corrected["fields"]["bhxh_number"]["source"] == "officer"
    assert pages.unfinished_papers(conn) == []
    # And the officer can sign it off.
    dossiers.sign_off(conn, config, forms.dossier_id, "Trần Văn Bình")
    assert dossiers.get(conn, forms.dossier_id).status == "signed"
