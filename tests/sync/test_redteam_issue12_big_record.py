"""Issue 12, items 4 and 6, independent acceptance: a genuine record whose *body* is
larger than a broker's message cap.

Item 4 makes the default chunk size fit a broker that caps messages at 128 KB (AWS IoT;
tests/central/test_chunks.py sends 1 MB files through such a cap). Files are cut into
chunks; a record's body is not: it travels as one message. Sign-off accepts bodies up
to records.max_record_chars (524,288 characters), and a dossier of 200 one-page papers,
made through the product, signs to a body of about 190,000 characters. Behind a
128 KB cap the broker drops the device's connection at every try of that record
(the publisher only warns "brokers with a size cap may refuse it"), and the device's
other records, small ones signed after it, wait behind it: in a probe, none of three
was delivered in 110 s. Item 6 asks that small records never wait behind large ones.

Such a body now goes ahead in chunks like a scan (wire.RecordMessage.body_bytes): the
first test pins what the review found, the second that the big record itself arrives
whole and that hand-made messages using the new field store nothing and stop nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.store.outbox import OutboxState
from appliance.sync import wire
from appliance.sync.publisher import run_publisher
from appliance.system.config import MqttConfig
from tests.helpers.sync_rig import (
    NO_CHUNK_STATE,
    Attacker,
    all_delivered,
    assert_exactly_once,
    central_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    subscribed_receiver,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)
CAP = 131072          # a broker that caps messages at 128 KB, as in test_chunks.py
PAPERS = 200          # a body of about 190,000 characters, under max_record_chars
PROMPT_S = 10.0       # small records on loopback arrive in about a second


def test_small_records_pass_a_record_body_too_big_for_the_broker(
        tmp_path: Path, brokers, services) -> None:
    broker = brokers.start(extra_config=f"max_packet_size {CAP}")
    config = make_config(tmp_path, broker.port, chunk_bytes=MqttConfig().chunk_bytes)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    [big] = enqueue(config, 1, pdf_sizes=(400,) * PAPERS)
    assert CAP < len(big.body_json.encode("utf-8")) < config.records.max_record_chars
    small = enqueue(config, 3)
    publisher = services(run_publisher, config)
    wait_for(lambda: outbox_state(config, big.record_id) is OutboxState.SENDING, 10,
             "the big record tried")
    deadline = time.monotonic() + PROMPT_S
    while time.monotonic() < deadline and not all_delivered(config, small):
        time.sleep(0.1)
    attacker.close()
    assert all_delivered(config, small), (
        f"small records not delivered within {PROMPT_S} s behind a "
        f"{len(big.body_json)}-character record body")
    assert_exactly_once(config, small)
    assert receiver.running() and publisher.running()


def _record_json(**fields: object) -> bytes:
    """A "record" message written by hand, whatever the fields."""
    return json.dumps({"v": wire.WIRE_VERSION, "type": "record", **fields}).encode()


def test_a_body_in_chunks_arrives_whole_and_hand_made_ones_store_nothing(
        tmp_path: Path, brokers, services) -> None:
    broker = brokers.start(extra_config=f"max_packet_size {CAP}")
    config = make_config(tmp_path, broker.port, chunk_bytes=MqttConfig().chunk_bytes)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    topic = wire.records_topic("bhxh", config.device.id)
    dead_before = central_dead_letters(config)
    # Hand-made, on the device's own topic (no ACL here): each is refused or waits.
    junk = b"\xff\xfe not UTF-8 " * 20_000
    junk_sha = hashlib.sha256(junk).hexdigest()
    fake = b"not the bytes these chunks carry" * 6_000
    fake_sha = "ab" * 32
    for chunk in wire.iter_chunks("junk-1", junk_sha, junk, 100_000, binary=True):
        attacker.publish(topic, wire.encode_binary_chunk(chunk))
    for chunk in wire.iter_chunks("fake-1", fake_sha, fake, 100_000, binary=True):
        attacker.publish(topic, wire.encode_binary_chunk(chunk))
    hand_made = [
        # chunks that decode to no text, then their record
        wire.encode_record(wire.RecordMessage("junk-1", junk_sha, "", body_bytes=len(junk))),
        # chunks whose bytes are not the sha256 they are filed under
        wire.encode_record(wire.RecordMessage("fake-1", fake_sha, "", body_bytes=len(fake))),
        # a record whose body never came
        wire.encode_record(wire.RecordMessage("none-1", "cd" * 32, "", body_bytes=5000)),
    ]
    malformed = [
        _record_json(record_id="both-1", sha256="ef" * 32, body_json="{}", body_bytes=2),
        _record_json(record_id="zero-1", sha256="ef" * 32, body_bytes=0),
        _record_json(record_id="huge-1", sha256="ef" * 32,
                     body_bytes=wire.MAX_CHUNKED_BODY_BYTES + 1),
        _record_json(record_id="text-1", sha256="ef" * 32, body_bytes="5000"),
        _record_json(record_id="bool-1", sha256="ef" * 32, body_bytes=True),
    ]
    for payload in hand_made + malformed:
        attacker.publish(topic, payload)
    wait_for(lambda: central_dead_letters(config) >= dead_before + len(malformed), 10,
             "the malformed record messages set aside")
    # The genuine big record, and small ones, through the 128 KB cap.
    [big] = enqueue(config, 1, pdf_sizes=(400,) * PAPERS)
    assert len(big.body_json.encode("utf-8")) > CAP
    small = enqueue(config, 2)
    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, [big, *small]), 30, "the big record and the small")
    attacker.close()
    assert_exactly_once(config, [big, *small])
    served = {r["record_id"] for r in central_store.list_records(config.central.database)}
    assert served == {big.record_id, *(r.record_id for r in small)}
    reasons = {r["record_id"]: r["reason"]
               for r in central_store.list_rejections(config.central.database)}
    assert "UTF-8" in reasons["junk-1"]
    assert "sha256" in reasons["fake-1"]
    assert "none-1" not in reasons  # it waits for its chunks, which expire
    assert central_dead_letters(config) == dead_before + len(malformed)
    state = central_store.chunk_state(config.central.database)
    assert state == NO_CHUNK_STATE, state  # the bodies' chunks went with their records
    assert receiver.running() and publisher.running()
