"""The wire format: round trips, the size bound AWS IoT imposes, and refusal of junk."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import time

import pytest

from appliance.records import dossiers
from appliance.sync import acksig, wire
from appliance.sync.errors import WireError
from tests.sync.hostile import HOSTILE, SHA


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("chunk_bytes", [1024, 4096, 65536, 120_000, 131072])
def test_chunks_reassemble_and_stay_within_chunk_bytes(chunk_bytes, binary):
    """Cut for base64 in JSON or for raw bytes after a binary header, every message
    stays within chunk_bytes with the longest record id there can be."""
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    record_id = "r" * wire.MAX_RECORD_ID_CHARS
    chunks = list(wire.iter_chunks(record_id, sha, data, chunk_bytes, binary=binary))
    encode = wire.encode_binary_chunk if binary else wire.encode_chunk
    encoded = [encode(c) for c in chunks]
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
    ack = wire.Ack("r", sha, 12.5, "kiosk-01", wire.AckStatus.CONFLICT, b"s" * 64)
    assert wire.decode(wire.encode_ack(ack)) == ack
    claimed = wire.RecordMessage("r", sha, body, claim=True)
    assert wire.decode(wire.encode_record(claimed)) == claimed


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


# --- hostile payloads: each is refused with WireError, quickly, before json parses it ---

@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_payloads_are_refused_fast(name):
    start = time.perf_counter()
    with pytest.raises(WireError):
        wire.decode_device_message(HOSTILE[name])
    assert time.perf_counter() - start < 0.5, name


def test_the_device_reads_only_small_acks():
    ack = wire.Ack("r", SHA, 1.0, "kiosk-01", wire.AckStatus.STORED, b"s" * 64)
    assert wire.decode_ack(wire.encode_ack(ack)) == ack
    with pytest.raises(WireError):
        wire.decode_ack(wire.encode_chunk(wire.Chunk("r", SHA, 0, 1, 1, b"A")))
    with pytest.raises(WireError):
        wire.decode_ack(wire.encode_ack(ack)[:-1] + b' ' * 5000 + b'}')
    with pytest.raises(WireError):
        wire.decode_device_message(wire.encode_ack(ack))


def test_a_full_size_chunk_decodes_quickly():
    data = os.urandom(wire.chunk_data_bytes(wire.MAX_MESSAGE_BYTES))
    [chunk] = wire.iter_chunks("r", SHA, data, wire.MAX_MESSAGE_BYTES)
    payload = wire.encode_chunk(chunk)
    assert len(payload) <= wire.MAX_MESSAGE_BYTES
    start = time.perf_counter()
    assert wire.decode(payload) == chunk
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("body", [
    '{"record_id":"r","device_id":"kiosk-01","papers":' + "[" * 100 + "]" * 100 + "}",
    '{"record_id":"r","device_id":"kiosk-01","papers":[{"file":{"sha256":"' + "1" * 64
    + '","size":' + "9" * 4301 + "}}]}",
    '{"record_id":"r","papers":[]}',
    '{"record_id":"r","device_id":"Kiosk 01","papers":[]}',
    '{"record_id":"r","device_id":"kiosk-01","papers":{"a":1}}',
    '{"record_id":"r","device_id":"kiosk-01","papers":[1]}',
    '{"record_id":"r","device_id":"kiosk-01","papers":[{"file":"x"}]}',
    '{"record_id":"r","device_id":"kiosk-01","papers":[{"result_code":7}]}',
    '{"record_id":"r","device_id":"kiosk-01","dossier_code":["x"],"papers":[]}',
])
def test_hostile_record_bodies_are_refused(body):
    with pytest.raises(WireError):
        wire.parse_body(body)


def test_a_genuine_body_parses():
    body = ('{"record_id":"r","device_id":"kiosk-01","dossier_code":"D","papers":['
            '{"result_code":"D.01","file":{"sha256":"' + "1" * 64 + '","size":5},'
            '"fields":{"a":{"b":[1,2,{"c":"d"}]}}},{"file":null}]}')
    parsed = wire.parse_body(body)
    assert parsed.files == [("1" * 64, 5)] and parsed.result_codes == ["D.01", ""]
    assert parsed.device_id == "kiosk-01" and parsed.dossier_code == "D"


def test_signed_acks_verify_and_any_change_breaks_them(tmp_path):
    key = acksig.generate_key(tmp_path / "k", tmp_path / "k.pub")
    public = acksig.load_public_key(tmp_path / "k.pub")
    ack = acksig.sign(key, wire.Ack("r", SHA, 1700000000.123456, "kiosk-01"))
    assert acksig.verify(public, wire.decode_ack(wire.encode_ack(ack)))
    for changed in (
        dataclasses.replace(ack, record_id="r2"),
        dataclasses.replace(ack, sha256="b" * 64),
        dataclasses.replace(ack, device_id="kiosk-02"),
        dataclasses.replace(ack, status=wire.AckStatus.CONFLICT),
        dataclasses.replace(ack, received_at=ack.received_at + 1),
        dataclasses.replace(ack, signature=b""),
        dataclasses.replace(ack, signature=bytes(64)),
    ):
        assert not acksig.verify(public, changed)
    other = acksig.generate_key(tmp_path / "other", None)
    assert not acksig.verify(public, acksig.sign(other, ack))


def test_public_key_from_a_certificate_and_bad_key_files(tmp_path):
    key = acksig.generate_key(tmp_path / "k", None)
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(tmp_path / "k"),
                    "-subj", "/CN=central.bhxh", "-days", "2", "-out", str(tmp_path / "c.crt")],
                   check=True, capture_output=True, timeout=30)
    public = acksig.load_public_key(tmp_path / "c.crt")
    assert acksig.verify(public, acksig.sign(key, wire.Ack("r", SHA, 1.0, "kiosk-01")))
    (tmp_path / "junk").write_bytes(b"not a key")
    for bad in (tmp_path / "junk", tmp_path / "missing"):
        with pytest.raises(acksig.AckKeyError):
            acksig.load_public_key(bad)
        with pytest.raises(acksig.AckKeyError):
            acksig.load_private_key(bad)


def test_the_cli_window_default_is_the_publishers():
    from appliance.sync import commands, publisher

    assert commands.DEFAULT_WINDOW == publisher.DEFAULT_WINDOW


def test_batch_acks_resume_and_packs_round_trip_and_refuse_junk(tmp_path):
    key = acksig.generate_key(tmp_path / "k")
    items = tuple(wire.AckItem(f"r-{i}", SHA, wire.AckStatus.STORED) for i in range(3))
    batch = acksig.sign(key, wire.BatchAck("kiosk-01", 12.5, items))
    decoded = wire.decode_ack_message(wire.encode_batch_ack(batch))
    assert decoded == batch and acksig.verify(key.public_key(), decoded)
    moved = dataclasses.replace(decoded, items=items[:2])
    assert not acksig.verify(key.public_key(), moved)
    have = acksig.sign(key, wire.Have("kiosk-01", "r-1", "a" * 32, ((SHA, 10, 4),)))
    assert wire.decode_ack_message(wire.encode_have(have)) == have
    # A have is not an ack: the same signature under another label does not verify.
    assert not acksig.verify(key.public_key(), dataclasses.replace(
        wire.BatchAck("kiosk-01", 12.5, items[:1]), signature=have.signature))
    query = wire.ResumeQuery("r-1", "b" * 32, ((SHA, 10),))
    assert wire.decode_device_message(wire.encode_resume(query)) == query
    body = '{"a":1}'
    sha = hashlib.sha256(body.encode()).hexdigest()
    chunk = wire.Chunk("r-1", SHA, 0, 1, 3, b"abc")
    pack = wire.decode_device_message(wire.encode_record_pack(
        [wire.RecordMessage("r-1", sha, body)], [chunk]))
    assert pack == wire.RecordPack((wire.RecordMessage("r-1", sha, body, batch=True),),
                                   (chunk,))
    for junk in (
        b'{"v":1,"type":"acks","device_id":"kiosk-01","received_at":1,"items":[],"sig":""}',
        b'{"v":1,"type":"acks","device_id":"kiosk-01","received_at":1,"items":["r",'
        + f'"{SHA}"'.encode() + b',"stored","x"],"sig":""}',
        b'{"v":1,"type":"have","device_id":"kiosk-01","record_id":"r","nonce":"short",'
        + f'"files":["{SHA}",2,1],"sig":""'.encode() + b"}",
        b'{"v":1,"type":"have","device_id":"kiosk-01","record_id":"r","nonce":"'
        + b"c" * 32 + f'","files":["{SHA}",2,3],"sig":""'.encode() + b"}",
        b'{"v":1,"type":"records","items":["r","' + SHA.encode() + b'","{}"],"files":["r","'
        + SHA.encode() + b'",5,"YWJj"]}',
    ):
        with pytest.raises(WireError):
            wire.decode(junk)
    with pytest.raises(WireError):
        wire.decode_device_message(wire.encode_have(have))
    with pytest.raises(WireError):
        wire.decode_ack_message(wire.encode_resume(query))


@pytest.mark.parametrize(("payload", "refused"), [
    # Brackets inside strings, behind escaped quotes and backslashes, do not count.
    (b'{"a":"\\"[[[[[[","b":"\\\\\\"{{{{{{"}', False),
    (b'["' + b"[" * 50 + b'\\\\",1]', False),
    # A string that ends in an escaped backslash: what follows it is outside.
    (b'{"a":"x\\\\","b":' + b"[" * 20 + b"]" * 20 + b"}", True),
    (b'{"a":"x\\\\\\\\","b":' + b"[" * 20 + b"]" * 20 + b"}", True),
    # An escaped quote outside a string is not JSON; brackets after it still count.
    (b'{"a":1}\\"' + b"[" * 20, True),
    # An integer too long hidden after an escaped backslash still counts.
    (b'{"a":"\\\\","b":' + b"9" * 30 + b"}", True),
])
def test_the_depth_scan_reads_escapes_as_a_json_reader_does(payload, refused):
    """Escapes are removed at C speed before the depth and number scan (a pack of escaped
    bodies went through a regex, 1 ms per 64 KB); what is inside a string stays there."""
    if refused:
        with pytest.raises(WireError):
            wire.bounded_loads(payload, max_bytes=1 << 20, max_depth=4)
    else:
        wire.bounded_loads(payload, max_bytes=1 << 20, max_depth=4)


def test_a_devices_own_body_is_read_by_jsons_parser_with_the_same_checks():
    """The publisher reads the bodies it signed itself without the bounded decoder (they
    come out of its own sealed database, checked against their sha256); the files it
    finds, and the refusal of a bad hash or a body too large, are the same."""
    body = ('{"papers":[{"file":{"sha256":"' + "1" * 64 + '","size":5}},{"file":null},'
            '{"file":{"sha256":"' + "2" * 64 + '","size":7}}]}')
    assert wire.record_files(body, own=True) == wire.record_files(body)
    with pytest.raises(WireError):
        wire.record_files('{"papers":[{"file":{"sha256":"bad","size":1}}]}', own=True)
    with pytest.raises(WireError):
        wire.record_files('[[{"file":{}}]] x', own=True)
    with pytest.raises(WireError):
        wire.record_files('{"papers":[]}' + " " * (wire.MAX_BODY_BYTES * 4), own=True)


def test_a_devices_own_body_with_only_null_files_is_not_parsed_and_says_the_same():
    """The publisher's shortcut for metadata records (every "file" null: nothing to
    parse) gives what the parser gives, for every spelling json and a person could
    write; where it cannot be sure (a "file" key with a value, a "file" inside a text,
    other spacing, a key spelled with a \\u escape) the parser runs, so a file is never
    missed."""
    sha = "3" * 64
    bodies = [
        json.dumps({"papers": [{"file": None, "title": "Tờ khai"}] * 3}, ensure_ascii=False,
                   sort_keys=True, separators=(",", ":")),
        json.dumps({"papers": [{"file": None}, {"file": {"sha256": sha, "size": 9}}]},
                   separators=(",", ":")),
        json.dumps({"papers": [{"file": None}, {"file": {"sha256": sha, "size": 9}}]}),
        json.dumps({"papers": [{"file": {"sha256": sha, "size": 0}}],
                    "note": 'a "file":null inside a text'}, separators=(",", ":")),
        json.dumps({"papers": [{"file": None, 'x"file': {"sha256": sha}}]},
                   separators=(",", ":")),
        json.dumps({"papers": [{"file": None}], "audit": [{"file": None}]},
                   separators=(",", ":")),
        '{"papers":[{"file" :{"sha256":"' + sha + '","size":4}},{"file":null}]}',
        '{"papers":[{"file":null},{"fil\\u0065":{"sha256":"' + sha + '","size":4}}]}',
        '{"papers":[]}',
    ]
    for body in bodies:
        assert wire.record_files(body, own=True) == wire.record_files(body), body
    assert wire.record_files(bodies[1], own=True) == [(sha, 9)]
    assert wire.record_files(bodies[7], own=True) == [(sha, 4)]


@pytest.mark.parametrize(("payload", "refused"), [
    (b"[" * 4 + b"]" * 4, False),
    (b"[" * 5 + b"]" * 5, True),
    (b'[{"a":[{"b":[1]}]}]', True),  # alternating kinds count level by level
    (b'[{"a":[{"b":1}]}]', False),
    (b'{"a":[[[1],[2]],[[3]]],"b":{"c":{"d":[]}}}', False),
    (b"[[]" * 4 + b"]" * 4, True),  # stairs: a pair beside each level
    (b"[" + b"[[[]]]," * 1000 + b"[]]", False),  # wide, never deeper than 4
])
def test_the_depth_scan_counts_levels_at_c_speed(payload, refused):
    if refused:
        with pytest.raises(WireError, match="nested deeper"):
            wire.bounded_loads(payload, max_bytes=1 << 20, max_depth=4)
    else:
        wire.bounded_loads(payload, max_bytes=1 << 20, max_depth=4)


def test_a_megabyte_of_brackets_is_judged_in_milliseconds():
    """A Python loop over every bracket took tens of milliseconds per such message."""
    for payload in (b"[" + b"[]" * 499_000 + b"]", b"[" * 500_000 + b"]" * 500_000,
                    b"[" + b"[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]," * 30_000 + b"[]]"):
        start = time.perf_counter()
        with contextlib.suppress(WireError):
            wire._check_depth(payload, wire.MAX_BODY_DEPTH)  # noqa: SLF001
        assert time.perf_counter() - start < 0.5


def test_a_binary_pack_carries_bodies_byte_exact_and_its_measure_covers_it():
    """Bodies travel as their UTF-8 bytes (no escaping); what the device measures with
    len(PackItem) before packing covers what each record adds to the message, so a pack
    cut to chunk_bytes by those measures never exceeds it."""
    bodies = ['{"ten":"Nguyễn Văn An","ghi_chu":"dòng 1\\ndòng \\"2\\""}', "{}",
              '{"a":"' + "ạ" * 3000 + '"}']
    records = [wire.RecordMessage(dossiers.new_record_id(),
                                  hashlib.sha256(b.encode()).hexdigest(), b) for b in bodies]
    files = [wire.Chunk(records[0].record_id, SHA, 0, 1, 5, b"\x00\xffab\n")]
    payload = wire.encode_record_pack(records, files)
    assert payload.startswith(wire.BINARY_PACK_MAGIC)
    decoded = wire.decode_device_message(payload)
    assert decoded == wire.RecordPack(
        tuple(dataclasses.replace(r, batch=True) for r in records), tuple(files))
    items = [wire.pack_item(r) for r in records]
    file_bytes = len(',"files":[]') + len(files[0].record_id) + 84 + files[0].size
    assert len(payload) <= (len(wire.join_record_pack([])) + sum(len(i) for i in items)
                            + file_bytes)
    # One byte more or less anywhere in the lengths is refused, never mis-cut.
    with pytest.raises(WireError):
        wire.decode(payload + b"x")
    with pytest.raises(WireError):
        wire.decode(payload[:-1])


def test_an_id_or_hash_with_a_trailing_newline_is_refused():
    """A regex's $ also matches before a final newline: "kiosk-01\\n" would have passed
    as a device id (and as a topic segment), "r-1\\n" as a record id."""
    assert not wire.valid_device_id("kiosk-01\n")
    assert wire.device_from_topic("bhxh", "bhxh/devices/kiosk-01\n/records") is None
    body = '{"record_id":"r-1\\n","device_id":"kiosk-01","papers":[]}'
    with pytest.raises(WireError):
        wire.parse_body(body)
    with pytest.raises(WireError):
        wire.parse_body('{"record_id":"r-1","device_id":"kiosk-01\\n","papers":[]}')
    ack = {"v": 1, "type": "acks", "device_id": "kiosk-01", "received_at": 1,
           "items": ["r-1", SHA + "\n", "stored"], "sig": ""}
    with pytest.raises(WireError):
        wire.decode(json.dumps(ack).encode())


@pytest.mark.parametrize("chunk_bytes", [1024, 1025, 1500, 4096, 120_000])
@pytest.mark.parametrize("binary", [False, True])
def test_every_cut_a_device_makes_passes_the_receivers_chunk_count_checks(chunk_bytes, binary):
    """The receiver refuses chunk counts no device's cut could give, and chunks before
    the last shorter than such a cut (transfers that can never complete, hostile.py);
    every file a device cuts, at the smallest chunk size configuration allows too, is
    still read back whole, in both cuts."""
    encode = wire.encode_binary_chunk if binary else wire.encode_chunk
    step = wire.chunk_data_bytes(chunk_bytes, binary=binary)
    for size in (0, 1, step - 1, step, step + 1, 3 * step, 3 * step + 7, 100_000):
        data = os.urandom(size)
        sha = hashlib.sha256(data).hexdigest()
        chunks = list(wire.iter_chunks("r-1", sha, data, chunk_bytes, binary=binary))
        assert len(chunks) <= wire.max_chunk_count(size)
        read = [wire.decode_device_message(encode(c)) for c in chunks]
        assert b"".join(c.data for c in read) == data
        assert {c.count for c in read} == {len(chunks)}


def test_a_record_whose_body_came_in_chunks_round_trips_and_says_only_its_size() -> None:
    msg = wire.RecordMessage("r-1", "ab" * 32, "", claim=True, batch=True, body_bytes=190_000)
    payload = wire.encode_record(msg)
    assert b"body_json" not in payload and b'"body_bytes":190000' in payload.replace(b" ", b"")
    assert wire.decode_device_message(payload) == msg
    # A records pack never carries one: its bodies are inline.
    inline = wire.RecordMessage("r-2", "cd" * 32, '{"a":1}', batch=True)
    assert wire.decode_device_message(wire.encode_record(inline)) == inline
