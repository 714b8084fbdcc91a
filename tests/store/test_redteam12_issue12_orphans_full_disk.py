"""Red team 12 (issue 12): the orphan sweep on a data disk full to the last byte.

Why: c472907 made remove_orphans commit its audit line *before* it unlinks a batch
(so a kill never leaves a removal without its line). On a disk with no byte free that
commit cannot be written, and the sweep, which is part of the retention run that is
meant to give the disk back, now frees nothing, on every run, for as long as the disk
stays full. Before, it unlinked first (space back) and its audit line followed.

purge() already knows this trap for dossiers ("the run meant to give the disk back
freed nothing, ever": files first, commit after, on a full disk only); the sweep has
no such path. The orphans here are what the sweep exists for: files no row names (a
cancelled scan's transfers, pages a citizen deleted), old enough to go.

A real tmpfs (tests/helpers/small_disk.py) and the real `appliance purge` process as
its timer runs it, while this test holds the database open as the services do. The
WAL is checkpointed to zero bytes first, as it is after every service restarted (the
last connection to close removes it), so any commit needs new space.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.records import audit
from appliance.store.db import connect
from appliance.system.config import Config, dump, with_overrides
from tests.helpers.signed_papers import files_of
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0


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


def _orphans(conn: sqlite3.Connection, config: Config, count: int,
             size: int) -> list[Path]:
    """Files no row names, two days old: what the sweep is there to remove."""
    files = files_of(conn, config)
    made = []
    old = time.time() - 2 * DAY
    for i in range(count):
        sha = files.put(os.urandom(size - 64) + i.to_bytes(64, "big"), ".png")
        path = files.path(sha, ".png")
        os.utime(path, (old, old))
        made.append(path)
    return made


def _purge(config: Config, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "purge.toml"
    if not cfg.exists():
        cfg.write_text(dump(config), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "appliance", "purge", "--json",
                           "--config", str(cfg)], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)


def test_control_the_sweep_removes_old_orphans_with_space_left(
        conn: sqlite3.Connection, config: Config, tmp_path: Path) -> None:
    """With space, one run removes the orphans and writes one audit line for them."""
    orphans = _orphans(conn, config, 4, 256 * 1024)
    done = _purge(config, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not any(p.exists() for p in orphans)
    lines = [e for e in audit.entries(conn) if e.detail.get("op") == "remove_orphans"]
    assert sum(e.detail["files_removed"] for e in lines) == 4
    assert audit.verify(conn).ok


def test_the_sweep_gives_a_full_disk_back(
        conn: sqlite3.Connection, config: Config, disk: Path, tmp_path: Path) -> None:
    orphans = _orphans(conn, config, 6, 256 * 1024)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = fill(disk)
    try:
        assert free_bytes(disk) == 0
        runs = [_purge(config, tmp_path) for _ in range(2)]   # the timer, twice
        left = [p for p in orphans if p.exists()]
        freed = free_bytes(disk)
    finally:
        filler.unlink()
    said = "\n".join(r.stdout + r.stderr for r in runs)[-2000:]
    assert left == [], f"{len(left)} of {len(orphans)} orphans left, {freed} bytes " \
        f"free, exits {[r.returncode for r in runs]}: {said}"
    assert freed > 0
    # The removal is in the trail once space is back (at the latest at the next run).
    assert _purge(config, tmp_path).returncode == 0
    assert audit.verify(conn).ok
