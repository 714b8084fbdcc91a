"""Red team 16 on issue 12, item 1 and migration 9 (commit a02709e): a device in the
field upgraded from schema 8, whose sync has set thousands of messages aside, keeps
its counters, its doctor line and its dead letters, and the new redelivery key works
on the migrated table (old rows have no delivery key and never match one).

The schema-8 database is made by the previous release's own code (commit 09cfad3,
from git history, run in a child process, as tests/system/test_system_upgrade.py
does); this release then opens it as every service does at start.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.store import outbox
from appliance.store.db import connect
from appliance.store.migrations import MIGRATIONS
from appliance.store.outbox import DeadLetterKind
from appliance.system import config as config_mod
from appliance.system import doctor
from appliance.system.doctor import Verdict
from tests.helpers.sync_rig import ack_keys

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
SCHEMA_8_RELEASE = "09cfad3"
FORGED, MALFORMED = 3000, 1000

OLD_SCRIPT = """
import json, sys, time
from pathlib import Path
import appliance
from appliance.store import outbox
from appliance.store.db import connect
from appliance.store.outbox import DeadLetterKind

data = Path(sys.argv[1])
conn = connect(data / "appliance.sqlite3")
conn.execute("PRAGMA synchronous=OFF")  # this test's speed only: the rows are the same
topic = "bhxh/devices/kiosk-01/acks"
for i in range(int(sys.argv[2])):
    outbox.put_dead_letter(conn, topic, DeadLetterKind.FORGED, "bad signature",
                           b'{"forged": %d}' % i)
for i in range(int(sys.argv[3])):
    outbox.put_dead_letter(conn, topic, DeadLetterKind.MALFORMED, "not JSON",
                           b"\\xff%d" % i)
print(json.dumps({"package": appliance.__file__,
                  "schema": conn.execute("PRAGMA user_version").fetchone()[0],
                  "counts": outbox.dead_letter_counts(conn)}))
"""


def _schema_8_release(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git missing")
    archive = subprocess.run(["git", "archive", SCHEMA_8_RELEASE, "appliance", "tests/helpers",
                              "tests/__init__.py"], cwd=REPO, capture_output=True, timeout=60)
    if archive.returncode != 0:
        pytest.skip(f"release {SCHEMA_8_RELEASE} not in this checkout's history")
    old = tmp_path / "schema-8-release"
    old.mkdir()
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True,
                   timeout=60)
    return old


def test_thousands_of_dead_letters_survive_migration_9_and_count_as_before(tmp_path):
    _private, public = ack_keys(tmp_path / "keys")  # the key file predates the letters
    time.sleep(0.05)
    data = tmp_path / "device"
    data.mkdir()
    old = _schema_8_release(tmp_path)
    made = subprocess.run([sys.executable, "-c", OLD_SCRIPT, str(data), str(FORGED),
                           str(MALFORMED)], cwd=old,
                          env={"PYTHONPATH": str(old), "PATH": "/usr/bin:/bin",
                               "HOME": str(data)},
                          capture_output=True, text=True, timeout=50)
    assert made.returncode == 0, made.stderr[-2000:]
    before = json.loads(made.stdout.strip().splitlines()[-1])
    assert before["package"].startswith(str(old))
    assert before["schema"] == 8 and len(MIGRATIONS) == 9
    assert before["counts"] == {"total": FORGED + MALFORMED, "forged": FORGED,
                                "malformed": MALFORMED}

    db = data / "appliance.sqlite3"
    started = time.monotonic()
    conn = connect(db)  # this release's first start: migrated forward
    took = time.monotonic() - started
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 9
        assert took < 5, f"migration 9 took {took:.1f} s"
        assert outbox.dead_letter_counts(conn) == before["counts"]
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT delivery) FROM "
                            "sync_dead_letters").fetchone()[:] == (FORGED + MALFORMED, 1)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

        config = config_mod.with_overrides(config_mod.Config(),
                                           paths={"data_dir": str(data)},
                                           mqtt={"host": "127.0.0.1",
                                                 "central_public_key": str(public)})
        found = doctor.check_central_key(config)
        assert found.verdict is Verdict.WARN
        assert f"{FORGED} ack(s) since" in found.summary, found.summary

        # The redelivery key on the migrated table: a new message counts; the same
        # message sent again (DUP, same session epoch and packet id) does not; the
        # same bytes under another packet id, or an old row's bytes, count.
        topic = "bhxh/devices/kiosk-01/acks"
        payload = b'{"forged": 0}'  # the bytes of an old, keyless row
        assert outbox.put_dead_letter(conn, topic, DeadLetterKind.FORGED, "x", payload,
                                      delivery="1/1", redelivered=True) is not None
        assert outbox.put_dead_letter(conn, topic, DeadLetterKind.FORGED, "x", payload,
                                      delivery="1/1", redelivered=True) is None
        assert outbox.put_dead_letter(conn, topic, DeadLetterKind.FORGED, "x", payload,
                                      delivery="1/2", redelivered=True) is not None
        assert outbox.put_dead_letter(conn, topic, DeadLetterKind.FORGED, "x", payload,
                                      delivery="2/1", redelivered=True) is not None
        counts = outbox.dead_letter_counts(conn)
        assert counts["forged"] == FORGED + 3 and counts["total"] == FORGED + MALFORMED + 3
    finally:
        conn.close()
