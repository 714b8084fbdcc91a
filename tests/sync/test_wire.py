"""The wire format: round trips, the size bound AWS IoT imposes, and refusal of junk."""

from __future__ import annotations

import hashlib
import os

import pytest

from appliance.sync import wire
from appliance.sync.errors import WireError

SHA = "a" * 64


@pytest.mark.parametrize("chunk_bytes", [1024, 4096, 65536, 131072])
def test_chunks_reassemble_and_stay_within_chunk_bytes(chunk_bytes):
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    chunks = list(wire.iter_chunks("r-1", sha, data, chunk_bytes))
    encoded = [wire.encode_chunk(c) for c in chunks]
    assert max(len(e) for e in encoded) <= chunk_bytes
    decoded = [wire.decode(e) for e in encoded]
    assert all(isinstance(c, wire.Chunk) for c in decoded)
    assert [c.index for c in decoded] == list(range(len(chunks)))
    assert {c.count for c in decoded} == {len(chunks)}
    assert b"".join(c.data for c in decoded) == data


def test_empty_file_is_one_chunk():
    [chunk] = wire.iter_chunks("r", SHA, b"", 4096)
    assert chunk.count == 1 and chunk.data == b""


def test_record_body_travels_verbatim():
    body = '{"dossier_code":"000.00.12.H42-261125-0001","signed_by":"Nguyễn Thị Lan"}'
    sha = hashlib.sha256(body.encode()).hexdigest()
    msg = wire.decode(wire.encode_record(wire.RecordMessage("r", sha, body)))
    assert msg == wire.RecordMessage("r", sha, body)
    ack = wire.decode(wire.encode_ack(wire.Ack("r", sha, 12.5)))
    assert ack == wire.Ack("r", sha, 12.5)


def test_topics():
    assert wire.records_topic("bhxh", "kiosk-01") == "bhxh/devices/kiosk-01/records"
    assert wire.acks_topic("bhxh", "kiosk-01") == "bhxh/devices/kiosk-01/acks"
    assert wire.records_subscription("bhxh") == "bhxh/devices/+/records"
    assert wire.device_from_topic("bhxh", "bhxh/devices/kiosk-01/records") == "kiosk-01"
    assert wire.device_from_topic("bhxh", "bhxh/devices/kiosk-01/acks") is None
    assert wire.device_from_topic("bhxh", "other/devices/kiosk-01/records") is None


@pytest.mark.parametrize("payload", [
    b"\xff", b"[]", b'{"v": 2, "type": "ack"}', b'{"v": 1, "type": "nope", "record_id": "r"}',
    b'{"v": 1, "type": "ack", "record_id": "r", "sha256": "xyz", "received_at": 1}',
    b'{"v": 1, "type": "chunk", "record_id": "r", "sha256": "' + SHA.encode()
    + b'", "index": 3, "count": 3, "size": 1, "data": ""}',
    b'{"v": 1, "type": "chunk", "record_id": "r", "sha256": "' + SHA.encode()
    + b'", "index": 0, "count": 1, "size": 1, "data": "!!"}',
    b'{"v": 1, "type": "record", "record_id": "", "sha256": "' + SHA.encode()
    + b'", "body_json": "{}"}',
])
def test_junk_is_refused_with_wire_error(payload):
    with pytest.raises(WireError):
        wire.decode(payload)


def test_record_files_lists_papers_in_order():
    body = ('{"papers":[{"file":{"sha256":"' + "1" * 64 + '","size":5}},'
            '{"file":null},{"file":{"sha256":"' + "2" * 64 + '","size":7}}]}')
    assert wire.record_files(body) == [("1" * 64, 5), ("2" * 64, 7)]
    with pytest.raises(WireError):
        wire.record_files('{"papers":[{"file":{"sha256":"bad","size":1}}]}')
