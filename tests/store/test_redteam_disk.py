"""Red team: the device's data disk, full for real (a small tmpfs), against the promises
of the store-and-forward issue that the existing disk tests leave open.

Why each one:
- the scan floor: "below a free-space threshold the kiosk refuses new scans"; the
  kiosk and the worker share one test (status.disk_below_scan_floor) and nothing
  checked where exactly it turns;
- the retention run on a disk full to the last byte: it is what gives the disk back
  (tests/worker/test_disk_low_purge.py runs it on a disk that is only *low*), so it
  must work when nothing at all is free, as `appliance purge` runs it from its timer
  while the services hold the database open;
- purge and the clock: "no time-to-live ever deletes undelivered data", so a record
  claimed by the sync service ('sending') or given back ('pending') must survive any
  clock jump, and one acknowledged survives until its own acknowledgement plus the
  retention, whatever the clock did before;
- a page stored when the disk fills between its files and its row: no row without
  its file, and once space is back the same page is stored and reads back whole;
- a citizen's page edit on a full disk: "bad input gets a clear message and changes
  nothing", and a full disk must never leave a paper whose PDF is not its pages.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from appliance.records import audit, dossiers, erasure, pages, pages_edit
from appliance.status import disk_below_scan_floor
from appliance.store import outbox
from appliance.store.db import connect
from appliance.store.errors import is_disk_full
from appliance.system.config import Config, dump, with_overrides
from tests.helpers.signed_papers import files_of, scanned_forms
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0
MIB = 1024 * 1024


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "data", "12m") as folder:
        yield folder


@pytest.fixture
def config(disk: Path) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(disk)},
                          health={"scan_min_free_mb": 1}, retention={"delivered_days": 30})


@pytest.fixture
def conn(config: Config) -> Iterator[sqlite3.Connection]:
    c = connect(config.paths.database)
    yield c
    c.close()


def _signed(conn: sqlite3.Connection, config: Config, seed: int) -> tuple[int, str]:
    forms = scanned_forms(conn, config, ((seed,),))
    return forms.dossier_id, dossiers.sign_off(conn, config, forms.dossier_id, "Nguyễn Thị Lan")


def _deliver(conn: sqlite3.Connection, record_id: str, at: float) -> None:
    assert outbox.mark_delivered(
        conn, record_id, {"sha256": dossiers.record_of(conn, record_id).sha256}, now=at)


def _pdf_pages(pdf: bytes) -> int:
    """Pages of a PDF as imaging.assemble_pdf writes it (one /Type /Page object each)."""
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))


def test_the_scan_floor_turns_exactly_below_the_threshold(
        conn: sqlite3.Connection, config: Config, disk: Path) -> None:
    """At exactly scan_min_free_mb free a scan is still allowed; one page less is not."""
    floor = config.health.scan_min_free_mb * MIB
    at = fill(disk, leave=floor, name="at")
    assert free_bytes(disk) == floor
    assert not disk_below_scan_floor(config), "at the threshold is not below it"
    below = fill(disk, leave=floor - 4096, name="below")
    assert free_bytes(disk) == floor - 4096
    assert disk_below_scan_floor(config)
    below.unlink()
    at.unlink()
    assert not disk_below_scan_floor(config)


def test_the_retention_run_frees_a_disk_full_to_the_last_byte(
        conn: sqlite3.Connection, config: Config, disk: Path, tmp_path: Path) -> None:
    """`appliance purge` (as its timer runs it) on a disk with 0 bytes free, while the
    services hold the database open: the delivered dossier's files go, the undelivered
    one's stay, and the disk has room again."""
    old, old_record = _signed(conn, config, 1)
    kept, _kept_record = _signed(conn, config, 2)
    assert outbox.claim_next(conn) is not None
    _deliver(conn, old_record, time.time() - 31 * DAY)
    files = files_of(conn, config)
    old_files = [(pg.sha256, ".png") for p in dossiers.get(conn, old).papers for pg in p.pages]
    kept_files = [(pg.sha256, ".png") for p in dossiers.get(conn, kept).papers for pg in p.pages]
    cfg = tmp_path / "purge.toml"
    cfg.write_text(dump(config), encoding="utf-8")
    filler = fill(disk)
    try:
        assert free_bytes(disk) == 0
        done = subprocess.run([sys.executable, "-m", "appliance", "purge", "--json",
                               "--config", str(cfg)], cwd=REPO, capture_output=True,
                              text=True, timeout=90, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert dossiers.get(conn, old).purged_at is not None
        assert not any(files.exists(s, x) for s, x in old_files)
        assert free_bytes(disk) > 0, "the retention run gave no space back"
        assert dossiers.get(conn, kept).purged_at is None
        assert all(files.exists(s, x) for s, x in kept_files)
    finally:
        filler.unlink()
    assert audit.entries(conn, old)[-1].action == "purge"
    assert audit.verify(conn).ok


def test_no_clock_jump_purges_a_record_on_its_way(conn: sqlite3.Connection, config: Config) -> None:
    """Claimed ('sending') or given back ('pending'), a record's dossier and the PDFs
    its body names survive a retention run ten years on; acknowledged, it goes only
    at its acknowledgement plus delivered_days, even when that acknowledgement was
    stamped by a clock running ahead."""
    files = files_of(conn, config)
    dossier_id, record_id = _signed(conn, config, 3)
    body_files = [(p.pdf_sha256, ".pdf") for p in dossiers.get(conn, dossier_id).papers]
    page_files = [(pg.sha256, ".png") for p in dossiers.get(conn, dossier_id).papers
                  for pg in p.pages]
    assert body_files and page_files
    future = time.time() + 3650 * DAY
    assert outbox.claim_next(conn) is not None
    assert outbox.state_of(conn, record_id) is outbox.OutboxState.SENDING
    assert erasure.purge_due(conn, files, config, now=future) == []
    assert outbox.reset_stale(conn) == 1  # the sync service restarted: back to pending
    assert erasure.purge_due(conn, files, config, now=future) == []
    assert dossiers.get(conn, dossier_id).purged_at is None
    assert all(files.exists(s, x) for s, x in body_files + page_files)

    # The ack came while the clock ran 100 days ahead; the clock was then put right.
    acked_at = time.time() + 100 * DAY
    assert outbox.claim_next(conn) is not None
    _deliver(conn, record_id, acked_at)
    due = acked_at + config.retention.delivered_days * DAY
    assert erasure.purge_due(conn, files, config) == []  # now: well before
    assert erasure.purge_due(conn, files, config, now=due - 1) == []
    assert [r.dossier_id for r in erasure.purge_due(conn, files, config, now=due)] == \
        [dossier_id]
    assert not any(files.exists(s, x) for s, x in page_files)
    d = dossiers.get(conn, dossier_id)
    assert d.code and all(p.result_code for p in d.papers)  # codes and hashes remain
    assert [pg.sha256 for p in d.papers for pg in p.pages] == [s for s, _ in page_files]
    assert dossiers.record_of(conn, record_id).sha256


def test_an_ack_stamped_by_a_clock_in_1970_keeps_its_whole_retention(
        conn: sqlite3.Connection, config: Config) -> None:
    """A board without a real-time clock runs in 1970 until NTP answers; an ack that
    came then was stamped 1970, and the first retention run after the clock was put
    right purged the dossier's local pages at once. Now such a stamp counts from that
    run (raised by the second review of issue 12)."""
    files = files_of(conn, config)
    dossier_id, record_id = _signed(conn, config, 4)
    page_files = [(pg.sha256, ".png") for p in dossiers.get(conn, dossier_id).papers
                  for pg in p.pages]
    assert outbox.claim_next(conn) is not None
    _deliver(conn, record_id, 400 * DAY)  # 1971-02-05: the clock before NTP
    now = time.time()
    assert erasure.purge_due(conn, files, config, now=now) == []
    assert all(files.exists(s, x) for s, x in page_files)
    due = now + config.retention.delivered_days * DAY
    assert erasure.purge_due(conn, files, config, now=due - 1) == []
    assert [r.dossier_id for r in erasure.purge_due(conn, files, config, now=due)] == \
        [dossier_id]
    assert not any(files.exists(s, x) for s, x in page_files)


def _page(n: int) -> Image.Image:
    image = Image.new("RGB", (48, 64), "white")
    ImageDraw.Draw(image).rectangle((4, 4 + n, 40, 12 + n), fill="black")
    return image


def test_a_disk_that_fills_between_a_pages_files_and_its_row(
        conn: sqlite3.Connection, config: Config, disk: Path) -> None:
    """The page's PNG and thumbnail fit, the row's WAL frame does not: the store says
    the disk is full and leaves no row; once space is back the same page is stored
    and reads back whole (its file left from the failed try is taken as it is)."""
    files = files_of(conn, config)
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    pages.store_page(conn, files, dossier_id, None, _page(1), "Tờ khai", dpi=100)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL must grow for any write
    assert os.path.getsize(str(config.paths.database) + "-wal") == 0
    before = _stored_files(disk)
    filler = fill(disk, leave=2 * 4096)  # a page each for the PNG and the thumbnail
    try:
        with pytest.raises(Exception) as failed:  # noqa: PT011 - checked just below
            pages.store_page(conn, files, dossier_id, None, _page(2), "Tờ khai", dpi=100)
        assert is_disk_full(failed.value) or is_disk_full(failed.value.__cause__), failed.value
        new = sorted(f[64 + len("files/xx/"):] for f in _stored_files(disk) - before)
        assert new == [".png", ".thumb.jpg"], f"failed elsewhere than at the row: {new}"
    finally:
        filler.unlink()
    d = dossiers.get(conn, dossier_id)
    assert d.page_count == 1, "no row for a page whose store failed"
    for p in d.papers:  # every row that exists has its file, whole
        for pg in p.pages:
            assert files.read(pg.sha256, ".png")
    again = pages.store_page(conn, files, dossier_id, None, _page(2), "Tờ khai", dpi=100)
    assert dossiers.get(conn, dossier_id).page_count == 2
    assert files.read(again.sha256, ".png")
    assert files.read_derived(again.sha256, ".thumb.jpg")


def test_a_page_deleted_on_a_full_disk_leaves_the_paper_whole(
        conn: sqlite3.Connection, config: Config, disk: Path) -> None:
    files = files_of(conn, config)
    forms = scanned_forms(conn, config, ((4, 5),), submit=False)
    [paper] = dossiers.get(conn, forms.dossier_id).papers
    assert len(paper.pages) == 2 and _pdf_pages(files.read(paper.pdf_sha256, ".pdf")) == 2
    # Room for the transaction's WAL frames (as on a device whose WAL file has grown
    # before), none for a new PDF.
    for n in range(200):
        conn.execute("INSERT INTO device_state (key, value, updated_at) VALUES (?, ?, 0)",
                     (f"redteam.{n}", "x" * 3000))
    conn.execute("DELETE FROM device_state WHERE key LIKE 'redteam.%'")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    filler = fill(disk)
    try:
        with pytest.raises(Exception) as failed:  # noqa: PT011 - checked just below
            pages_edit.delete_page(conn, files, config, forms.dossier_id, paper.pages[0].id)
        assert is_disk_full(failed.value) or is_disk_full(failed.value.__cause__), failed.value
    finally:
        filler.unlink()
    # Space is back: the edit did not happen, or the paper's PDF is its pages, or it
    # has none and waits for the worker's recovery (which then makes it from the
    # pages; submitting is refused meanwhile).
    [after] = dossiers.get(conn, forms.dossier_id).papers
    if after.pdf_sha256 is None:
        assert after.id in [p.id for p in pages.unfinished_papers(conn)]
        return
    assert _pdf_pages(files.read(after.pdf_sha256, ".pdf")) == len(after.pages), (
        f"{len(after.pages)} page row(s), a PDF of "
        f"{_pdf_pages(files.read(after.pdf_sha256, '.pdf'))} page(s)")


def _stored_files(disk: Path) -> set[str]:
    """Every file under the file store, temporary names included."""
    return {str(p.relative_to(disk)) for p in (disk / "files").rglob("*") if p.is_file()}


def _sign_off_as_the_disk_gives_out(conn: sqlite3.Connection, config: Config, disk: Path,
                                    dossier_id: int, pages_free: Iterable[int],
                                    allowed: Callable[[str], bool]) -> tuple[str, int]:
    """Sign the dossier off with only `pages_free` 4 KiB pages free, in turn, until it
    works (then: its record id and how many tries failed for want of disk). After each
    failure: the dossier is still submitted, no record or outbox row, no file of the
    dossier gone, and no new file but those `allowed` lets pass."""
    before = _stored_files(disk)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the commit, too, needs new space
    failed = 0
    for free in pages_free:
        filler = fill(disk, leave=free * 4096, name=f"f{free}")
        try:
            return dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan"), failed
        except Exception as e:  # noqa: BLE001 - checked just below
            assert is_disk_full(e) or is_disk_full(e.__cause__), repr(e)
            failed += 1
        finally:
            filler.unlink()
        assert dossiers.get(conn, dossier_id).status == "submitted"
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        stray = {f for f in _stored_files(disk) - before if not allowed(f)}
        assert not stray, f"{free} pages free: left behind {sorted(stray)}"
        assert before <= _stored_files(disk), "a file of the dossier went"
    return dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan"), failed


def test_a_sign_off_that_runs_out_of_disk_issues_nothing(
        conn: sqlite3.Connection, config: Config, disk: Path) -> None:
    """Sign-off writes each paper's signed PDF (~190 KB here, 47 pages), then its
    metadata document (one page), then commits. With the disk giving out at each
    step in turn (nothing free, the first paper's results, the second's, the commit)
    it fails with the disk-full error and issues nothing: no record, no outbox row,
    no temporary file, no complete signed result (PDF with its metadata) left; once
    space is back it signs. (A signed PDF left without its metadata: the test
    below.)"""
    forms = scanned_forms(conn, config, ((6,), (7,)))
    record_id, failed = _sign_off_as_the_disk_gives_out(
        conn, config, disk, forms.dossier_id, (0, 20, 46, 47, 48, 49, *range(92, 101)),
        allowed=lambda f: f.endswith(".pdf") and "/." not in f)
    assert failed >= 4, "the disk never gave out where it was meant to"
    stray_meta = [f for f in _stored_files(disk) if f.endswith(".result.json")]
    assert len(stray_meta) == 2, stray_meta  # the two papers' own, no other
    d = dossiers.get(conn, forms.dossier_id)
    assert d.status == "signed" and all(p.result_code for p in d.papers)
    assert outbox.state_of(conn, record_id) is outbox.OutboxState.PENDING
    assert audit.verify(conn).ok


def test_a_sign_off_that_runs_out_of_disk_leaves_no_signed_pdf(
        conn: sqlite3.Connection, config: Config, disk: Path) -> None:
    forms = scanned_forms(conn, config, ((6,), (7,)))
    _sign_off_as_the_disk_gives_out(conn, config, disk, forms.dossier_id, range(44, 52),
                                    allowed=lambda _f: False)
