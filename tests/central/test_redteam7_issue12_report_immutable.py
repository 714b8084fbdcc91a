"""Red team 7 on issue 12: `appliance central --report` on SQLite opened `immutable=1`
(commit b3a1827) while a receiver starts and writes.

db.open_for_reading opens the file with immutable=1 when no -wal is beside it (a
receiver stopped cleanly). immutable tells SQLite that nobody will change the file:
no locks are taken and nothing the reader has cached is ever checked again. A
receiver that starts while a report reads (systemd restarting it, an operator
starting it) creates its -wal, writes, and checkpoints into the main file (at the
latest when it stops cleanly); with no lock held by the reader, nothing keeps the
checkpoint from rewriting pages under the report. The reader then mixes cached
pages with rewritten ones: rows that were not there when its statement began, stale
counters, and "database disk image is malformed", which the report prints as its
verdict on a database that is perfectly sound. With a -wal present (mode=ro), the
same interleaving is safe: the reader's WAL snapshot keeps the checkpoint off the
pages it reads (the control).

Real processes: mosquitto, `appliance central` started and stopped (SIGTERM by PID)
around the reader; the reader is the connection --report uses (db.open_for_reading),
its statement held open across the receiver's run, as a report's query is while the
receiver writes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from appliance.central import db as central_db
from appliance.sync import wire
from appliance.system import config as config_mod
from tests.helpers.junk_flood import flood, receiver_connections, stop
from tests.helpers.sync_rig import (
    Brokers,
    central_dead_letters,
    make_config,
    start_central,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(90)

SEED = 1_500   # dead letters in the database before the report opens it
MORE = 1_500   # written by the receiver while the report's statement is open
PAD = b"x" * 200


class TornRead(AssertionError):
    """The finding itself (the strict xfail expects this, not a rig timeout)."""


class _Rig:
    """A broker, a receiver's config, and receivers started by PID on demand."""

    def __init__(self, tmp_path: Path, brokers: Brokers) -> None:
        self.broker = brokers.start()
        self.config = make_config(tmp_path, self.broker.port)
        self.file = write_config_file(tmp_path, self.config)
        self.log = tmp_path / "central.log"
        self.topic = wire.records_topic(self.config.mqtt.topic_prefix,
                                        self.config.device.id)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        before = self.log.read_text().count("receiver connected") if self.log.exists() else 0
        proc = start_central(self.file, self.log, "--client-id", "c0")
        self.procs.append(proc)
        wait_for(lambda: receiver_connections(self.log) > before, 30, "the receiver connected")
        time.sleep(0.5)  # its SUBSCRIBE is through
        return proc

    def feed(self, count: int, tag: bytes, total: int) -> None:
        flood(self.broker.port, self.topic,
              [b"junk {" + tag + b"%06d" % n + PAD for n in range(count)],
              client_id="junk-sender", wait_s=30)
        wait_for(lambda: central_dead_letters(self.config) >= total, 40,
                 f"{total} dead letters committed")

    def stop_all(self) -> None:
        for proc in self.procs:
            stop(proc)


def _read_across_a_receiver_run(tmp_path: Path, brokers: Brokers, *,
                                running: bool) -> None:
    """SEED dead letters; the report's connection opened (receiver stopped cleanly, or
    running) and a statement begun; the receiver writes MORE and stops cleanly; the
    statement must return exactly the rows there when it began, and the reader must
    still read the database without error."""
    rig = _Rig(tmp_path, brokers)
    path = Path(rig.config.central.database)
    try:
        proc = rig.start()
        rig.feed(SEED, b"A", SEED)
        if not running:
            stop(proc)
            assert not Path(f"{path}-wal").exists(), "a clean stop left a -wal"
        conn = central_db.open_for_reading(rig.config.central)
        try:
            cursor = conn.execute("SELECT id FROM dead_letters ORDER BY id")
            ids = [row[0] for row in cursor.fetchmany(50)]
            if not running:
                proc = rig.start()
            rig.feed(MORE, b"B", SEED + MORE)
            stop(proc)
            try:
                ids += [row[0] for row in cursor]
                counted = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
            except sqlite3.DatabaseError as e:
                raise TornRead(f"the report's reader failed on a sound database: {e}") from e
        finally:
            conn.close()
        if ids != list(range(1, SEED + 1)):
            raise TornRead(
                f"one statement read {len(ids)} rows, ids {ids[0]}..{ids[-1]}, of the "
                f"{SEED} there when it began")
        assert counted == SEED + MORE, f"{counted} rows after the receiver's run"
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        rig.stop_all()


def test_report_reader_of_a_stopped_receiver_survives_its_restart(
        tmp_path: Path, brokers: Brokers) -> None:
    """Found by this review: a cleanly stopped receiver's database was read as an
    immutable file, without locks, so a receiver that started, wrote and stopped again
    meanwhile checkpointed under the reader (rows from after the statement began,
    'database disk image is malformed'). It is now read with mode=ro (the immutable
    read is only the last resort of a user who may not make the -shm)."""
    _read_across_a_receiver_run(tmp_path, brokers, running=False)


def test_report_reader_of_a_running_receiver_keeps_its_snapshot(
        tmp_path: Path, brokers: Brokers) -> None:
    """The control: opened beside a running receiver (-wal there: mode=ro), the same
    writes and clean stop leave the reader's statement on its snapshot."""
    _read_across_a_receiver_run(tmp_path, brokers, running=True)


def test_report_reads_a_crashed_receivers_wal(tmp_path: Path, brokers: Brokers) -> None:
    """A receiver killed -9 leaves its -wal with records never checkpointed: --report
    (mode=ro through the -shm it left) shows every dead letter it had committed, and the
    path's odd characters (space, '?', '#', '%', non-ASCII) survive the URI quoting."""
    odd = tmp_path / "cen tral ?#%25 bảo hiểm"
    rig = _Rig(tmp_path, brokers)
    rig.config = config_mod.with_overrides(
        rig.config, central={"database": str(odd / "central.sqlite3")})
    rig.file = write_config_file(tmp_path, rig.config)
    try:
        proc = rig.start()
        rig.feed(SEED, b"A", SEED)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        path = Path(rig.config.central.database)
        assert Path(f"{path}-wal").stat().st_size > 0, "nothing left in the -wal"
        conn = central_db.open_for_reading(rig.config.central)
        try:
            assert conn.counter("dead_letters") == SEED
            assert conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == SEED
        finally:
            conn.close()
        from appliance.central.report import report

        text = report(rig.config, last=3)
        assert f"dead_letters: {SEED}" in text, text
    finally:
        rig.stop_all()
