"""Issue 12, second independent acceptance: `appliance central` killed with SIGKILL
between a chunked record body's last chunk and its record message.

Every chunk of the body reaches the receiver (published here exactly as the device cuts
them, binary) and is committed; the receiver process is then killed -9 and started
again. The device, which tried the record before, asks which chunks are held: the
restarted receiver must answer "all of them" from what it committed before the kill,
the device sends the record message alone (body_bytes, no chunk), and the body is
stored whole from the chunks that survived the kill, exactly once, with none left.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.store import db
from appliance.sync import wire
from appliance.sync.publisher import PACKS_STATE_KEY, run_publisher
from tests.helpers.sync_rig import (
    NO_CHUNK_STATE,
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    enqueue,
    make_config,
    probe_receiver,
    start_central,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(60)
CHUNK_BYTES = 2048


def test_body_chunks_committed_before_a_kill_9_complete_the_record_after_it(
        tmp_path: Path, broker, services) -> None:
    config = make_config(tmp_path, broker.port, chunk_bytes=CHUNK_BYTES,
                         ack_timeout_seconds=30.0)
    config_file = write_config_file(tmp_path, config)
    log = tmp_path / "central.log"
    central = start_central(config_file, log)
    attacker = Attacker(broker.port)
    try:
        probe_receiver(attacker, config)
        [rec] = enqueue(config, 1, pdf_sizes=(100,) * 12)
        body = rec.body_json.encode("utf-8")
        chunks = list(wire.iter_chunks(rec.record_id, rec.sha256, body, CHUNK_BYTES,
                                       binary=True))
        assert len(chunks) > 3
        topic = wire.records_topic("bhxh", config.device.id)
        for chunk in chunks:
            attacker.publish(topic, wire.encode_binary_chunk(chunk))
        wait_for(lambda: central_store.chunk_state(config.central.database)["chunks"]
                 == len(chunks), 10, "every body chunk committed")
        os.kill(central.pid, signal.SIGKILL)
        central.wait(10)
        central = start_central(config_file, log)
        # The device knows this receiver (binary chunks) and tried the record before.
        conn = db.connect(config.paths.database, key_file=config.paths.key_file)
        with db.transaction(conn):
            db.set_state(conn, PACKS_STATE_KEY, "1")
            conn.execute("UPDATE outbox SET attempts=1 WHERE record_id=?", (rec.record_id,))
        conn.close()
        attacker.sniff(topic)
        publisher = services(run_publisher, config)
        wait_for(lambda: all_delivered(config, [rec]), 20, "the record after the kill")
        sent = [wire.decode(p) for t, p in attacker.seen if t == topic]
        resent = [m for m in sent if isinstance(m, wire.Chunk)
                  and m.file_sha256 == rec.sha256]
        assert not resent, f"{len(resent)} body chunk(s) sent again after the kill"
        assert central.poll() is None, log.read_text(errors="replace")
        assert publisher.running()
        assert_exactly_once(config, [rec])
        assert_no_false_delivery(config)
        state = central_store.chunk_state(config.central.database)
        assert state == NO_CHUNK_STATE, state
    finally:
        attacker.close()
        if central.poll() is None:
            os.kill(central.pid, signal.SIGTERM)
            central.wait(15)
