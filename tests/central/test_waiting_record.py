"""A record kept for its files behind a shared subscription is decoded once, not at
every look.

Why: with receivers sharing one subscription, a record message may reach a receiver
before the chunks of its files, which another receiver is storing. It keeps the
message (its PUBACK held) for up to 10 s and looks every 0.1 s whether the files are
there. Each look decoded the whole message again (up to 1 MB of JSON), about a hundred
times per kept record (red team 18). Now what it waits for is worked out at the first
look. Real mosquitto; the receiver's own run function in a thread, so that the decoder
can be counted; the record and its chunks as a device publishes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import closing

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import INCOMPLETE_RETRY_SECONDS
from appliance.sync import wire
from tests.helpers.sync_rig import (
    Attacker,
    central_read,
    make_config,
    subscribed_receiver,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

GROUP = "central-5b9e0d7a13c4f862"
DEVICE = "kiosk-01"


def test_a_kept_record_is_decoded_once_while_it_waits(tmp_path, broker, services,
                                                       monkeypatch):
    config = make_config(tmp_path, broker.port, central={"share_group": GROUP})
    data = os.urandom(5000)
    sha = hashlib.sha256(data).hexdigest()
    body = json.dumps({"record_id": "r-wait", "device_id": DEVICE, "dossier_code": "D-1",
                       "papers": [{"result_code": "D-1.01",
                                   "file": {"sha256": sha, "size": len(data)}}]})
    record = wire.encode_record(wire.RecordMessage(
        "r-wait", hashlib.sha256(body.encode()).hexdigest(), body))

    decoded = []
    real_decode = wire.decode_device_message

    def counting(payload: bytes) -> object:
        if payload == record:
            decoded.append(time.monotonic())
        return real_decode(payload)

    monkeypatch.setattr(wire, "decode_device_message", counting)
    topic = wire.records_topic(config.mqtt.topic_prefix, DEVICE)
    with closing(Attacker(broker.port)) as device:
        subscribed_receiver(services, config, device)
        device.publish(topic, record)
        waited = 2.0
        time.sleep(waited)  # about 20 looks
        assert central_read(config, lambda c: c.execute(
            "SELECT COUNT(*) FROM records").fetchone()[0], -1) == 0
        for chunk in wire.iter_chunks("r-wait", sha, data, 1024):
            device.publish(topic, wire.encode_chunk(chunk))
        wait_for(lambda: central_read(config, lambda c: [
            r["record_id"] for r in central_store.list_records(c)], []) == ["r-wait"],
            20, "the kept record stored once its file came")

    assert waited / INCOMPLETE_RETRY_SECONDS > 10
    # Its first handling, its first look, and its try once the file is there.
    assert len(decoded) <= 3, f"decoded {len(decoded)} times in {waited} s"
