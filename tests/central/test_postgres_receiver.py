"""The receiver on PostgreSQL while its database connection is cut mid-stream
(pg_terminate_backend, as a failover or a server restart would): the batch in flight
is neither committed nor acknowledged, the receiver pauses, reconnects and goes on;
every record arrives once, byte-identical, none delivered that the database lacks."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest

from appliance.central import receiver as receiver_mod
from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync.publisher import run_publisher
from tests.helpers import postgres as pg_helpers
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once_everywhere,
    central_read,
    enqueue,
    make_config,
    probe_receiver,
    wait_for,
)

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(180)


def served(config) -> dict[str, dict]:
    return central_read(
        config, lambda conn: {r["record_id"]: r for r in central_store.list_records(conn)}, {})


def test_receiver_survives_its_database_connection_cut_mid_stream(
        tmp_path, broker, services, pg_server, monkeypatch, caplog):
    caplog.set_level(logging.ERROR, logger="appliance.central.receiver")
    monkeypatch.setattr(receiver_mod, "DB_ERROR_PAUSE_SECONDS", 0.5)
    dsn = pg_server.create_database()
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=4.0,
                         central={"postgres_dsn": dsn})
    attacker = Attacker(broker.port)
    try:
        receiver = services(run_receiver, config)
        probe_receiver(attacker, config, "the receiver")
        recs = enqueue(config, 120, pdf_sizes=(3000,))
        publisher = services(run_publisher, config)
        cuts = 0
        for target in (20, 60):
            wait_for(lambda n=target: len(served(config)) >= n, 60, f"{target} stored")
            with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
                cuts += admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname=%s", (dsn.split("@/")[1].split("?")[0],)).fetchone()[0]
            time.sleep(0.2)
        assert cuts >= 2, "no receiver connection was cut"
        assert len(served(config)) < len(recs), "cut too late to test anything"
        wait_for(lambda: all_delivered(config, recs), 120, "every record after the cuts")
        assert receiver.running() and publisher.running()
        assert any("central database error" in r.getMessage() for r in caplog.records), \
            "the receiver never saw its connection cut"
        assert_exactly_once_everywhere(config, recs)
    finally:
        attacker.close()
