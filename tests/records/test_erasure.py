"""Erasure on a citizen's request before sending, the retention purge after delivery, and
a whole scan → OCR → sign flow that leaves no personal data in clear on the disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from appliance.imaging.pages import assemble_pdf
from appliance.ocr.engine import PageText, TextLine
from appliance.records import audit, dossiers, erasure
from appliance.records import pages as page_store
from appliance.records.errors import InvalidState
from appliance.store import outbox
from appliance.store.files import FileStore
from appliance.system.config import Config, with_overrides

NAME = "NGUYỄN VĂN THƯỜNG"
CCCD = "001203009876"
PHONE = "0912345678"
BHXH = "0123456789"
DAY = 86400.0


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")},
                          retention={"delivered_days": 30})


@pytest.fixture
def files(config: Config, conn: sqlite3.Connection) -> FileStore:
    return FileStore(config.paths.files)


def _page(n: int) -> Image.Image:
    image = Image.new("RGB", (160, 220), "white")
    ImageDraw.Draw(image).rectangle((10, 10 + n % 20 * 9, 140, 30 + n % 20 * 9), fill="black")
    return image


def scanned(conn: sqlite3.Connection, config: Config, files: FileStore, seed: int = 0) -> int:
    """A dossier stored the way the worker stores one: pages, OCR text, fields, PDF."""
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    paper = None
    images = []
    for n in range(2):
        image = _page(seed * 10 + n)
        images.append(image)
        stored = page_store.store_page(conn, files, dossier_id, paper, image, "Tờ khai TK1-TS",
                                       dpi=200)
        paper = stored.paper_id
        page_store.set_page_text(conn, stored.page_id, PageText(0.1, (
            TextLine(f"Họ và tên: {NAME}", (0, 0, 1, 1), 0.9, ()),
            TextLine(f"Số CCCD: {CCCD} Điện thoại: {PHONE} Mã số BHXH: {BHXH}",
                     (0, 0, 1, 1), 0.9, ()))))
    assert paper is not None
    pdf = assemble_pdf(images, 200, title="Tờ khai", author=config.device.agency_name)
    page_store.store_paper_pdf(conn, files, paper, pdf, {"values": {
        "full_name": NAME, "cccd": CCCD, "phone": PHONE, "bhxh_number": BHXH,
        "address": "Số 12 phố Kim Mã, Ba Đình", "birth_date": "02/03/1984"}})
    return dossier_id


def _files_of(conn: sqlite3.Connection, files: FileStore,
              dossier_id: int) -> list[tuple[str, str]]:
    d = dossiers.get(conn, dossier_id)
    out = [(pg.sha256, suffix) for p in d.papers for pg in p.pages
           for suffix in (".png", ".thumb.jpg")]
    return out + [(p.pdf_sha256, ".pdf") for p in d.papers if p.pdf_sha256]


def _deliver(conn: sqlite3.Connection, record_id: str, at: float) -> None:
    assert outbox.claim_next(conn) is not None
    outbox.mark_delivered(conn, record_id, {"sha256": dossiers.record_of(conn, record_id).sha256},
                          now=at)


def _disk_bytes(data_dir: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(data_dir.rglob("*")) if p.is_file()]


def test_no_personal_data_in_clear_on_disk_after_scan_ocr_sign(conn, config, files):
    dossier_id = scanned(conn, config, files)
    dossiers.submit(conn, dossier_id)
    record_id = dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")
    # what the faces and the sync service read is the clear data...
    d = dossiers.get(conn, dossier_id)
    assert d.papers[0].fields["values"]["cccd"] == CCCD
    assert NAME in (d.papers[0].pages[0].ocr_text or "")
    assert CCCD in dossiers.record_of(conn, record_id).body_json
    claimed = outbox.claim_next(conn)
    assert claimed is not None and CCCD in claimed.body_json
    assert page_store.load_image(files, d.papers[0].pages[0].sha256).size == (160, 220)
    # ... while the database (with its WAL) and the files folder hold none of it
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    needles = [s.encode("utf-8") for s in (NAME, CCCD, PHONE, BHXH, "Kim Mã")]
    needles += [s.encode("utf-16-le") for s in (CCCD,)]
    seen = _disk_bytes(Path(config.paths.data_dir))
    assert any(p.name.startswith("appliance.sqlite3") for p, _ in seen)
    assert any(p.suffix == ".pdf" for p, _ in seen)
    for path, data in seen:
        for needle in needles:
            assert needle not in data, f"{needle!r} in clear in {path}"
        if "files" in path.parts:  # no image or document format is recognisable either
            assert not data.startswith((b"\x89PNG", b"%PDF", b"\xff\xd8\xff")), path


def test_erasure_before_sending_removes_files_and_keeps_codes(conn, config, files):
    dossier_id = scanned(conn, config, files)
    dossiers.submit(conn, dossier_id)
    stored = _files_of(conn, files, dossier_id)
    code = dossiers.get(conn, dossier_id).code
    removal = erasure.erase(conn, files, dossier_id, "Nguyễn Thị Lan")
    assert removal.files_removed == len(stored) == 5
    assert not any(files.exists(sha, sfx) for sha, sfx in stored)
    d = dossiers.get(conn, dossier_id)
    assert d.code == code and d.status == "cancelled" and d.erased_at is not None
    assert [pg.sha256 for p in d.papers for pg in p.pages] == [s for s, x in stored[::2][:2]]
    assert d.papers[0].fields == {} and all(pg.ocr_text is None for pg in d.papers[0].pages)
    last = audit.entries(conn, dossier_id)[-1]
    assert last.action == "delete" and last.actor == "Nguyễn Thị Lan"
    assert audit.verify(conn).ok
    with pytest.raises(InvalidState):
        erasure.erase(conn, files, dossier_id, "Nguyễn Thị Lan")


def test_erasure_of_a_signed_unsent_dossier_withdraws_its_record(conn, config, files):
    dossier_id = scanned(conn, config, files)
    dossiers.submit(conn, dossier_id)
    record_id = dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")
    erasure.erase(conn, files, dossier_id, "Nguyễn Thị Lan")
    assert outbox.state_of(conn, record_id) is None
    assert outbox.claim_next(conn) is None, "an erased record is never sent"
    d = dossiers.get(conn, dossier_id)
    assert d.status == "signed" and d.papers[0].result_code  # codes kept
    assert CCCD not in dossiers.record_of(conn, record_id).body_json


def test_erasure_after_sending_is_refused(conn, config, files):
    dossier_id = scanned(conn, config, files)
    dossiers.submit(conn, dossier_id)
    dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")
    assert outbox.claim_next(conn) is not None  # on its way
    with pytest.raises(erasure.AlreadySent):
        erasure.erase(conn, files, dossier_id, "Nguyễn Thị Lan")
    assert all(files.exists(s, x) for s, x in _files_of(conn, files, dossier_id))


def test_erasure_of_a_record_given_back_after_a_try_is_refused(conn, config, files):
    """Claimed by sync, then pending again (its connection lost, sync restarted): it may
    be at the central office already, so only the central office can erase it (raised
    by the third review of issue 12)."""
    dossier_id = scanned(conn, config, files)
    dossiers.submit(conn, dossier_id)
    record_id = dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")
    assert outbox.claim_next(conn) is not None
    assert outbox.reset_stale(conn) == 1
    assert outbox.state_of(conn, record_id) is outbox.OutboxState.PENDING
    with pytest.raises(erasure.AlreadySent):
        erasure.erase(conn, files, dossier_id, "Nguyễn Thị Lan")
    assert outbox.state_of(conn, record_id) is outbox.OutboxState.PENDING  # still goes
    assert all(files.exists(s, x) for s, x in _files_of(conn, files, dossier_id))


def test_a_page_shared_with_a_live_dossier_keeps_its_file(conn, config, files):
    first = scanned(conn, config, files, seed=0)
    second = scanned(conn, config, files, seed=0)  # the same papers scanned again
    erasure.erase(conn, files, first, "Lan")
    assert all(files.exists(s, x) for s, x in _files_of(conn, files, second))


def test_purge_only_after_acknowledgement_plus_retention(conn, config, files):
    now = 1_800_000_000.0
    delivered = scanned(conn, config, files, seed=1)
    pending = scanned(conn, config, files, seed=2)
    records = {}
    for dossier_id in (delivered, pending):
        dossiers.submit(conn, dossier_id)
        records[dossier_id] = dossiers.sign_off(conn, config, dossier_id, "Lan")
    _deliver(conn, records[delivered], now - 31 * DAY)
    kept = _files_of(conn, files, pending)
    old = _files_of(conn, files, delivered)

    assert erasure.purge_due(conn, files, config, now=now - 2 * DAY) == []  # 29 days only
    done = erasure.purge_due(conn, files, config, now=now)
    assert [r.dossier_id for r in done] == [delivered]
    assert not any(files.exists(s, x) for s, x in old)
    assert all(files.exists(s, x) for s, x in kept), "undelivered data is never purged"
    d = dossiers.get(conn, delivered)
    assert d.purged_at == now and d.papers[0].result_code and d.code
    assert [pg.sha256 for p in d.papers for pg in p.pages]  # hashes remain
    assert d.papers[0].fields == {}
    assert dossiers.record_of(conn, records[delivered]).sha256  # the signed hash stays
    assert audit.entries(conn, delivered)[-1].action == "purge"
    assert erasure.purge_due(conn, files, config, now=now + 400 * DAY) == []  # pending stays
    assert audit.verify(conn).ok


def test_files_no_live_dossier_names_are_removed_once_old_enough(conn, config, files):
    import time

    from appliance.records import pages_edit

    dossier_id = scanned(conn, config, files, seed=3)
    [paper] = dossiers.get(conn, dossier_id).papers
    gone = paper.pages[0]
    pages_edit.delete_page(conn, files, config, dossier_id, gone.id)
    assert files.exists(gone.sha256, ".png")  # kept by the edit: the store is shared
    assert erasure.remove_orphans(conn, files) == 0  # too young: may be on its way
    later = time.time() + 2 * DAY
    assert erasure.remove_orphans(conn, files, now=later) == 3  # page, thumbnail, old PDF
    assert not files.exists(gone.sha256, ".png") and not files.exists(gone.sha256, ".thumb.jpg")
    live = _files_of(conn, files, dossier_id)
    assert live and all(files.exists(s, x) for s, x in live)
    assert audit.entries(conn, dossier_id)[-1].action == "correction"


def test_a_cancelled_dossier_is_purged_after_retention_cancelled_days(conn, config, files):
    """A dossier returned to the citizen is never signed nor sent, so the delivered
    purge never takes it: its pages and fields go once it has been untouched for
    retention.cancelled_days (not a day before); an open dossier stays."""
    import time

    from appliance.records import corrections

    now = time.time()
    returned = scanned(conn, config, files, seed=1)
    still_open = scanned(conn, config, files, seed=2)  # other pages (seed 3 = seed 1)
    dossiers.submit(conn, returned)
    corrections.return_to_citizen(conn, dossier_id=returned, officer="Lan",
                                  reason="thiếu trang 2")
    old = _files_of(conn, files, returned)
    kept = _files_of(conn, files, still_open)
    days = config.retention.cancelled_days
    assert erasure.purge_due(conn, files, config, now=now + (days - 1) * DAY) == []
    assert all(files.exists(s, x) for s, x in old)
    later = now + (days + 1) * DAY
    done = erasure.purge_due(conn, files, config, now=later)
    assert [r.dossier_id for r in done] == [returned]
    assert not any(files.exists(s, x) for s, x in old)
    assert all(files.exists(s, x) for s, x in kept)
    d = dossiers.get(conn, returned)
    assert d.status == "cancelled" and d.purged_at == later and d.code
    assert d.papers[0].fields == {} and [pg.sha256 for p in d.papers for pg in p.pages]
    assert audit.entries(conn, returned)[-1].action == "purge"
    assert dossiers.get(conn, still_open).purged_at is None  # open: still the citizen's
    assert erasure.purge_due(conn, files, config, now=later + DAY) == []  # once
    assert audit.verify(conn).ok
