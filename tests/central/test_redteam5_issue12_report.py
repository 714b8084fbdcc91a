"""Red team 5 on issue 12: `appliance central --report` where the README says to run
it, and what it prints.

- The README (central office, "Watching") says: "`appliance central --report` (on a
  replica for PostgreSQL)". report._open() goes through db.open_configured ->
  connect_postgres -> _apply_pg_schema, which opens a transaction and runs
  `CREATE TABLE IF NOT EXISTS schema_version`: a hot standby refuses that (read-only
  transaction) even when the table exists. Here a real streaming replica is made
  with pg_basebackup from the test server, and --report is pointed at it.
- The README's command table says that what a message brought "is escaped so it
  cannot write to the terminal"; the text form escapes, but `--json` prints with
  ensure_ascii=False, and json.dumps escapes only U+0000-U+001F: a C1 control such
  as U+009B (CSI, an 8-bit ESC [) in a dead letter's first bytes reaches the
  terminal raw.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from appliance.system import config as config_mod
from tests.helpers import postgres as pg_helpers
from tests.helpers.central_cli import record_message, run_central
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    Attacker,
    central_dead_letters,
    central_read,
    make_config,
    probe_receiver,
    wait_for,
    write_config_file,
)

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(90)

NOBODY = 65534


def _contest(attacker: Attacker, device: str) -> None:
    """Two contents under x-1, both claimed: contested, nothing served."""
    topic = wire.records_topic("bhxh", device)
    attacker.publish(topic, record_message("x-1", device, "SQUAT"))
    attacker.publish(topic, record_message("x-1", device, "OTHER"))
    attacker.publish(topic, record_message("x-1", device, "OTHER", claim=True))
    attacker.publish(topic, record_message("x-1", device, "SQUAT", claim=True))


def _contested(config: config_mod.Config) -> bool:
    return central_read(config, central_store.counters, {}).get("conflicts_contested", 0) >= 1


# --- a real hot standby -------------------------------------------------------------


class _Standby:
    """A streaming replica of the test server, in its own folder, stopped by PID."""

    def __init__(self, primary: pg_helpers.PostgresServer) -> None:
        bindir = pg_helpers.pg_bin()
        assert bindir is not None
        self.folder = Path(tempfile.mkdtemp(prefix="central-standby-"))
        self.proc: subprocess.Popen[bytes] | None = None
        data, sock = self.folder / "data", self.folder / "sock"
        sock.mkdir()
        user: list[str] = []
        if os.geteuid() == 0:
            for path in (self.folder, sock):
                os.chown(path, NOBODY, NOBODY)
            user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
        base = subprocess.run(
            [*user, str(bindir / "pg_basebackup"), "-D", str(data), "-h",
             str(primary.socket_dir), "-p", str(pg_helpers.PORT), "-U", pg_helpers.ROLE,
             "-R", "-X", "stream", "-c", "fast", "--no-sync"],
            capture_output=True, cwd=self.folder, timeout=60)
        assert base.returncode == 0, base.stderr.decode(errors="replace")
        log = open(self.folder / "standby.log", "ab")  # noqa: SIM115 - the server writes it
        try:
            self.proc = subprocess.Popen(
                [*user, str(bindir / "postgres"), "-D", str(data), "-k", str(sock), "-p",
                 str(pg_helpers.PORT), "-c", "listen_addresses=", "-c", "hot_standby=on",
                 # a standby needs at least the primary's max_connections
                 "-c", "max_connections=300", "-c", "fsync=off"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True)
        finally:
            log.close()
        self.sock = sock

    def dsn(self, database: str) -> str:
        return f"postgresql://{pg_helpers.ROLE}@/{database}?host={self.sock}&port={pg_helpers.PORT}"

    def log(self) -> str:
        return (self.folder / "standby.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)


def _replayed(standby: _Standby, database: str, primary_dsn: str) -> bool:
    """The standby is in recovery and has replayed what the primary holds now."""
    try:
        with psycopg.connect(primary_dsn, autocommit=True) as primary:
            lsn = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        with psycopg.connect(standby.dsn(database), autocommit=True, connect_timeout=2) as s:
            row = s.execute("SELECT pg_is_in_recovery(), "
                            "pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(lsn),)).fetchone()
            return bool(row[0] and row[1])
    except psycopg.Error:
        return False


def test_the_report_runs_on_a_postgresql_replica(
        tmp_path: Path, broker: MosquittoProcess, services: Any,
        pg_server: pg_helpers.PostgresServer) -> None:
    """Found by this review: --report opened PostgreSQL the receiver's way, creating
    its schema in a transaction, which a hot standby refuses, though the README sends
    reports there. It now only reads (db.open_for_reading)."""
    dsn = pg_server.create_database()
    database = dsn.split("@/")[1].split("?")[0]
    config = make_config(tmp_path, broker.port, central={"postgres_dsn": dsn})
    attacker = Attacker(broker.port)
    services(run_receiver, config)
    standby: _Standby | None = None
    try:
        probe_receiver(attacker, config)
        _contest(attacker, config.device.id)
        wait_for(lambda: _contested(config), 20, "the contested id stored")
        standby = _Standby(pg_server)
        wait_for(lambda: _replayed(standby, database, dsn), 30,
                 "the standby replaying the primary")
        with psycopg.connect(standby.dsn(database), autocommit=True) as plain:
            # The replica answers reads: what the receiver stored is there.
            assert plain.execute("SELECT COUNT(*) FROM conflicts WHERE state='contested'"
                                 ).fetchone()[0] == 1
        on_primary = json.loads(run_central(write_config_file(tmp_path, config),
                                         "--report", "--json").stdout)
        replica = config_mod.with_overrides(
            config, central={"postgres_dsn": standby.dsn(database)})
        folder = tmp_path / "replica"
        folder.mkdir()
        result = run_central(write_config_file(folder, replica), "--report", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["conflicts"]["contested"] == 1
        assert report["counters"] == on_primary["counters"]
    finally:
        if standby is not None:
            standby.stop()
        attacker.close()


# --- what --json writes to the terminal -----------------------------------------------


def _controls(text: str) -> list[str]:
    """The control characters in `text`, but the newlines of the layout."""
    return [c for c in text if c != "\n" and unicodedata.category(c) == "Cc"]


def test_the_json_report_writes_no_control_character_either(
        tmp_path: Path, broker: MosquittoProcess, services: Any) -> None:
    """Found by this review: --report --json printed with ensure_ascii=False, so a C1
    control (U+009B, an 8-bit ESC [) from a dead letter reached the terminal raw."""
    config = make_config(tmp_path, broker.port)
    config_file = write_config_file(tmp_path, config)
    attacker = Attacker(broker.port)
    services(run_receiver, config)
    try:
        probes = probe_receiver(attacker, config)
        # CSI 2 J (erase the screen) as UTF-8 C1, and a DEL, then junk.
        attacker.publish(wire.records_topic("bhxh", config.device.id),
                         "\u009b2J\u009b3J\x7f{".encode())
        wait_for(lambda: central_dead_letters(config) > probes, 15, "the dead letter")
        text = run_central(config_file, "--report")
        assert text.returncode == 0, text.stderr
        assert _controls(text.stdout) == [], "the text form escapes them"
        as_json = run_central(config_file, "--report", "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout)["dead_letters"][0]["head"].startswith("\u009b2J")
        assert _controls(as_json.stdout) == [], repr(_controls(as_json.stdout))
    finally:
        attacker.close()
