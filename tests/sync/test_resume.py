"""An interrupted transfer goes on from the first missing chunk after a reconnect.

A record with a big scan is cut mid-transfer by a SIGKILL of the broker; the receiver
(a real `appliance central` process) keeps the chunks it committed. When the device
reconnects it asks which chunks the receiver holds, gets a signed answer, and sends
only the rest: the publishes on the device's topic after the restart are counted by
a subscriber, and the record arrives byte-identical, exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.central import store as central_store
from appliance.store import db
from appliance.sync import wire
from appliance.sync.publisher import PACKS_STATE_KEY, run_publisher
from tests.helpers.sync_rig import (
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

pytestmark = pytest.mark.timeout(120)
CHUNK_BYTES = 8192
SCAN_BYTES = 6_000_000
BODY_CHUNK_BYTES = 2048


class Counter:
    """Every message on the device's topics, decoded, in arrival order."""

    def __init__(self, port: int, device_id: str) -> None:
        self.seen: list[wire.Message] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.on_chunk: list = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="counter",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(wire.records_topic("bhxh", device_id), 1),
                               (wire.acks_topic("bhxh", device_id), 1)])
        self.client.loop_start()
        time.sleep(0.3)

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            decoded = wire.decode(msg.payload)
        except Exception as e:  # noqa: BLE001 - kept for the assertion below
            self.errors.append(f"{type(e).__name__}: {e} ({msg.payload[:60]!r})")
            return
        with self.lock:
            self.seen.append(decoded)
        for hook in self.on_chunk:
            hook(decoded)

    def of(self, kind: type) -> list:
        with self.lock:
            return [m for m in self.seen if isinstance(m, kind)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def assert_whole_once(config, rec) -> None:
    """The record at the receiver once, byte-identical, and no chunk left there."""
    assert_exactly_once(config, [rec])
    assert_no_false_delivery(config)
    assert central_store.chunk_state(config.central.database)["chunks"] == 0


def stop(counter: Counter | None, central) -> None:
    if counter is not None:
        counter.close()
    if central.poll() is None:
        os.kill(central.pid, signal.SIGTERM)
        central.wait(15)


@pytest.mark.parametrize("binary_first", [False, True],
                         ids=["first-try-in-base64", "first-try-in-binary-chunks"])
def test_broker_sigkill_mid_record_resumes_from_the_first_missing_chunk(
        tmp_path, brokers, services, binary_first):
    """binary_first=False: the device has not yet heard this receiver read binary chunks
    (first contact), so the first try is cut for base64 and the resume, after the
    receiver's answer taught it, goes on in that cut. True: the device knew it already;
    the file is cut for binary chunks from the start and resumed in that cut."""
    broker = brokers.start()
    config = make_config(tmp_path, broker.port, chunk_bytes=CHUNK_BYTES,
                         ack_timeout_seconds=60.0)
    config_file = write_config_file(tmp_path, config)
    log = tmp_path / "central.log"
    json_count = -(-SCAN_BYTES // wire.chunk_data_bytes(CHUNK_BYTES))
    binary_count = -(-SCAN_BYTES // wire.chunk_data_bytes(CHUNK_BYTES, binary=True))
    count = binary_count if binary_first else json_count
    central = start_central(config_file, log)
    counter = None
    try:
        attacker = Attacker(broker.port)
        probe_receiver(attacker, config)
        attacker.close()
        [rec] = enqueue(config, 1, pdf_sizes=(SCAN_BYTES,))
        if binary_first:
            conn = db.connect(config.paths.database, key_file=config.paths.key_file)
            with db.transaction(conn):
                db.set_state(conn, PACKS_STATE_KEY, "1")
            conn.close()
        counter = Counter(broker.port, config.device.id)
        cut = threading.Event()

        def cut_mid_record(msg: wire.Message) -> None:
            if isinstance(msg, wire.Chunk) and msg.index >= 40 and not cut.is_set():
                cut.set()
                broker.kill()

        counter.on_chunk.append(cut_mid_record)
        publisher = services(run_publisher, config)
        assert cut.wait(30), "the transfer never started"
        first_try = counter.of(wire.Chunk)
        assert first_try and max(c.index for c in first_try) < count - 1, \
            "cut too late: the whole file had been published"
        counter.close()

        # Back on the same port, without the sessions (killed before any autosave),
        # after the device's reconnection back-off has grown past 1 s, so the counter
        # below is subscribed before the device is connected again.
        time.sleep(2.0)
        brokers.start(broker.port)
        counter = Counter(broker.port, config.device.id)
        wait_for(lambda: all_delivered(config, [rec]), 60, "the record after the cut")
        # The counter gets at most the broker's max_inflight_messages ahead of its
        # PUBACKs while the receiver asks for more (Receive Maximum): it may still be
        # behind when the ack is in. The record message follows the last chunk.
        wait_for(lambda: bool(counter.of(wire.RecordMessage)), 30,
                 "the counter to see the record message")

        assert not counter.errors, counter.errors
        [have] = counter.of(wire.Have)
        # The device asks for both cuts (base64 before the receiver was heard to read
        # binary chunks, binary after); the chunks held are the first try's base64 ones.
        assert {sha for sha, _count, _first in have.files} == {rec.file_shas[0]}
        held = {have_count: first for _sha, have_count, first in have.files}
        assert set(held) == {json_count, binary_count}
        assert held[binary_count if not binary_first else json_count] == 0
        first = held[count]
        assert 0 < first < count, f"the receiver held {first} of {count} chunks"
        resent = sorted(c.index for c in counter.of(wire.Chunk))
        assert resent == list(range(first, count)), \
            f"chunks sent again: {len(resent)}, expected {count - first} from {first}"
        assert len(counter.of(wire.ResumeQuery)) >= 1
        assert [r.record_id for r in counter.of(wire.RecordMessage)] == [rec.record_id]

        assert central.poll() is None, log.read_text()
        assert publisher.running()
        assert_whole_once(config, rec)
    finally:
        stop(counter, central)



def test_a_body_sent_in_chunks_resumes_from_the_first_missing_chunk(tmp_path, broker,
                                                                     services):
    """A record whose body is too big for one message (80 papers, about 76,000 bytes
    against 2 KB messages) sends its body in chunks. Tried before (a restart cut it),
    with the first HELD of them at the receiver (sent here as the device cuts them),
    the device asks, gets a signed answer and sends only the rest; the body is stored
    whole and its chunks are gone."""
    config = make_config(tmp_path, broker.port, chunk_bytes=BODY_CHUNK_BYTES,
                         ack_timeout_seconds=60.0)
    config_file = write_config_file(tmp_path, config)
    log = tmp_path / "central.log"
    central = start_central(config_file, log)
    counter = None
    held = 17
    try:
        attacker = Attacker(broker.port)
        probe_receiver(attacker, config)
        [rec] = enqueue(config, 1, pdf_sizes=(100,) * 80)
        body = rec.body_json.encode("utf-8")
        assert len(body) > 30 * BODY_CHUNK_BYTES
        chunks = list(wire.iter_chunks(rec.record_id, rec.sha256, body, BODY_CHUNK_BYTES,
                                       binary=True))
        for chunk in chunks[:held]:
            attacker.publish(wire.records_topic("bhxh", config.device.id),
                             wire.encode_binary_chunk(chunk))
        wait_for(lambda: central_store.chunk_state(config.central.database)["chunks"]
                 == held, 10, "the first chunks held")
        attacker.close()
        conn = db.connect(config.paths.database, key_file=config.paths.key_file)
        with db.transaction(conn):
            db.set_state(conn, PACKS_STATE_KEY, "1")  # binary chunks, as the receiver reads
            conn.execute("UPDATE outbox SET attempts=1 WHERE record_id=?", (rec.record_id,))
        conn.close()
        counter = Counter(broker.port, config.device.id)
        publisher = services(run_publisher, config)
        wait_for(lambda: all_delivered(config, [rec]), 30, "the record")
        wait_for(lambda: bool(counter.of(wire.RecordMessage)), 30,
                 "the counter to see the record message")
        assert not counter.errors, counter.errors
        [have] = counter.of(wire.Have)
        answered = {c: first for sha, c, first in have.files if sha == rec.sha256}
        assert answered[len(chunks)] == held
        sent = sorted(c.index for c in counter.of(wire.Chunk) if c.file_sha256 == rec.sha256)
        assert sent == list(range(held, len(chunks))), f"body chunks sent: {sent}"
        [msg] = counter.of(wire.RecordMessage)
        assert msg.body_bytes == len(body) and msg.body_json == ""
        assert central.poll() is None, log.read_text()
        assert publisher.running()
        assert_whole_once(config, rec)
    finally:
        stop(counter, central)
