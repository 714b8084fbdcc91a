"""Records travel publisher -> real mosquitto -> receiver -> ack -> delivered, through crashes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import list_records, run_receiver
from appliance.store import outbox
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.store.outbox import OutboxState
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.device_records import TestRecord, add_record
from tests.helpers.mosquitto import free_port
from tests.helpers.sync_rig import (
    device_state,
    make_config,
    outbox_state,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[2]


def enqueue(config: config_mod.Config, **kwargs: object) -> TestRecord:
    conn = connect(config.paths.database)
    try:
        return add_record(conn, config.paths.files, device_id=config.device.id, **kwargs)
    finally:
        conn.close()


def delivered(config: config_mod.Config, rec: TestRecord) -> bool:
    return outbox_state(config, rec.record_id) is OutboxState.DELIVERED


def assert_received_once(config: config_mod.Config, rec: TestRecord) -> dict:
    got = [r for r in list_records(config.central.database) if r["record_id"] == rec.record_id]
    assert len(got) == 1, got
    row = got[0]
    assert row["sha256"] == rec.sha256
    assert row["body_json"] == rec.body_json
    assert row["dossier_code"] == rec.dossier_code
    assert row["result_codes"] == rec.result_codes
    assert row["files"] == rec.file_shas
    store = FileStore(config.paths.files)
    for sha in rec.file_shas:
        assert central_store.get_file(config.central.database, sha) == store.read(sha, ".pdf")
    return row


def test_multi_chunk_record_is_delivered_with_the_same_hashes(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)
    rec = enqueue(config, pdf_sizes=(30_000, 7_000))  # 4 KB messages: ~13 chunks
    receiver = services(run_receiver, config)
    publisher = services(run_publisher, config)
    wait_for(lambda: delivered(config, rec), 20, "the ack")
    assert_received_once(config, rec)
    assert device_state(config, "sync.state") == "connected"
    conn = connect(config.paths.database)
    stats = outbox.stats(conn)
    ack = conn.execute("SELECT ack_json FROM outbox").fetchone()[0]
    conn.close()
    assert stats["queue_depth"] == 0 and stats["delivered_count"] == 1
    assert stats["last_delivery_at"] is not None
    assert rec.sha256 in ack
    assert publisher.notes[0] == "READY=1" and "WATCHDOG=1" in publisher.notes
    assert receiver.notes[0] == "READY=1"
    publisher.stop()
    receiver.stop()
    assert device_state(config, "sync.state") == "disconnected"


def test_broker_started_after_enqueue_delivers_exactly_once(tmp_path, brokers, services):
    port = free_port()
    config = make_config(tmp_path, port)
    recs = [enqueue(config, pdf_sizes=(9_000,), seq=i) for i in (1, 2, 3)]
    services(run_publisher, config)
    wait_for(lambda: device_state(config, "sync.state") == "disconnected", 10, "disconnected")
    assert "127.0.0.1" in (device_state(config, "sync.last_error") or "")
    brokers.start(port)
    services(run_receiver, config)
    wait_for(lambda: all(delivered(config, r) for r in recs), 30, "three acks")
    for rec in recs:
        assert_received_once(config, rec)
    order = [r["record_id"] for r in list_records(config.central.database)]
    assert order == [r.record_id for r in recs], "records leave in outbox order"


def central_chunks(config: config_mod.Config) -> int:
    try:
        conn = central_store.connect(config.central.database)
    except Exception:
        return 0
    try:
        return conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    finally:
        conn.close()


def test_broker_killed_mid_transfer_still_delivers_exactly_once(tmp_path, brokers, services):
    first = brokers.start()
    config = make_config(tmp_path, first.port, chunk_bytes=2048)
    rec = enqueue(config, pdf_sizes=(8_000_000,))  # ~5,400 chunks: long enough to kill
    services(run_receiver, config)
    services(run_publisher, config)
    # Not delivered yet in the same look: under load the poll once came after the whole
    # transfer, and the broker was killed with nothing in flight.
    wait_for(lambda: central_chunks(config) > 20 and not delivered(config, rec), 20,
             "the transfer to start")
    first.kill()
    assert not delivered(config, rec)
    time.sleep(0.5)
    brokers.start(first.port)
    wait_for(lambda: delivered(config, rec), 40, "the ack after the broker crash")
    assert_received_once(config, rec)


def test_receiver_down_at_publish_time_then_up(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)
    # The receiver has a persistent session: the broker queues for it while it is away.
    first = services(run_receiver, config)
    wait_for(lambda: first.notes, 5, "receiver start")
    time.sleep(0.5)
    first.stop()
    rec = enqueue(config, pdf_sizes=(20_000,))
    services(run_publisher, config)
    wait_for(lambda: outbox_state(config, rec.record_id) is OutboxState.SENDING, 10, "sending")
    time.sleep(1.0)
    assert not list_records(config.central.database)
    services(run_receiver, config)
    wait_for(lambda: delivered(config, rec), 30, "the ack")
    assert_received_once(config, rec)


def test_corrupted_file_on_the_device_is_not_sent_and_does_not_block(
        tmp_path, broker, services, caplog):
    caplog.set_level(logging.ERROR, logger="appliance.sync.publisher")
    config = make_config(tmp_path, broker.port)
    bad = enqueue(config, pdf_sizes=(10_000,), seq=1)
    good = enqueue(config, pdf_sizes=(10_000,), seq=2)
    path = FileStore(config.paths.files).path(bad.file_shas[0], ".pdf")
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    services(run_receiver, config)
    services(run_publisher, config)
    wait_for(lambda: delivered(config, good), 20, "the good record")
    assert outbox_state(config, bad.record_id) is not OutboxState.DELIVERED
    assert "corrupt" in (device_state(config, "sync.last_error") or "")
    assert any(bad.record_id in r.getMessage() and "corrupt" in r.getMessage()
               for r in caplog.records)
    assert [r["record_id"] for r in list_records(config.central.database)] == [good.record_id]


def test_no_broker_configured_waits_and_says_so(tmp_path, services):
    config = make_config(tmp_path, 1883, host="")
    rec = enqueue(config)
    pub = services(run_publisher, config)
    wait_for(lambda: device_state(config, "sync.state") == "no_broker", 10, "no_broker")
    assert pub.notes[:2] == ["READY=1", "WATCHDOG=1"]
    pub.stop()
    assert outbox_state(config, rec.record_id) is OutboxState.PENDING


def _sync_process(config_file: Path, log: Path) -> subprocess.Popen[bytes]:
    code = "import sys; from appliance.sync.commands import main_sync; sys.exit(main_sync())"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, "--config", str(config_file)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"})


def test_publisher_kill9_mid_transfer_then_restart_delivers_once(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port, chunk_bytes=2048)
    config_file = write_config_file(tmp_path, config)
    rec = enqueue(config, pdf_sizes=(8_000_000,))  # ~5,400 chunks: long enough to kill
    services(run_receiver, config)
    log = tmp_path / "sync.log"
    proc = _sync_process(config_file, log)
    try:
        wait_for(lambda: central_chunks(config) > 20, 20, "the transfer to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        assert outbox_state(config, rec.record_id) is OutboxState.SENDING
        proc = _sync_process(config_file, log)
        wait_for(lambda: delivered(config, rec), 30, "the ack after the restart")
        assert_received_once(config, rec)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "interrupted deliveries will be retried" in log.read_text()
