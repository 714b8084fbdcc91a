"""Red team 5 on issue 12: the central schema migration of commit 1ae5567 (SQLite 5,
PostgreSQL 4: conflicts.decided_sha256/decided_by/decided_at, dead_letters.delivery) on
real databases made by the previous commit's code, and who runs it.

The previous commit (b11487e) is exported with `git archive` (the repository is not
touched) and its `appliance central` runs as a real process against a real mosquitto
and, for PostgreSQL, Debian's server: it stores a contested record id and a dead
letter. Its rows are read with plain SQL while it runs (the new code's readers would
migrate the database under it).

What holds: the new code reports that database, decides the contested id, runs a
receiver on it, hears a later claim as CONTESTED and counts the old junk sent anew.

What breaks: `appliance central --report`, a read-only look for the operator, opens
the database through the receiver's own connect (db.open_configured), which migrates
it. Run with the new software against a database that receivers of the previous
version still use (a rolling upgrade of several receivers sharing PostgreSQL, or the
report tried before the receiver is upgraded), it moves the schema on, and a receiver
of the previous version then refuses to start ("newer than this software").
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appliance.central import store as central_store
from appliance.central.db import MIGRATIONS, PG_SCHEMA
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from appliance.system import config as config_mod
from tests.helpers import postgres as pg_helpers
from tests.helpers.central_cli import record_message, record_sha, run_central
from tests.helpers.junk_flood import stop
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    REPO,
    Attacker,
    central_dead_letters,
    central_read,
    make_config,
    probe,
    wait_for,
    write_config_file,
)

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(90)

OLD_COMMIT = "b11487e"
JUNK = b"old junk {"
# user_version / schema_version of the previous commit's code, per engine.
OLD_SCHEMA = {"sqlite": 4, "postgresql": 3}
CURRENT_SCHEMA = {"sqlite": len(MIGRATIONS), "postgresql": len(PG_SCHEMA)}


def _old_tree(tmp_path: Path) -> Path:
    """The previous commit's `appliance` package, exported (no change to the repository)."""
    tree = tmp_path / "old"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", OLD_COMMIT, "appliance"], cwd=REPO,
                             capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, timeout=60)
    return tree


def _for_old_code(tree: Path, config_file: Path) -> Path:
    """config_file without the keys added since the previous commit, which its code
    refuses as unknown (central.quiet_reconnect_seconds, say), beside it: what that
    receiver's own config file held."""
    code = ("import dataclasses, json; from appliance.system import config as c; "
            "d = c.Config(); print(json.dumps({s.name: [f.name for f in "
            "dataclasses.fields(getattr(d, s.name))] for s in dataclasses.fields(d)}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True,
                          text=True, timeout=60, check=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    known = json.loads(done.stdout)
    kept, section = [], ""
    for line in config_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif " = " in line and line.split(" = ", 1)[0] not in known.get(section, ()):
            continue
        kept.append(line)
    old = config_file.with_name("appliance-old.toml")
    old.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return old


def _old_receiver(tree: Path, config_file: Path, log: Path) -> subprocess.Popen[bytes]:
    """The previous commit's `appliance central` (its package first on sys.path: `-c`
    puts the working folder there), on config_file less what it does not know."""
    code = ("import sys; from appliance.central.commands import main_central; "
            "sys.exit(main_central())")
    old_config = _for_old_code(tree, config_file)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, "--config", str(old_config)], cwd=tree,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={k: v for k, v in os.environ.items()
                 if k not in ("NOTIFY_SOCKET", "PYTHONPATH")})


def _raw(config: config_mod.Config, sql: str, default: Any) -> Any:
    """One value read with plain SQL (never the new code's connect, which migrates)."""
    try:
        if config.central.postgres_dsn:
            with psycopg.connect(config.central.postgres_dsn, autocommit=True) as conn:
                return conn.execute(sql).fetchone()[0]
        if not Path(config.central.database).exists():
            return default
        conn = sqlite3.connect(config.central.database, timeout=5)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
    except (psycopg.Error, sqlite3.Error, TypeError):
        return default


def _raw_counter(config: config_mod.Config, name: str) -> int:
    return int(_raw(config, f"SELECT COALESCE(SUM(value), 0) FROM counters WHERE name='{name}'",
                    0) or 0)


def _schema(config: config_mod.Config) -> int:
    sql = ("SELECT MAX(version) FROM schema_version" if config.central.postgres_dsn
           else "PRAGMA user_version")
    return int(_raw(config, sql, -1))


