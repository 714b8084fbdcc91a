"""Issue 12, second independent acceptance: the CONFLICT -> claim path for a record
whose body travels in chunks (wire.RecordMessage.body_bytes).

A squatter (an open broker: no ACL, as in the demo) publishes a forged record under a
pending record's id before the device speaks. The genuine record's body is too big for
one message, so it goes ahead in chunks; the receiver stores it held aside (CONFLICT)
and drops its chunks. The device must then re-send its claim, and since the chunks are
gone it must send the body again before a record message that carries only
body_bytes and claim=true. Nothing else covers a claim without a body_json: the
receiver must find these exact bytes held and serve them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.sync import wire
from appliance.sync.publisher import run_publisher
from tests.helpers.sync_rig import (
    NO_CHUNK_STATE,
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    enqueue,
    make_config,
    subscribed_receiver,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)
PAPERS = 8  # a body of about 8.5 KB, cut into 3 chunks at chunk_bytes 4096


def test_a_squatted_record_whose_body_travels_in_chunks_is_claimed_and_served(
        tmp_path: Path, broker, services) -> None:
    config = make_config(tmp_path, broker.port)  # chunk_bytes 4096
    [big] = enqueue(config, 1, pdf_sizes=(100,) * PAPERS)
    assert len(big.body_json) > 2 * config.mqtt.chunk_bytes  # several chunks in either cut
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    topic = wire.records_topic("bhxh", config.device.id)
    forged = json.dumps({"record_id": big.record_id, "device_id": config.device.id,
                         "dossier_code": "FORGED", "papers": []})
    forged_sha = hashlib.sha256(forged.encode()).hexdigest()
    attacker.publish(topic, wire.encode_record(
        wire.RecordMessage(big.record_id, forged_sha, forged)))
    wait_for(lambda: central_store.list_records(config.central.database), 10, "the squat")
    attacker.sniff(topic)
    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, [big]), 30, "the genuine record, claimed")
    attacker.close()
    sent = [wire.decode(p) for t, p in attacker.seen if t == topic]
    records = [m for m in sent if isinstance(m, wire.RecordMessage)
               and m.record_id == big.record_id and m.sha256 == big.sha256]
    # It went in chunks, was held aside, and was claimed with body_bytes, no body_json.
    assert records and all(m.body_bytes and not m.body_json for m in records), records
    assert any(m.claim for m in records), records
    assert_exactly_once(config, [big])
    assert_no_false_delivery(config)
    [held] = central_store.list_held(config.central.database)
    assert held["sha256"] == forged_sha
    [conflict] = central_store.list_conflicts(config.central.database)
    assert (conflict["record_id"], conflict["state"]) == (big.record_id, "resolved")
    state = central_store.chunk_state(config.central.database)
    assert state == NO_CHUNK_STATE, state
    assert receiver.running() and publisher.running()
