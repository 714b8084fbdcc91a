"""Red team 13 (issue 12): the orphan sweep's two transactions per batch and its
disk-full path (erasure.remove_orphans, c472907 and afc075d).

Why: each batch's audit line is committed before its unlinks, then a second
transaction looks again under the lock, unlinks, and writes a 'remove_orphans_kept'
line for files a page took in between; on a disk full to the last byte the files go
first and the line follows "in the space they leave" (disk_full: true).

Looked at:
- a page stored between the two transactions with the very files of the batch (the
  same photo scanned again): kept, and the trail says so;
- kill -9 of the real `appliance purge` between the two transactions, then a page
  taking one of the batch's files back, then the next run: every file whole or gone,
  the chain verifies, the signed results named;
- the disk-full path when the space the unlinks leave is less than the commit of the
  line needs (an orphan signed result of a few KB on a tmpfs: one 4 KiB page each):
  the files are gone and the line is not written, ever.

Real `appliance purge` processes and a real tmpfs (tests/helpers/small_disk.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from appliance.records import dossiers, erasure, pages
from appliance.store import audit
from appliance.store.db import connect, sealer_of
from appliance.store.files import FileStore
from appliance.system.config import Config, dump, with_overrides
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0

# The real purge, killed -9 at the start of a batch's second transaction: its line
# committed, none of its files unlinked yet.
KILLED_BETWEEN = """
import os, signal, sys
from appliance.records import erasure
real, calls = erasure._going, [0]
def going(*args, **kwargs):
    calls[0] += 1
    if calls[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
erasure._going = going
from appliance.cli import main
main(["--config", sys.argv[1], "purge"])
"""


def _photo() -> Image.Image:
    image = Image.new("RGB", (240, 320), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 20, 200, 60), fill="black")
    draw.text((20, 100), "CCCD 001234", fill="black")
    return image


def _device(data: Path) -> tuple[Config, Path, sqlite3.Connection, FileStore]:
    config = with_overrides(Config(), paths={"data_dir": str(data)},
                            device={"id": "kiosk-01"}, health={"scan_min_free_mb": 1},
                            retention={"delivered_days": 30})
    cfg = data.parent / f"{data.name}.toml"
    cfg.write_text(dump(config), encoding="utf-8")
    conn = connect(config.paths.database)
    return config, cfg, conn, FileStore(config.paths.files, sealer=sealer_of(conn))


def _age(files: FileStore, items: list[tuple[str, str]], seconds: float = 2 * DAY) -> None:
    when = time.time() - seconds
    for sha, suffix in items:
        os.utime(files.path(sha, suffix), (when, when))


def _erased_page(conn: sqlite3.Connection, config: Config, files: FileStore) -> str:
    """A page of a dossier erased by a process killed after its commit and before its
    unlinks (erasure's documented crash window), over SWEEP_DAYS ago (purge_due's
    remove_files no longer looks at it): files only the orphan sweep removes."""
    gone = dossiers.create(conn, config, "khac")
    stored = pages.store_page(conn, files, gone, None, _photo(), "Ảnh", dpi=200)
    conn.execute("UPDATE dossiers SET erased_at=?, status='cancelled' WHERE id=?",
                 (time.time() - (erasure.SWEEP_DAYS + 1) * DAY, gone))
    return stored.sha256


def _signed_results(files: FileStore, count: int, size: int) -> list[str]:
    """Signed results (PDF + metadata) no row names: a sign-off killed before commit."""
    out = []
    for n in range(count):
        sha = files.put(b"%PDF-1.7\n" + os.urandom(size) + n.to_bytes(4, "big"), ".pdf")
        files.put_derived(sha, ".result.json", json.dumps({"file": {"sha256": sha}}).encode())
        out.append(sha)
    return out


def _lines(conn: sqlite3.Connection, op: str = "remove_orphans") -> list[dict]:
    return [e.detail for e in audit.entries(conn) if e.detail.get("op") == op]


def _purge(cfg: Path, script: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ([sys.executable, "-c", script, str(cfg)] if script else
            [sys.executable, "-m", "appliance", "--config", str(cfg), "purge"])
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_page_stored_between_the_line_and_the_unlinks_keeps_its_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kiosk's worker (its own connection) stores the same photo again in the
    instant between a batch's two transactions: its files stay, its page reads, and a
    'remove_orphans_kept' line says 2 files were kept."""
    config, _cfg, conn, files = _device(tmp_path / "data")
    worker = connect(config.paths.database)
    try:
        sha = _erased_page(conn, config, files)
        _age(files, [(sha, ".png"), (sha, ".thumb.jpg")])
        live = dossiers.create(conn, config, "khac")
        real, entered, stored = erasure.transaction, [0], []

        @contextlib.contextmanager
        def transaction(c: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
            entered[0] += 1
            if entered[0] == 2:     # the batch's line committed, its unlinks not begun
                stored.append(pages.store_page(worker, FileStore(
                    config.paths.files, sealer=sealer_of(worker)), live, None, _photo(),
                    "Ảnh", dpi=200))
            with real(c) as inner:
                yield inner

        monkeypatch.setattr(erasure, "transaction", transaction)
        removed = erasure.remove_orphans(conn, files)
        monkeypatch.undo()
        assert stored and stored[0].sha256 == sha
        assert removed == 0
        assert files.read(sha, ".png") and files.read_derived(sha, ".thumb.jpg")
        assert [d["files_removed"] for d in _lines(conn)] == [2]
        assert [d["files_kept"] for d in _lines(conn, "remove_orphans_kept")] == [2]
        assert audit.verify(conn).ok
    finally:
        worker.close()
        conn.close()


def test_a_kill_between_the_line_and_the_unlinks(tmp_path: Path) -> None:
    """kill -9 between a batch's two transactions; a page takes one of its files back
    before the next run. Held: no file lost or half there, the chain verifies, the next
    run removes the rest, every signed result named, the page taken back reads. The
    trail then counts removals twice (a documented trade-off: 'a kill can name a file
    twice'), and names as removed the two files the page took back, with no 'kept'
    line for them: the figures are in the assertions."""
    config, cfg, conn, files = _device(tmp_path / "data")
    try:
        sha = _erased_page(conn, config, files)
        results = _signed_results(files, 3, 1500)
        orphans = [(sha, ".png"), (sha, ".thumb.jpg")] + \
            [(r, s) for r in results for s in (".pdf", ".result.json")]
        _age(files, orphans)

        killed = _purge(cfg, KILLED_BETWEEN)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-800:]
        assert all(files.exists(s, x) for s, x in orphans)
        assert [p.name for p in files.root.glob("*/.*")] == []
        assert [d["files_removed"] for d in _lines(conn)] == [8]
        assert audit.verify(conn).ok

        live = dossiers.create(conn, config, "khac")
        taken = pages.store_page(conn, files, live, None, _photo(), "Ảnh", dpi=200)
        assert taken.sha256 == sha

        again = _purge(cfg)
        assert again.returncode == 0, again.stderr[-800:]
        assert files.read(sha, ".png") and files.read_derived(sha, ".thumb.jpg")
        assert not any(files.exists(r, s) for r in results for s in (".pdf", ".result.json"))
        assert audit.verify(conn).ok
        lines = _lines(conn)
        assert {r for d in lines for r in d["signed_results"]} == set(results)
        # 6 files removed in all; the trail says 8 + 6, and no 'kept' line.
        assert [d["files_removed"] for d in lines] == [8, 6]
        assert _lines(conn, "remove_orphans_kept") == []
    finally:
        conn.close()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "8m") as folder:
        yield folder