def _old_database(tmp_path: Path, port: int, engine: str,
                  pg_server: pg_helpers.PostgresServer) -> tuple[config_mod.Config, Path, Path]:
    """A central database made by the previous commit's receiver (stopped again): a
    contested id x-1 and a dead letter. Its config, config file and old tree."""
    central = {"postgres_dsn": pg_server.create_database()} if engine == "postgresql" else {}
    config = make_config(tmp_path, port, central=central)
    config_file = write_config_file(tmp_path, config)
    device = config.device.id
    topic = wire.records_topic("bhxh", device)
    tree = _old_tree(tmp_path)
    log = tmp_path / "old-central.log"
    old = _old_receiver(tree, config_file, log)
    attacker = Attacker(port)
    try:
        probe(lambda: attacker.publish("bhxh/devices/probe-1/records", b"["),
              lambda: _raw_counter(config, "dead_letters"), "the old receiver")
        attacker.publish(topic, record_message("x-1", device, "SQUAT"))
        attacker.publish(topic, record_message("x-1", device, "OTHER"))
        attacker.publish(topic, record_message("x-1", device, "OTHER", claim=True))
        attacker.publish(topic, record_message("x-1", device, "SQUAT", claim=True))
        attacker.publish(topic, JUNK)
        wait_for(lambda: _raw_counter(config, "conflicts_contested") >= 1
                 and _raw_counter(config, "dead_letters") >= 2, 20, "the old receiver's rows")
        assert old.poll() is None, log.read_text(errors="replace")[-2000:]
    finally:
        stop(old)
        attacker.close()
    assert old.returncode == 0, log.read_text(errors="replace")[-2000:]
    assert _schema(config) == OLD_SCHEMA[engine]
    return config, config_file, tree


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_database_of_the_previous_schema_is_migrated_reported_and_decided(
        tmp_path: Path, broker: MosquittoProcess, services: Any,
        pg_server: pg_helpers.PostgresServer, engine: str) -> None:
    config, config_file, _tree = _old_database(tmp_path, broker.port, engine, pg_server)
    device = config.device.id
    topic = wire.records_topic("bhxh", device)

    report = run_central(config_file, "--report", "--json")
    assert report.returncode == 0, report.stderr
    [conflict] = json.loads(report.stdout)["conflicts"]["latest"]
    assert conflict["state"] == "contested"
    assert {c["sha256"] for c in conflict["contents"]} == {
        record_sha("x-1", device, "SQUAT"), record_sha("x-1", device, "OTHER")}
    other = record_sha("x-1", device, "OTHER")
    done = run_central(config_file, "--decide", device, "x-1", other, "--operator", "op")
    assert done.returncode == 0, done.stderr
    assert _schema(config) == CURRENT_SCHEMA[engine]

    services(run_receiver, config)
    attacker = Attacker(broker.port)
    try:
        counted = central_dead_letters(config)
        attacker.sniff(wire.acks_topic("bhxh", device))
        attacker.publish(topic, record_message("x-1", device, "SQUAT", claim=True))
        attacker.publish(topic, JUNK)  # the old junk sent anew: counted again
        wait_for(lambda: len(attacker.seen) >= 1, 15, "the squatter's ack")
        wait_for(lambda: central_dead_letters(config) > counted, 15, "the junk again")
        time.sleep(0.5)
        assert central_dead_letters(config) == counted + 1
        [(_topic, payload)] = attacker.seen
        assert wire.decode_ack_message(payload).status is wire.AckStatus.CONTESTED
    finally:
        attacker.close()
    served = central_read(config, lambda conn: {
        r["record_id"]: r["sha256"] for r in central_store.list_records(conn)}, {})
    assert served == {"x-1": other}
    [row] = central_read(config, central_store.list_conflicts, [])
    assert (row["state"], row["decided_sha256"], row["decided_by"]) == ("resolved", other, "op")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_report_leaves_the_schema_of_older_receivers_alone(
        tmp_path: Path, broker: MosquittoProcess,
        pg_server: pg_helpers.PostgresServer, engine: str) -> None:
    """Found by this review: --report migrated the database it looked at, and a
    receiver of the previous version then refused to start. It now only reads."""
    config, config_file, tree = _old_database(tmp_path, broker.port, engine, pg_server)
    report = run_central(config_file, "--report")
    assert report.returncode == 0, report.stderr
    assert "1 contested" in report.stdout
    # The receiver of the previous version, restarted (a crash, a reboot) after the look.
    log = tmp_path / "old-again.log"
    old = _old_receiver(tree, config_file, log)
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and old.poll() is None:
            time.sleep(0.1)
        assert old.poll() is None, (
            f"the previous version's receiver exited ({old.returncode}) after --report: "
            + log.read_text(errors="replace")[-500:])
        assert _schema(config) == OLD_SCHEMA[engine]
    finally:
        stop(old)
