"""Red team 13 (issue 12): FileStore.hold, the look under the row's write lock (afc075d).

Why: store_page, store_paper_pdf and refresh_pdf put (and fsync) their files before
BEGIN IMMEDIATE again, and only hold them under it: os.utime of the file put, or a put
again from the plaintext if a removal (erasure, the orphan sweep) took it in between.
Looked at: a removal between the put and the row on a disk full to the last byte (the
hold must then write, and cannot); a stored file damaged by the disk, not by a crash
(tmp+rename rules that out), which the put before the row finds under its name.

The removal is the real one (erasure.erase of the other dossier that shares the page:
the content-addressed store keeps one file for both), at the real instant (after the
put, before the transaction); the disk is a real tmpfs (tests/helpers/small_disk.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from appliance.records import dossiers, erasure, pages
from appliance.store.db import connect, sealer_of
from appliance.store.errors import DiskFull, StoreError, is_disk_full
from appliance.store.files import FileStore
from appliance.system.config import Config, with_overrides
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs

pytestmark = pytest.mark.timeout(60)

OFFICER = "Trần Thị Hoa"


def _photo(seed: int = 0) -> Image.Image:
    image = Image.new("RGB", (240, 320), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 20 + seed, 200, 60 + seed), fill="black")
    draw.text((20, 100), f"CCCD {seed:06d}", fill="black")
    return image


class _RemovedAfterPut(FileStore):
    """A file store whose put of a page's thumbnail (the last put before store_page's
    transaction) runs `after` once: what another process does in that instant."""

    after = None

    def put_derived(self, sha256: str, suffix: str, data: bytes) -> None:
        super().put_derived(sha256, suffix, data)
        hook, self.after = self.after, None
        if hook is not None:
            hook(sha256)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "data", "8m") as folder:
        yield folder


def _device(data: Path) -> tuple[Config, sqlite3.Connection]:
    config = with_overrides(Config(), paths={"data_dir": str(data)},
                            health={"scan_min_free_mb": 1})
    return config, connect(config.paths.database)


def _pages_of(conn: sqlite3.Connection, dossier_id: int) -> int:
    return int(conn.execute(
        "SELECT COUNT(*) FROM pages pg JOIN papers pa ON pa.id = pg.paper_id "
        "WHERE pa.dossier_id=?", (dossier_id,)).fetchone()[0])


def test_a_removal_between_put_and_row_on_a_full_disk_commits_nothing(disk: Path) -> None:
    """The page of dossier B is the page dossier A had (the same photo scanned into
    both); A is erased between B's put and B's row, and the disk fills meanwhile: the
    hold must write again and cannot. Held: a disk-full error the kiosk knows, no row
    naming a missing file, no temporary left; with space back the same page stores."""
    config, conn = _device(disk)
    try:
        files = _RemovedAfterPut(config.paths.files, sealer=sealer_of(conn))
        a = dossiers.create(conn, config, "khac")
        pages.store_page(conn, files, a, None, _photo(), "Ảnh", dpi=200)
        b = dossiers.create(conn, config, "khac")
        fillers: list[Path] = []

        def erase_a_and_fill(sha: str) -> None:
            assert erasure.erase(conn, files, a, OFFICER).files_removed == 2
            assert not files.exists(sha, ".png")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            fillers.append(fill(disk))

        files.after = erase_a_and_fill
        try:
            with pytest.raises(StoreError) as raised:
                pages.store_page(conn, files, b, None, _photo(), "Ảnh", dpi=200)
            assert free_bytes(disk) == 0
        finally:
            for f in fillers:
                f.unlink()
        assert fillers, "the removal did not run between the put and the row"
        assert is_disk_full(raised.value), repr(raised.value)
        assert isinstance(raised.value, DiskFull), repr(raised.value)
        assert not conn.in_transaction
        assert _pages_of(conn, b) == 0
        assert [p.name for p in files.root.glob("*/.*")] == []
        stored = pages.store_page(conn, files, b, None, _photo(), "Ảnh", dpi=200)
        assert files.read(stored.sha256, ".png")
        assert files.read_derived(stored.sha256, ".thumb.jpg")
    finally:
        conn.close()


def test_a_removal_between_put_and_row_with_space_puts_the_file_again(
        tmp_path: Path) -> None:
    """The control: with space, the hold writes the files again; the row's page reads."""
    config, conn = _device(tmp_path / "data")
    try:
        files = _RemovedAfterPut(config.paths.files, sealer=sealer_of(conn))
        a = dossiers.create(conn, config, "khac")
        pages.store_page(conn, files, a, None, _photo(), "Ảnh", dpi=200)
        b = dossiers.create(conn, config, "khac")
        files.after = lambda sha: erasure.erase(conn, files, a, OFFICER)
        stored = pages.store_page(conn, files, b, None, _photo(), "Ảnh", dpi=200)
        assert files.after is None
        assert files.read(stored.sha256, ".png")
        assert files.read_derived(stored.sha256, ".thumb.jpg")
    finally:
        conn.close()


def test_a_truncated_stored_page_is_written_again_by_the_same_scan(tmp_path: Path) -> None:
    """A page file cut short by the disk (its size differs): the same page scanned
    again for another dossier writes it whole again (the put's size check)."""
    config, conn = _device(tmp_path / "data")
    try:
        files = FileStore(config.paths.files, sealer=sealer_of(conn))
        a = dossiers.create(conn, config, "khac")
        first = pages.store_page(conn, files, a, None, _photo(), "Ảnh", dpi=200)
        path = files.path(first.sha256, ".png")
        path.write_bytes(path.read_bytes()[:-100])
        b = dossiers.create(conn, config, "khac")
        again = pages.store_page(conn, files, b, None, _photo(), "Ảnh", dpi=200)
        assert again.sha256 == first.sha256
        assert files.read(again.sha256, ".png")
    finally:
        conn.close()


def test_a_damaged_stored_page_is_written_again_by_the_same_scan(tmp_path: Path) -> None:
    config, conn = _device(tmp_path / "data")
    try:
        files = FileStore(config.paths.files, sealer=sealer_of(conn))
        a = dossiers.create(conn, config, "khac")
        first = pages.store_page(conn, files, a, None, _photo(), "Ảnh", dpi=200)
        path = files.path(first.sha256, ".png")
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        path.write_bytes(bytes(blob))
        with pytest.raises(StoreError):
            files.read(first.sha256, ".png")
        b = dossiers.create(conn, config, "khac")
        again = pages.store_page(conn, files, b, None, _photo(), "Ảnh", dpi=200)
        assert _pages_of(conn, b) == 1
        try:
            files.read(again.sha256, ".png")
        except StoreError as e:
            pytest.fail(f"dossier {b}'s page was stored from a whole scan, yet its file "
                        f"does not open: {e}")
    finally:
        conn.close()