def test_a_signed_result_removed_on_a_full_disk_is_named_in_the_trail(disk: Path) -> None:
    config, cfg, conn, files = _device(disk / "data")
    try:
        results = _signed_results(files, 1, 3000)
        orphans = [(results[0], ".pdf"), (results[0], ".result.json")]
        _age(files, orphans)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(disk)
        try:
            assert free_bytes(disk) == 0
            full = _purge(cfg)
        finally:
            filler.unlink()
        spaced = _purge(cfg)
        assert spaced.returncode == 0, spaced.stderr[-800:]
        gone = [f"{s[:12]}{x}" for s, x in orphans if not files.exists(s, x)]
        named = {r for d in _lines(conn) for r in d["signed_results"]}
        logged = results[0] in full.stderr + spaced.stderr
        assert audit.verify(conn).ok
        assert not gone or results[0] in named, (
            f"{gone} removed on the full disk (exit {full.returncode}: "
            f"{full.stderr.strip().splitlines()[-1:]}); the signed result is named by "
            f"{len(named)} audit line(s) after a run with space, in the log: {logged}")
    finally:
        conn.close()


def test_a_disk_full_only_for_the_line_first_frees_and_names(disk: Path) -> None:
    """The control: orphans big enough that the unlinks leave room for the line; the
    files go, the line says disk_full, the signed result is named, the chain verifies."""
    config, cfg, conn, files = _device(disk / "data")
    try:
        results = _signed_results(files, 2, 200_000)
        orphans = [(r, s) for r in results for s in (".pdf", ".result.json")]
        _age(files, orphans)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(disk)
        try:
            done = _purge(cfg)
        finally:
            filler.unlink()
        assert done.returncode == 0, done.stderr[-800:]
        assert not any(files.exists(s, x) for s, x in orphans)
        lines = _lines(conn)
        assert [(d["files_removed"], d.get("disk_full")) for d in lines] == [(4, True)]
        assert set(lines[0]["signed_results"]) == set(results)
        assert audit.verify(conn).ok
    finally:
        conn.close()
