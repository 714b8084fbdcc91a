"""Red team 8 (issue 12): kill -9 in the middle of a retention purge (`appliance purge`
as its timer runs it) and of a run of erasures (the web process erasing dossier after
dossier), each a real process killed while it works.

All or nothing per dossier, whatever the instant: the tombstones, the audit line and
(for an erasure) the withdrawn outbox row are one transaction; files go after it, and
files a kill left behind go at the next retention run (its sweep). So after the kill:
`appliance audit verify` passes; a dossier is either fully tombstoned with its one
audit line or untouched with every file it names; no undelivered record lost its
outbox row without its dossier being erased. After one more run: nothing of a purged
or erased dossier is left on the disk, and no dossier has two lines.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.records import dossiers, erasure
from appliance.store import outbox
from appliance.store.files import FileStore
from appliance.system.config import Config, dump, with_overrides
from tests.helpers.device_records import add_record

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0
DOSSIERS = 120


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")},
                          device={"id": "kiosk-01"}, retention={"delivered_days": 30})


def _config_file(config: Config, folder: Path) -> Path:
    path = folder / "appliance.toml"
    path.write_text(dump(config), encoding="utf-8")
    return path


def _signed(conn: sqlite3.Connection, config: Config, count: int) -> list[int]:
    out = []
    for _ in range(count):
        rec = add_record(conn, config.paths.files)
        out.append(int(conn.execute("SELECT dossier_id FROM records WHERE record_id=?",
                                    (rec.record_id,)).fetchone()[0]))
    return out


def _files(conn: sqlite3.Connection, dossier_id: int) -> list[tuple[str, str]]:
    d = dossiers.get(conn, dossier_id)
    return ([(pg.sha256, s) for p in d.papers for pg in p.pages for s in (".png", ".thumb.jpg")]
            + [(p.pdf_sha256, ".pdf") for p in d.papers if p.pdf_sha256])


def _gone(conn: sqlite3.Connection, column: str) -> set[int]:
    return {int(r[0]) for r in conn.execute(
        f"SELECT id FROM dossiers WHERE {column} IS NOT NULL")}


def _lines(conn: sqlite3.Connection, action: str) -> dict[int, int]:
    return {int(r[0]): int(r[1]) for r in conn.execute(
        "SELECT dossier_id, COUNT(*) FROM audit_log WHERE action=? AND dossier_id IS NOT "
        "NULL GROUP BY dossier_id", (action,))}


def _body_removed(conn: sqlite3.Connection, dossier_id: int) -> str | None:
    """Why the record's content went ("purged", "erased"), or None while it is there."""
    row = conn.execute("SELECT record_id FROM records WHERE dossier_id=?",
                       (dossier_id,)).fetchone()
    body = json.loads(dossiers.record_of(conn, row[0]).body_json)
    return body.get("removed")


def _audit_verify(cfg: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "appliance", "--config", str(cfg), "audit",
                           "verify", "--json"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _kill_mid_run(argv: list[str], conn: sqlite3.Connection, column: str, total: int,
                  log: Path) -> int:
    """Start `argv`, kill -9 it once it has done some dossiers and not all; how many
    were done when it died."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            done = len(_gone(conn, column))
            if done >= max(3, total // 4):
                break
            time.sleep(0.002)
        assert proc.poll() is None, f"it finished before the kill: {log.read_text()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    done = len(_gone(conn, column))
    assert 0 < done < total, f"{done} of {total} done: the kill did not land mid-run"
    return done


def test_kill_9_in_the_middle_of_appliance_purge(conn: sqlite3.Connection, config: Config,
                                                 tmp_path: Path) -> None:
    ids = _signed(conn, config, DOSSIERS)
    files = FileStore(config.paths.files)
    named = {d: _files(conn, d) for d in ids}
    items = outbox.claim_many(conn, DOSSIERS)
    acked = time.time() - 40 * DAY
    outbox.mark_delivered_many(conn, [(i.record_id, {"sha256": i.sha256}) for i in items],
                               now=acked)
    cfg = _config_file(config, tmp_path)
    argv = [sys.executable, "-m", "appliance", "--config", str(cfg), "purge"]
    _kill_mid_run(argv, conn, "purged_at", DOSSIERS, tmp_path / "purge.log")

    _audit_verify(cfg)
    purged = _gone(conn, "purged_at")
    lines = _lines(conn, "purge")
    assert set(lines) == purged and set(lines.values()) == {1}
    for d in ids:
        if d in purged:
            assert _body_removed(conn, d) == "purged"
        else:
            assert _body_removed(conn, d) is None
            missing = [f"{s[:12]}{x}" for s, x in named[d] if not files.exists(s, x)]
            assert missing == [], f"dossier {d}, not purged, lost files {missing}"

    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=90,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    _audit_verify(cfg)
    assert _gone(conn, "purged_at") == set(ids)
    assert set(_lines(conn, "purge").values()) == {1}
    left = [f"{s[:12]}{x}" for d in ids for s, x in named[d] if files.exists(s, x)]
    assert left == [], f"files of purged dossiers left after a second run: {left}"
    assert {r[0] for r in conn.execute("SELECT state FROM outbox")} == {"delivered"}


ERASE_ALL = """
import sys
from appliance.records import erasure
from appliance.store.db import connect, sealer_of
from appliance.store.files import FileStore
from appliance.system.service import load_config
config = load_config(sys.argv[1])
conn = connect(config.paths.database)
files = FileStore(config.paths.files, sealer=sealer_of(conn))
for dossier_id in map(int, sys.argv[2:]):
    erasure.erase(conn, files, dossier_id, "Trần Thị Hoa")
"""


def test_kill_9_in_the_middle_of_erasures(conn: sqlite3.Connection, config: Config,
                                          tmp_path: Path) -> None:
    ids = _signed(conn, config, DOSSIERS)
    files = FileStore(config.paths.files)
    named = {d: _files(conn, d) for d in ids}
    cfg = _config_file(config, tmp_path)
    argv = [sys.executable, "-c", ERASE_ALL, str(cfg), *map(str, ids)]
    _kill_mid_run(argv, conn, "erased_at", DOSSIERS, tmp_path / "erase.log")

    _audit_verify(cfg)
    erased = _gone(conn, "erased_at")
    lines = _lines(conn, "delete")
    assert set(lines) == erased and set(lines.values()) == {1}
    for d in ids:
        rows = conn.execute("SELECT o.state FROM records r LEFT JOIN outbox o "
                            "USING (record_id) WHERE r.dossier_id=?", (d,)).fetchall()
        if d in erased:
            assert _body_removed(conn, d) == "erased"
            assert [r[0] for r in rows] == [None]  # withdrawn: never sent
        else:
            assert _body_removed(conn, d) is None
            assert [r[0] for r in rows] == ["pending"]
            missing = [f"{s[:12]}{x}" for s, x in named[d] if not files.exists(s, x)]
            assert missing == [], f"dossier {d}, not erased, lost files {missing}"

    # The next retention run sweeps what the kill left of the erased ones' files.
    erasure.purge_due(conn, files, config)
    for d in erased:
        left = [f"{s[:12]}{x}" for s, x in named[d] if files.exists(s, x)
                and x == ".pdf"]  # pages are shared with the dossiers still live
        assert left == [], f"dossier {d} erased, files left: {left}"
    live = [d for d in ids if d not in erased]
    assert all(files.exists(s, x) for d in live for s, x in named[d])
