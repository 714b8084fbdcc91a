"""A backlog drains exactly once, byte-identical, and small records pass the scans.

A real mosquitto and a real `appliance central` process; the device's sync loop
keeps hundreds of records in flight, the receiver commits and acknowledges them in
signed batches. Scans queued first must not hold back the small records signed after
them: those go out between the scans' chunks.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.store.db import connect
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_counters,
    device_dead_letters,
    enqueue,
    make_config,
    probe,
    wait_for,
)
from tests.sync.test_resume import start_central

pytestmark = pytest.mark.timeout(150)
SMALL = 300
SCANS = 3


def delivered_at(config: config_mod.Config, record_ids: list[str]) -> list[float]:
    conn = connect(config.paths.database)
    try:
        return [conn.execute("SELECT delivered_at FROM outbox WHERE record_id=?",
                             (r,)).fetchone()[0] for r in record_ids]
    finally:
        conn.close()


def test_a_backlog_drains_exactly_once_small_records_first(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port, chunk_bytes=8192, ack_timeout_seconds=30.0)
    config_file = tmp_path / "appliance.toml"
    config_file.write_text(config_mod.dump(config), encoding="utf-8")
    log = tmp_path / "central.log"
    central = start_central(config_file, log)
    try:
        attacker = Attacker(broker.port)
        probe(lambda: attacker.publish("bhxh/devices/probe-1/records", b"["),
              lambda: central_store.read_counters(config.central.database)
              .get("dead_letters", 0) if Path(config.central.database).exists() else 0,
              "central")
        attacker.close()
        scans = enqueue(config, SCANS, pdf_sizes=(1_500_000,))  # ~260 chunks each
        small = enqueue(config, SMALL, pdf_sizes=(2_000,))
        start = time.monotonic()
        publisher = services(run_publisher, config)
        wait_for(lambda: all_delivered(config, scans + small), 90, "the whole backlog")
        seconds = time.monotonic() - start
        print(f"\n{SMALL} small + {SCANS} scan records drained in {seconds:.1f} s")

        assert central.poll() is None, log.read_text()
        assert publisher.running()
        assert_exactly_once(config, scans + small)
        assert_no_false_delivery(config)
        assert central_counters(config).get("records_stored") == SMALL + SCANS
        assert device_dead_letters(config).get("total", 0) == 0
        # Signed after the scans, delivered before the last of them.
        assert max(delivered_at(config, [r.record_id for r in small])) < \
            max(delivered_at(config, [r.record_id for r in scans]))
    finally:
        if central.poll() is None:
            os.kill(central.pid, signal.SIGTERM)
            central.wait(15)
