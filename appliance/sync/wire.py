"""The wire format between appliances and the central office (version 1).

Topics:
  {prefix}/devices/{device_id}/records  device -> central: file chunks, then the record
  {prefix}/devices/{device_id}/acks     central -> device: one ack per stored record

Every payload is a UTF-8 JSON object with "v" (format version) and "type". A record
travels as the chunks of each of its files followed by one "record" message that
carries body_json verbatim (byte-exact, so its sha256 can be checked) and that
sha256. The idempotency key is record_id: the receiver stores a record once however
often it arrives and acknowledges every copy.

Chunks exist because brokers cap message size (AWS IoT Core: 128 KB); mqtt.chunk_bytes
bounds the whole encoded payload, base64 and JSON included, not just the data.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from appliance.sync.errors import WireError

WIRE_VERSION = 1
# Room for the JSON envelope around the base64 data of a chunk.
CHUNK_ENVELOPE_BYTES = 512
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_SEGMENT_RE = re.compile(r"^[^/+#]+$")


def records_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/devices/{device_id}/records"


def acks_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/devices/{device_id}/acks"


def records_subscription(prefix: str) -> str:
    return f"{prefix}/devices/+/records"


def device_from_topic(prefix: str, topic: str) -> str | None:
    """The device id in a records topic, or None for a topic that is not one."""
    head = f"{prefix}/devices/"
    if not topic.startswith(head) or not topic.endswith("/records"):
        return None
    device = topic[len(head): -len("/records")]
    return device if _SEGMENT_RE.match(device) else None


def chunk_data_bytes(chunk_bytes: int) -> int:
    """Raw file bytes per chunk so that the encoded message stays within chunk_bytes."""
    return max(3, (chunk_bytes - CHUNK_ENVELOPE_BYTES) // 4 * 3)


@dataclass(frozen=True)
class Chunk:
    record_id: str
    file_sha256: str
    index: int
    count: int
    size: int
    data: bytes


@dataclass(frozen=True)
class RecordMessage:
    record_id: str
    sha256: str
    body_json: str


@dataclass(frozen=True)
class Ack:
    record_id: str
    sha256: str
    received_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "sha256": self.sha256,
                "received_at": self.received_at}


Message = Chunk | RecordMessage | Ack


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_chunk(chunk: Chunk) -> bytes:
    return _dump({
        "v": WIRE_VERSION, "type": "chunk", "record_id": chunk.record_id,
        "sha256": chunk.file_sha256, "index": chunk.index, "count": chunk.count,
        "size": chunk.size, "data": base64.b64encode(chunk.data).decode("ascii"),
    })


def encode_record(msg: RecordMessage) -> bytes:
    return _dump({"v": WIRE_VERSION, "type": "record", "record_id": msg.record_id,
                  "sha256": msg.sha256, "body_json": msg.body_json})


def encode_ack(ack: Ack) -> bytes:
    return _dump({"v": WIRE_VERSION, "type": "ack", **ack.as_dict()})


def iter_chunks(record_id: str, file_sha256: str, data: bytes, chunk_bytes: int) -> Iterator[Chunk]:
    """Cut a file into chunks; an empty file is still one (empty) chunk so it is announced."""
    step = chunk_data_bytes(chunk_bytes)
    count = max(1, -(-len(data) // step))
    for index in range(count):
        yield Chunk(record_id, file_sha256, index, count, len(data),
                    data[index * step:(index + 1) * step])


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise WireError(f"field {name!r} missing or not {kind.__name__}")
    return value


def _sha(obj: dict[str, Any], name: str) -> str:
    value = _field(obj, name, str)
    if not _SHA_RE.match(value):
        raise WireError(f"field {name!r} is not a lower-case hex sha256")
    return value


def decode(payload: bytes) -> Message:
    """Parse and check one payload; anything malformed raises WireError, never KeyError."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"payload is not UTF-8 JSON: {e}") from e
    if not isinstance(obj, dict):
        raise WireError("payload is not a JSON object")
    if obj.get("v") != WIRE_VERSION:
        raise WireError(f"unsupported wire version {obj.get('v')!r}")
    kind = obj.get("type")
    record_id = _field(obj, "record_id", str)
    if not record_id or len(record_id) > 200:
        raise WireError("record_id empty or too long")
    if kind == "chunk":
        index, count, size = (_field(obj, k, int) for k in ("index", "count", "size"))
        if not (0 <= index < count) or size < 0:
            raise WireError(f"chunk index {index} / count {count} / size {size} out of range")
        try:
            data = base64.b64decode(_field(obj, "data", str), validate=True)
        except (binascii.Error, ValueError) as e:
            raise WireError(f"chunk data is not base64: {e}") from e
        return Chunk(record_id, _sha(obj, "sha256"), index, count, size, data)
    if kind == "record":
        return RecordMessage(record_id, _sha(obj, "sha256"), _field(obj, "body_json", str))
    if kind == "ack":
        received = obj.get("received_at")
        if not isinstance(received, int | float) or isinstance(received, bool):
            raise WireError("field 'received_at' missing or not a number")
        return Ack(record_id, _sha(obj, "sha256"), float(received))
    raise WireError(f"unknown message type {kind!r}")


def record_files(body_json: str) -> list[tuple[str, int]]:
    """(sha256, size) of each paper's file named in a record body, in paper order.

    A paper whose file is null has nothing to send; whether that is allowed is the
    records module's decision, recorded verbatim in the body.
    """
    try:
        body = json.loads(body_json)
        files = [(p["file"]["sha256"], int(p["file"]["size"])) for p in body.get("papers", [])
                 if p.get("file") and p["file"].get("sha256") is not None]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise WireError(f"record body does not list its files: {e}") from e
    for sha, size in files:
        if not isinstance(sha, str) or not _SHA_RE.match(sha) or size < 0:
            raise WireError(f"record body names a bad file {sha!r} / {size}")
    return files
