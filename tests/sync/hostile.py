"""Hostile payloads for the wire: what an attacker who can publish on a topic sends.

Shared by the decoder's unit tests and the fault tests that publish them through a
real broker at the receiver and at the device.
"""

from __future__ import annotations

import json

SHA = "a" * 64


def _chunk_json(**fields: object) -> bytes:
    obj = {"v": 1, "type": "chunk", "record_id": "r", "sha256": SHA, "index": 0,
           "count": 1, "size": 1, "data": "QQ=="}
    obj.update(fields)
    return json.dumps(obj).encode()


def _binary_pack(items: list[object], tail: bytes, *, files: list[object] | None = None,
                 kind: str = "records") -> bytes:
    """A binary "records" message with this header and these bytes after it."""
    header: dict[str, object] = {"v": 1, "type": kind, "items": items}
    if files is not None:
        header["files"] = files
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"\x00rp1" + len(head).to_bytes(4, "big") + head + tail


HOSTILE = {
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "nested object 100,000 deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "nested inside a field": b'{"v":1,"type":"record","x":' + b"[" * 50 + b"]" * 50 + b"}",
    "4,301-digit integer": b'{"v":1,"type":"chunk","count":' + b"9" * 4301 + b"}",
    "4,301-digit integer alone": b"9" * 4301,
    "21-digit integer": _chunk_json(count=10**20),
    "chunk count 2**64": _chunk_json(count=2**64),
    "chunk count 0": _chunk_json(count=0, index=0),
    "chunk index negative": _chunk_json(index=-1),
    "chunk bigger than its file": _chunk_json(size=0),
    "file size 2**40": _chunk_json(size=2**40),
    # Transfers that can never complete (every device cuts at least 384 bytes a chunk).
    "65,536 chunks of an empty file": _chunk_json(count=65536, size=0, data=""),
    "65,536 chunks of a 100-byte file": _chunk_json(count=65536, size=100),
    "4 chunks of a 769-byte file": _chunk_json(count=4, size=769),
    "a 1-byte chunk before the last": _chunk_json(count=2, size=1000),
    "non-UTF-8 bytes": b'{"v":1,"type":"record","record_id":"' + bytes([0xFF, 0xFE]) + b'"}',
    "5 MB payload": b'{"v":1,"type":"record","body_json":"' + b"a" * 5_000_000 + b'"}',
    "NaN": b'{"v":1,"type":"ack","received_at":NaN}',
    "Infinity float": b'{"v":1,"type":"ack","received_at":1e999}',
    "duplicate key": _chunk_json()[:-1] + b',"count":2}',
    "record_id an int": _chunk_json(record_id=5),
    "record_id with a slash": _chunk_json(record_id="../x"),
    "record_id 200 chars": _chunk_json(record_id="r" * 200),
    "index a string": _chunk_json(index="0"),
    "index a bool": _chunk_json(index=True),
    "index a float": _chunk_json(index=0.0),
    "v true": _chunk_json(v=True),
    "sha256 upper case": _chunk_json(sha256=SHA.upper()),
    "data not a string": _chunk_json(data=[1]),
    "body_json not a string": b'{"v":1,"type":"record","record_id":"r","sha256":"'
                              + SHA.encode() + b'","body_json":{}}',
    "claim a string": b'{"v":1,"type":"record","record_id":"r","sha256":"'
                      + SHA.encode() + b'","body_json":"{}","claim":"yes"}',
    "ack without signature": b'{"v":1,"type":"ack","record_id":"r","sha256":"'
                             + SHA.encode() + b'","received_at":1,"device_id":"kiosk-01",'
                             b'"status":"stored"}',
    "ack status unknown": b'{"v":1,"type":"ack","record_id":"r","sha256":"' + SHA.encode()
                          + b'","received_at":1,"device_id":"kiosk-01","status":"ok",'
                          b'"sig":""}',
    "ack received_at in year 10^6": b'{"v":1,"type":"ack","record_id":"r","sha256":"'
                                    + SHA.encode() + b'","received_at":3e13,'
                                    b'"device_id":"kiosk-01","status":"stored","sig":""}',
    "a well-formed ack with a made-up signature": json.dumps({
        "v": 1, "type": "ack", "record_id": "r", "sha256": SHA, "received_at": 1.0,
        "device_id": "kiosk-01", "status": "stored", "sig": "QUFB" * 21 + "QQ=="}).encode(),
    # The additions to version 1: batched acks, resume queries and answers, packs.
    "acks with 10,000 items": json.dumps({
        "v": 1, "type": "acks", "device_id": "kiosk-01", "received_at": 1,
        "items": ["r", SHA, "stored"] * 10_000, "sig": ""}).encode(),
    "acks items not in threes": json.dumps({
        "v": 1, "type": "acks", "device_id": "kiosk-01", "received_at": 1,
        "items": ["r", SHA], "sig": ""}).encode(),
    "acks items nested": json.dumps({
        "v": 1, "type": "acks", "device_id": "kiosk-01", "received_at": 1,
        "items": [["r", SHA, "stored"]], "sig": ""}).encode(),
    "have naming a chunk past the count": json.dumps({
        "v": 1, "type": "have", "device_id": "kiosk-01", "record_id": "r",
        "nonce": "n" * 32, "files": [SHA, 4, 5], "sig": ""}).encode(),
    "resume with a nonce of punctuation": json.dumps({
        "v": 1, "type": "resume", "record_id": "r", "nonce": "../" * 10,
        "files": [SHA, 4]}).encode(),
    "resume for 2**64 chunks": json.dumps({
        "v": 1, "type": "resume", "record_id": "r", "nonce": "n" * 32,
        "files": [SHA, 2**64]}).encode(),
    "records pack of 300": json.dumps({
        "v": 1, "type": "records", "items": ["r", SHA, "{}"] * 300}).encode(),
    "records pack with a file of the wrong size": json.dumps({
        "v": 1, "type": "records", "items": ["r", SHA, "{}"],
        "files": ["r", SHA, 5, "QUJD"]}).encode(),
    "binary chunk, magic alone": b"\x00ch1",
    "binary chunk, header length past the end": b"\x00ch1\xff\xff{}",
    "binary chunk, header nested deep": b"\x00ch1\x01\x00" + b"[" * 128 + b"]" * 128,
    "binary chunk, header with base64 data too": b"\x00ch1" + bytes([0, len(_chunk_json())])
                                                 + _chunk_json() + b"A",
    "binary chunk, more data than its file": b"\x00ch1" + bytes([0, 143]) + json.dumps({
        "v": 1, "type": "chunk", "record_id": "r", "sha256": SHA, "index": 0,
        "count": 1, "size": 1}, separators=(",", ":")).encode() + b"AB",
    "binary pack, magic alone": b"\x00rp1",
    "binary pack, header length past the end": b"\x00rp1\x7f\xff\xff\xff{}",
    "binary pack, header of 4 GB announced": b"\x00rp1\xff\xff\xff\xff",
    "binary pack, header nested deep": b"\x00rp1\x00\x00\x01\x00"
                                       + b"[" * 128 + b"]" * 128,
    "binary pack, body longer than the payload": _binary_pack(["r", SHA, 10], b"{}"),
    "binary pack, bytes after the last body": _binary_pack(["r", SHA, 2], b"{}junk"),
    "binary pack, body length negative": _binary_pack(["r", SHA, -2], b"{}"),
    "binary pack, body length true": _binary_pack(["r", SHA, True], b"{"),
    "binary pack, body length 2**64": _binary_pack(["r", SHA, 2**64], b"{}"),
    "binary pack, body not UTF-8": _binary_pack(["r", SHA, 2], b"\xff\xfe"),
    "binary pack of 300": _binary_pack(["r", SHA, 2] * 300, b"{}" * 300),
    "binary pack, record id with a slash": _binary_pack(["../r", SHA, 2], b"{}"),
    "binary pack, file size past the end": _binary_pack(["r", SHA, 2], b"{}A",
                                                        files=["r", SHA, 5]),
    "binary pack, chunk header": _binary_pack(["r", SHA, 2], b"{}", kind="chunk"),
    "chunk whose record id ends in a newline": _chunk_json(record_id="r-1\n"),
    "chunk whose sha256 ends in a newline": _chunk_json(sha256=SHA + "\n"),
    "binary pack, record id ending in a newline": _binary_pack(["r\n", SHA, 2], b"{}"),
    "a JSON string": b'"hello"',
    "empty": b"",
    "a lone quote with brackets": b'"' + b"[" * 1000,
}
