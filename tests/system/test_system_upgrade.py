"""Upgrade without losing a record: forward-only migrations applied at start.

Two situations a field upgrade meets:

* the same schema started again (a restart, a re-run of the install): migrations are a
  no-op, and an undelivered record, one of them caught mid-send, is still there,
  byte for byte, and is sent again;
* the previous release's database (schema 4, before encryption at rest) opened by this
  release: made by *that release's own code* (extracted from git history and run in a
  child process), it is migrated forward at the first start with every queued record
  intact; and that old release, started again on the migrated database (a rollback of
  the software), refuses it with a clear message and changes nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.records import dossiers
from appliance.store import outbox
from appliance.store.db import apply_migrations, connect
from appliance.store.errors import StoreError
from appliance.store.migrations import MIGRATIONS
from appliance.store.outbox import OutboxState
from tests.helpers.device_records import add_record

REPO = Path(__file__).resolve().parents[2]
# The last commit with schema 4 (migration 5, encryption at rest, came next): the
# release a device in the field would be upgraded from.
PREVIOUS_RELEASE = "c5b880d"
PREVIOUS_SCHEMA = 4


def drain(conn) -> dict[str, outbox.OutboxItem]:
    """Everything the sync service would send now, as it would claim it."""
    sent: dict[str, outbox.OutboxItem] = {}
    while (item := outbox.claim_next(conn, now=10 ** 12)) is not None:
        sent[item.record_id] = item
    return sent


def start_like_a_service(db: Path):
    """What every service does at start: connect (migrations applied), and the sync
    service returns interrupted sends to the queue."""
    conn = connect(db)
    outbox.reset_stale(conn)
    return conn


def test_undelivered_records_survive_migrations_and_a_second_start(tmp_path):
    db = tmp_path / "appliance.sqlite3"
    conn = connect(db)
    records = [add_record(conn, tmp_path / "files") for _ in range(3)]
    assert outbox.claim_next(conn) is not None  # one in flight when the power went
    conn.close()

    for _ in range(2):  # the upgrade's start, then one more
        conn = start_like_a_service(db)
        assert apply_migrations(conn) == len(MIGRATIONS)  # re-run: a no-op
        states = {r.record_id: outbox.state_of(conn, r.record_id) for r in records}
        assert set(states.values()) == {OutboxState.PENDING}
        conn.close()

    conn = start_like_a_service(db)
    sent = drain(conn)
    assert set(sent) == {r.record_id for r in records}
    for r in records:
        assert sent[r.record_id].sha256 == r.sha256
        assert sent[r.record_id].body_json == r.body_json
        assert dossiers.record_of(conn, r.record_id).sha256 == r.sha256
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


OLD_RELEASE_SCRIPT = """
import json, sys
from pathlib import Path
import appliance
from appliance.store import outbox
from appliance.store.db import connect
from tests.helpers.device_records import add_record

data = Path(sys.argv[1])
conn = connect(data / "appliance.sqlite3")
records = [add_record(conn, data / "files") for _ in range(3)]
in_flight = outbox.claim_next(conn)
print(json.dumps({
    "package": appliance.__file__,
    "schema": conn.execute("PRAGMA user_version").fetchone()[0],
    "records": [{"record_id": r.record_id, "sha256": r.sha256, "body_json": r.body_json}
                for r in records],
    "in_flight": in_flight.record_id,
}))
"""

OLD_RELEASE_START = """
import sys
from pathlib import Path
from appliance.store.db import connect
try:
    connect(Path(sys.argv[1]) / "appliance.sqlite3")
except Exception as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(3)
print("opened")
"""


def previous_release(tmp_path: Path) -> Path:
    """The previous release's package and test helpers, as it shipped (git history)."""
    if shutil.which("git") is None:
        pytest.skip("git missing")
    archive = subprocess.run(["git", "archive", PREVIOUS_RELEASE, "appliance", "tests/helpers",
                              "tests/__init__.py"], cwd=REPO, capture_output=True,
                             timeout=60)
    if archive.returncode != 0:
        pytest.skip(f"previous release {PREVIOUS_RELEASE} not in this checkout's history")
    old = tmp_path / "previous-release"
    old.mkdir()
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True,
                   timeout=60)
    return old


def run_old(old: Path, script: str, data: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the old package shadows this checkout's editable install.
    return subprocess.run([sys.executable, "-c", script, str(data)], cwd=old,
                          env={"PYTHONPATH": str(old), "PATH": "/usr/bin:/bin",
                               "HOME": str(data)},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(300)
def test_upgrade_from_the_previous_release_keeps_every_queued_record(tmp_path):
    old = previous_release(tmp_path)
    data = tmp_path / "data"
    made = run_old(old, OLD_RELEASE_SCRIPT, data)
    assert made.returncode == 0, made.stderr
    before = json.loads(made.stdout.strip().splitlines()[-1])
    assert before["package"].startswith(str(old))  # really the old code
    assert before["schema"] == PREVIOUS_SCHEMA

    db = data / "appliance.sqlite3"
    conn = start_like_a_service(db)  # this release's first start: migrated forward
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    sent = drain(conn)
    assert set(sent) == {r["record_id"] for r in before["records"]}
    for r in before["records"]:
        assert sent[r["record_id"]].sha256 == r["sha256"]
        assert sent[r["record_id"]].body_json == r["body_json"]
    conn.close()

    copy = db.read_bytes()
    rollback = run_old(old, OLD_RELEASE_START, data)
    assert rollback.returncode == 3, rollback.stdout + rollback.stderr
    assert f"newer than this software ({PREVIOUS_SCHEMA})" in rollback.stdout
    assert "refusing to touch it" in rollback.stdout
    assert db.read_bytes() == copy  # nothing changed by the refused start


def test_this_release_refuses_a_newer_schema(tmp_path):
    db = tmp_path / "appliance.sqlite3"
    connect(db).close()
    import sqlite3

    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer than this software"):
        connect(db)
