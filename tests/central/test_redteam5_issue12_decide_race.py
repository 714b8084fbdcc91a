"""Red team 5 on issue 12: `appliance central --decide` against a receiver's claim that
arrives while the decision is being written, on PostgreSQL (READ COMMITTED, several
receivers: no BEGIN IMMEDIATE to serialise them as on SQLite).

The worry: store._claim reads the conflict row (decided_sha256 still NULL) and then
writes records/conflicts after the operator's transaction committed, undoing it (all
contents 'held', or the claimant served against the decision). What makes it hold:
before _claim reads the conflict, the claim's transaction has already locked the
claimant's own records row (UPDATE copies), and decide() updates every row of the id,
so one waits for the other's commit; the one that waits reads afresh.

To make the interleaving certain rather than lucky, a third session holds the
conflict row (SELECT ... FOR UPDATE): the real `--decide` process has by then updated
every records row of the id and waits on it; the squatter's claim and a third content
with a claim go through a real mosquitto to the real receiver, whose transaction then
waits on decide's rows. The holder lets go; decide commits, the claims go on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from tests.helpers import postgres as pg_helpers
from tests.helpers.central_cli import record_message, record_sha
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    REPO,
    Attacker,
    central_read,
    make_config,
    probe_receiver,
    wait_for,
    write_config_file,
)

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(60)


def _waiting(admin: psycopg.Connection[Any], database: str, like: str) -> int:
    """Sessions on `database` waiting for a lock, running a statement like `like`."""
    return int(admin.execute(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname=%s AND wait_event_type='Lock' "
        "AND query LIKE %s", (database, like)).fetchone()[0])


def test_a_claim_racing_the_operators_decision_does_not_undo_it(
        tmp_path: Path, broker: MosquittoProcess, services: Any,
        pg_server: pg_helpers.PostgresServer) -> None:
    dsn = pg_server.create_database()
    database = dsn.split("@/")[1].split("?")[0]
    config = make_config(tmp_path, broker.port, central={"postgres_dsn": dsn})
    config_file = write_config_file(tmp_path, config)
    device = config.device.id
    topic = wire.records_topic("bhxh", device)
    attacker = Attacker(broker.port)
    receiver = services(run_receiver, config)
    decide: subprocess.Popen[str] | None = None
    holder = psycopg.connect(dsn, autocommit=True)
    admin = psycopg.connect(pg_server.dsn(), autocommit=True)
    try:
        probe_receiver(attacker, config)
        for code, claim in (("SQUAT", False), ("OTHER", False), ("OTHER", True),
                            ("SQUAT", True)):
            attacker.publish(topic, record_message("x-1", device, code, claim=claim))
        wait_for(lambda: central_read(config, central_store.counters, {}).get(
            "conflicts_contested", 0) >= 1, 20, "the contested id")
        attacker.sniff(wire.acks_topic("bhxh", device))

        holder.execute("BEGIN")
        holder.execute("SELECT * FROM conflicts WHERE device_id=%s AND record_id='x-1' "
                       "FOR UPDATE", (device,))
        other = record_sha("x-1", device, "OTHER")
        decide = subprocess.Popen(
            [sys.executable, "-m", "appliance", "central", "--config", str(config_file),
             "--decide", device, "x-1", other, "--operator", "op"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"})
        wait_for(lambda: _waiting(admin, database, "UPDATE conflicts SET state='resolved'%")
                 == 1, 20, "--decide holding every records row, waiting on the conflict")
        attacker.publish(topic, record_message("x-1", device, "SQUAT", claim=True))
        attacker.publish(topic, record_message("x-1", device, "THIRD", claim=True))
        wait_for(lambda: _waiting(admin, database, "UPDATE records SET copies%") == 1, 20,
                 "the receiver's claim waiting on decide's rows")
        holder.execute("ROLLBACK")
        out, err = decide.communicate(timeout=30)
        assert decide.returncode == 0, err
        assert f"{other} is served" in out

        wait_for(lambda: len(attacker.seen) >= 2, 20, "the claimants' acks")
        heard = [wire.decode_ack_message(p).status for _t, p in attacker.seen]
        assert heard == [wire.AckStatus.CONTESTED] * 2, heard
        served = central_read(config, lambda conn: [
            (r["record_id"], r["sha256"]) for r in central_store.list_records(conn)], [])
        assert served == [("x-1", other)]
        [row] = central_read(config, central_store.list_conflicts, [])
        assert (row["state"], row["decided_sha256"]) == ("resolved", other)
        assert receiver.running()
    finally:
        if decide is not None and decide.poll() is None:
            decide.kill()
            decide.wait(5)
        holder.close()
        admin.close()
        attacker.close()
