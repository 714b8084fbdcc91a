"""Red team 6 on issue 12: `appliance central --report` opened read-only (commit c42c713,
db.open_for_reading: SQLite `file:...?mode=ro`, PostgreSQL without the schema step).

The receiver's SQLite file is in WAL mode. A receiver stopped cleanly leaves no -wal
and no -shm (the last connection checkpoints and removes them). A read-only SQLite
connection to a WAL database must then create the -shm (the wal-index) itself, so
`mode=ro` is not "reads only": where it cannot create a file, the report fails.

- An operator without write permission on the receiver's directory (the README's
  operator who only looks): "attempt to write a readonly database", no report.
- A full central disk (the moment the operator most needs the report), receiver
  stopped: "disk I/O error", no report, and a 3-byte -shm left behind.

What holds: the same operator while the receiver runs (its -shm exists, SQLite maps
it read-only) gets the right counters; a DSN that cannot connect and a PostgreSQL
without the receiver's schema each give exit 1 with an English message, no
traceback, and create nothing.

Real processes: mosquitto, `appliance central` as a process (started, fed junk,
stopped with SIGTERM by PID), `python -m appliance central --report` as a process,
as user nobody via setpriv where the operator has no write access, a real tmpfs for
the full disk, Debian's PostgreSQL for the empty database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from appliance.sync import wire
from appliance.system import config as config_mod
from tests.helpers import postgres as pg_helpers
from tests.helpers.junk_flood import stop
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.small_disk import fill, mounted_tmpfs
from tests.helpers.sync_rig import (
    REPO,
    Attacker,
    central_dead_letters,
    make_config,
    probe_receiver,
    start_central,
    wait_for,
    write_config_file,
)

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(90)

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
JUNK = 3  # junk messages set aside after the probe


def _report(config_file: Path, *, user: list[str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """`appliance central --config F --report --json` as a real process."""
    return subprocess.run(
        [*(user or []), sys.executable, "-m", "appliance", "central", "--config",
         str(config_file), "--report", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "PYTHONPATH")})


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file in `folder`: (size, mtime in ns)."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder user nobody can traverse and read, but not write (pytest's tmp_path
    is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="central-report-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fed_receiver(folder: Path, broker: MosquittoProcess
                  ) -> tuple[config_mod.Config, Path, subprocess.Popen[bytes], int]:
    """`appliance central` on folder/central/central.sqlite3, with junk set aside:
    (config, its file, the process, the dead-letter count)."""
    config = make_config(folder, broker.port)
    config_file = write_config_file(folder, config)
    central = start_central(config_file, folder / "central.log")
    attacker = Attacker(broker.port)
    try:
        probes = probe_receiver(attacker, config)
        topic = wire.records_topic(config.mqtt.topic_prefix, config.device.id)
        for n in range(JUNK):
            attacker.publish(topic, b"junk %d {" % n)
    finally:
        attacker.close()
    wait_for(lambda: central_dead_letters(config) >= probes + JUNK, 20, "junk set aside")
    return config, config_file, central, probes + JUNK


def _assert_reported(done: subprocess.CompletedProcess[str], dead_letters: int) -> None:
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["counters"]["dead_letters"] == dead_letters


def test_an_operator_without_write_access_reads_a_stopped_receivers_database(
        shared_folder: Path, broker: MosquittoProcess) -> None:
    """Found by this review: on a cleanly stopped receiver's WAL database, an operator
    without write access to its folder got 'attempt to write a readonly database':
    mode=ro must create the -shm. Without a -wal the file is now read as it is. The
    receiver stopped with SIGTERM; nobody (read access only) asks for a report."""
    config, config_file, central, count = _fed_receiver(shared_folder, broker)
    stop(central)
    db_dir = Path(config.central.database).parent
    assert not Path(f"{config.central.database}-wal").exists(), "not a clean stop"
    before = _listing(db_dir)
    done = _report(config_file, user=AS_NOBODY)
    assert _listing(db_dir) == before, "the report changed the receiver's directory"
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    _assert_reported(done, count)


def test_an_operator_without_write_access_reads_a_running_receivers_database(
        shared_folder: Path, broker: MosquittoProcess) -> None:
    """The same operator while the receiver runs: its -shm is there and is mapped
    read-only, and the counters are the receiver's."""
    config, config_file, central, count = _fed_receiver(shared_folder, broker)
    try:
        assert Path(f"{config.central.database}-shm").exists()
        _assert_reported(_report(config_file, user=AS_NOBODY), count)
        assert central.poll() is None, "the receiver died beside the report"
    finally:
        stop(central)


def test_the_report_reads_a_stopped_receivers_database_on_a_full_disk(
        tmp_path: Path, broker: MosquittoProcess) -> None:
    """Found by this review: on a full central disk after the receiver stopped, the
    report failed with 'disk I/O error' (no room for the -shm). It now reads. The
    central disk fills, the operator stops the receiver and asks what is there."""
    with mounted_tmpfs(tmp_path / "disk", "4m") as disk:
        config = make_config(tmp_path, broker.port,
                             central={"database": str(disk / "central.sqlite3")})
        config_file = write_config_file(tmp_path, config)
        central = start_central(config_file, tmp_path / "central.log")
        try:
            attacker = Attacker(broker.port)
            try:
                count = probe_receiver(attacker, config)
            finally:
                attacker.close()
        finally:
            stop(central)
        assert not Path(f"{config.central.database}-wal").exists(), "not a clean stop"
        fill(disk)
        done = _report(config_file)
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        _assert_reported(done, count)


def test_a_dsn_that_cannot_connect_is_a_clear_error(tmp_path: Path) -> None:
    """No server behind the socket directory: exit 1, one English line, no traceback."""
    dsn = f"postgresql://central@/central?host={tmp_path / 'nowhere'}&port=5432"
    config = make_config(tmp_path, 1883, central={"postgres_dsn": dsn})
    done = _report(write_config_file(tmp_path, config))
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "cannot connect to the central PostgreSQL" in done.stderr, done.stderr
    assert done.stdout == ""


def test_a_postgresql_without_the_schema_is_a_clear_error_and_stays_empty(
        tmp_path: Path, pg_server: pg_helpers.PostgresServer) -> None:
    """An empty database (no receiver has run): exit 1, an English line, no table made."""
    dsn = pg_server.create_database()
    config = make_config(tmp_path, 1883, central={"postgres_dsn": dsn})
    done = _report(write_config_file(tmp_path, config))
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "no receiver schema" in done.stderr, done.stderr
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute("SELECT COUNT(*) FROM information_schema.tables "
                              "WHERE table_schema='public'").fetchone()[0]
    assert tables == 0, f"the report made {tables} tables"
