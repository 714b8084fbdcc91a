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

import pytest

from appliance.central import store as central_store
from appliance.store.db import connect
from appliance.sync import publisher as publisher_mod
from appliance.sync import wire
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
    probe_receiver,
    start_central,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(150)
SMALL = 300
SCANS = 3


def received_at(config: config_mod.Config) -> dict[str, float]:
    """When the receiver stored each record (its clock, its order)."""
    return {r["record_id"]: r["received_at"]
            for r in central_store.list_records(config.central.database)}


def test_a_backlog_drains_exactly_once_small_records_first(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port, chunk_bytes=8192, ack_timeout_seconds=30.0)
    config_file = write_config_file(tmp_path, config)
    log = tmp_path / "central.log"
    central = start_central(config_file, log)
    try:
        attacker = Attacker(broker.port)
        probe_receiver(attacker, config)
        attacker.sniff(f"bhxh/devices/{config.device.id}/records")
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
        # After the first few, small records travelled packed with their files.
        packs = [m for m in (wire.decode(p) for _t, p in list(attacker.seen))
                 if isinstance(m, wire.RecordPack)]
        attacker.close()
        packed = [r.record_id for m in packs for r in m.records]
        assert len(packed) > SMALL // 2 and len(set(packed)) == len(packed)
        assert all(len(m.files) == len(m.records) for m in packs)
        # ... and the scans' chunks as raw bytes, without base64.
        assert any(p.startswith(wire.BINARY_CHUNK_MAGIC) for _t, p in list(attacker.seen))
        # Signed after the scans, stored by the receiver before any of them.
        stored_at = received_at(config)
        assert max(stored_at[r.record_id] for r in small) < \
            min(stored_at[r.record_id] for r in scans)
    finally:
        if central.poll() is None:
            os.kill(central.pid, signal.SIGTERM)
            central.wait(15)


def test_small_records_pass_a_backlog_of_scans_larger_than_the_bulk_lane(
        tmp_path, broker, services, monkeypatch):
    """More scans queued than the bulk lane holds: the ones beyond it are passed over
    (given back unclaimed), so the small records behind them are claimed at once."""
    monkeypatch.setattr(publisher_mod, "MAX_PARKED_BULK", 2)
    monkeypatch.setattr(publisher_mod, "CLAIM_BATCH", 4)
    config = make_config(tmp_path, broker.port, chunk_bytes=8192, ack_timeout_seconds=30.0)
    config_file = write_config_file(tmp_path, config)
    central = start_central(config_file, tmp_path / "central.log")
    try:
        attacker = Attacker(broker.port)
        probe_receiver(attacker, config)
        attacker.close()
        scans = enqueue(config, 8, pdf_sizes=(400_000,))  # ~70 chunks each
        small = enqueue(config, 20, pdf_sizes=(2_000,))
        services(run_publisher, config)
        wait_for(lambda: all_delivered(config, scans + small), 90, "the whole backlog")
        assert_exactly_once(config, scans + small)
        assert_no_false_delivery(config)
        stored_at = received_at(config)
        scan_times = sorted(stored_at[r.record_id] for r in scans)
        assert max(stored_at[r.record_id] for r in small) < scan_times[3]
        conn = connect(config.paths.database)
        try:  # a scan passed over did not count as an attempt
            tries = [conn.execute("SELECT attempts FROM outbox WHERE record_id=?",
                                  (r.record_id,)).fetchone()[0] for r in scans]
        finally:
            conn.close()
        assert tries == [1] * len(scans)
    finally:
        if central.poll() is None:
            os.kill(central.pid, signal.SIGTERM)
            central.wait(15)


def test_first_contact_with_the_receiver_away_then_back(tmp_path, broker, services):
    """The device has never heard from this receiver (so it sends only a few records
    before the first ack) and the receiver is away longer than the ack timeout: the
    records whose acks never came are sent again, and all arrive once it is back."""
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=1.0)
    recs = enqueue(config, 30, pdf_sizes=(2_000,))
    publisher = services(run_publisher, config)
    time.sleep(4.0)  # several ack timeouts with nobody listening
    assert not all_delivered(config, recs[:1])
    from appliance.central.receiver import run_receiver

    services(run_receiver, config)
    wait_for(lambda: all_delivered(config, recs), 60, "every record once the receiver is up")
    assert publisher.running()
    assert_exactly_once(config, recs)
    assert_no_false_delivery(config)
