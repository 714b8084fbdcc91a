"""Issue 12, item 1, through a real broker: mutants of traffic captured off mosquitto
from a real `appliance sync` and a real `appliance central` (each its own process),
published back at them while genuine records flow before, during and after.

Why: tests/sync/test_fuzz_issue12_wire.py and tests/central/test_fuzz_issue12_receiver.py
fuzz the decoders and the receiver's message path in-process. This is the same promise
end to end, with the messages a real publisher wrote (binary packs, binary chunks,
signed batch acks) as the seeds: every mutant the decoders refuse is exactly one dead
letter at the side it was sent to, PUBACKed (never redelivered); a mutated ack never
marks anything delivered; both processes keep running; every genuine record arrives
exactly once, byte-identical, and none is delivered that the receiver lacks.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.store import db
from appliance.sync import acksig, wire
from appliance.sync.errors import WireError
from appliance.sync.publisher import PACKS_STATE_KEY
from appliance.system import config as config_mod
from appliance.system.process import stop_process
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    CENTRAL,
    SYNC,
    Attacker,
    ack_keys,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_counters,
    device_dead_letters,
    device_state,
    enqueue,
    make_config,
    probe,
    service_process,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(90)


def _dead_at_central(config: config_mod.Config) -> int:
    return central_counters(config).get("dead_letters", 0)


def _dead_at_device(config: config_mod.Config) -> int:
    return device_dead_letters(config).get("total", 0)


def _split(payload: bytes) -> tuple[bytes, int, bytes, bytes]:
    """(magic, width of the length field, header, the bytes after it)."""
    width = 2 if payload.startswith(wire.BINARY_CHUNK_MAGIC) else 4
    length = int.from_bytes(payload[4:4 + width], "big")
    return payload[:4], width, payload[4 + width:4 + width + length], \
        payload[4 + width + length:]


def _join(magic: bytes, width: int, head: bytes, tail: bytes, length: int | None = None
          ) -> bytes:
    size = len(head) if length is None else length
    return magic + min(size, 256 ** width - 1).to_bytes(width, "big") + head + tail


def _with_header(payload: bytes, change: Callable[[dict], None]) -> bytes:
    magic, width, head, tail = _split(payload)
    header = json.loads(head)
    change(header)
    return _join(magic, width, json.dumps(header, separators=(",", ":")).encode(), tail)


def _set_item(index: int, value: object) -> Callable[[dict], None]:
    def change(header: dict) -> None:
        header["items"][index] = value
    return change


def records_mutants(pack: bytes, chunk: bytes, record: bytes) -> list[bytes]:
    """The most interesting mutants of a captured binary pack (a record and its file), a
    binary chunk and a record message: the header length at every edge, item lengths
    past the end, negative, huge, of another type, overlapping, duplicated; files
    swapped; the header nested, non-UTF-8, of another type; fields at their edges."""
    magic, width, head, tail = _split(pack)
    out = [_join(magic, width, head, tail, n) for n in
           (0, 1, len(head) - 1, len(head) + 1, 2**31, 2**32 - 1)]
    header = json.loads(head)
    size0 = header["items"][2]
    out += [_with_header(pack, _set_item(2, v))
            for v in (size0 + 1, -1, 2**63, 10**20 - 1, True, float(size0), str(size0))]

    def overlap(h: dict) -> None:  # the first body runs into the next bytes (a file's)
        h["items"][2] += 1
        if "files" in h:
            h["files"][2] -= 1
        else:
            h["items"][5] -= 1

    def gap(h: dict) -> None:  # a byte between the first body and what follows is lost
        h["items"][2] -= 1

    def twice(h: dict) -> None:  # the first item named twice, its bytes once
        h["items"] = h["items"][:3] + h["items"]

    def nested(h: dict) -> None:
        h["items"] = [h["items"]]

    def files_swapped_with_items(h: dict) -> None:
        h["items"], h["files"] = h.get("files", h["items"]), h["items"]

    out += [_with_header(pack, f) for f in (overlap, gap, twice, nested,
                                            files_swapped_with_items)]
    out += [_join(magic, width, head, tail[:-1]), _join(magic, width, head, tail + b"\0"),
            _join(magic, width, head[:-1] + b'\xff}', tail),
            _join(magic, width, b'{"v":1,"type":"records","h":' + head + b"}", tail),
            _join(magic, width, head.replace(b'"records"', b'"chunk"'), tail)]
    cmagic, cwidth, chead, ctail = _split(chunk)
    out += [_join(cmagic, cwidth, chead, ctail, n) for n in (0, len(chead) + 1, 65535)]
    cheader = json.loads(chead)
    for field, value in (("index", cheader["count"]), ("count", 2**64), ("size", -1),
                         ("index", -1), ("sha256", cheader["sha256"].upper())):
        changed = dict(cheader, **{field: value})
        out.append(_join(cmagic, cwidth, json.dumps(changed).encode(), ctail))
    out.append(_join(cmagic, cwidth, chead, ctail + ctail))  # more data than its file
    obj = json.loads(record)
    out += [record[:len(record) // 2], record + b"x", b"[" * 100_000 + b"]" * 100_000,
            json.dumps(dict(obj, v=True)).encode(),
            json.dumps(dict(obj, claim="yes")).encode(),
            json.dumps(dict(obj, body_bytes=2**64)).encode(),
            record.replace(b'"record_id":', b'"record_id":"x","record_id":', 1),
            record.replace(b'"v":1', b'"v":' + b"1" * 4301, 1)]
    return out


def ack_mutants(batch: bytes, other: list[tuple[str, str]]) -> list[bytes]:
    """Mutants of a captured signed "acks" message: fields a device acts on changed
    (each breaks the signature), records of this device still pending named instead,
    the signature cut or garbled, and shapes the decoder refuses."""
    obj = json.loads(batch)
    items = obj["items"]
    out = []
    for record_id, sha in other:  # forged acks for records still on their way
        out.append(json.dumps(dict(obj, items=[record_id, sha, "stored"])).encode())
    out += [json.dumps(dict(obj, items=[items[0], items[1][::-1], items[2]])).encode(),
            json.dumps(dict(obj, items=items[:2] + ["contested"] + items[3:])).encode(),
            json.dumps(dict(obj, items=items + items[:3])).encode(),
            json.dumps(dict(obj, received_at=obj["received_at"] + 1)).encode(),
            json.dumps(dict(obj, device_id="kiosk-02")).encode(),
            json.dumps(dict(obj, sig=obj["sig"][:-4])).encode(),
            json.dumps(dict(obj, sig="A" * 86 + "==")).encode(),
            json.dumps(dict(obj, sig=obj["sig"] + "AAAA")).encode(),
            json.dumps(dict(obj, type="ack")).encode(),
            json.dumps(dict(obj, items=[items])).encode(),
            json.dumps(dict(obj, received_at=float("nan"))).encode(),
            batch[:-1], batch + b"\xff", b"\x00rp1" + batch,
            batch.replace(b'"v":1', b'"v":1,"v":1', 1)]
    return out


def _decodes(payload: bytes) -> bool:
    try:
        wire.decode_device_message(payload)
    except WireError:
        return False
    return True


def _refused_file(payload: bytes, held: set[str]) -> bool:
    """Whether the receiver refuses a file of this readable pack (store._put_whole_file:
    bytes that are not their sha256's, for a file it does not hold)."""
    msg = wire.decode_device_message(payload)
    return isinstance(msg, wire.RecordPack) and any(
        hashlib.sha256(f.data).hexdigest() != f.file_sha256 and f.file_sha256 not in held
        for f in msg.files)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, timeout=15, group=False)


def test_mutants_of_captured_traffic_are_set_aside_and_genuine_records_pass(
        tmp_path: Path, broker: MosquittoProcess) -> None:
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=2.0)
    config_file = write_config_file(tmp_path, config)
    records_topic = wire.records_topic("bhxh", config.device.id)
    acks_topic = wire.acks_topic("bhxh", config.device.id)
    public = acksig.load_public_key(ack_keys(tmp_path / "keys")[1])
    attacker = Attacker(broker.port)
    attacker.sniff("bhxh/devices/#")
    procs: list[subprocess.Popen[bytes]] = []
    sync_log, central_log = tmp_path / "sync.log", tmp_path / "central.log"
    try:
        central = service_process(CENTRAL, config_file, central_log)
        sync = service_process(SYNC, config_file, sync_log)
        procs += [central, sync]
        dead_central = probe(lambda: attacker.publish("bhxh/devices/probe-1/records", b"["),
                             lambda: _dead_at_central(config), "central")
        wait_for(lambda: device_state(config, "sync.state") == "connected", 20, "sync up")
        # Genuine traffic to capture: small records, then (the device now knows the
        # receiver reads them) small records packed and a scan in binary chunks.
        first = enqueue(config, 2, pdf_sizes=(600,))
        wait_for(lambda: all_delivered(config, first), 30, "the first records")
        second = enqueue(config, 3, pdf_sizes=(500,)) + enqueue(config, 1, pdf_sizes=(9_000,))
        wait_for(lambda: all_delivered(config, second), 30, "the packed records")
        seen = list(attacker.seen)
        packs = [p for t, p in seen if t == records_topic and p.startswith(wire.BINARY_PACK_MAGIC)
                 and "files" in json.loads(_split(p)[2])]
        chunks = [p for t, p in seen if t == records_topic
                  and p.startswith(wire.BINARY_CHUNK_MAGIC)]
        singles = [p for t, p in seen if t == records_topic and p.startswith(b'{"v":1,'
                                                                            b'"type":"record"')]
        batches = [p for t, p in seen if t == acks_topic and b'"type":"acks"' in p]
        assert packs and chunks and singles and batches, [(t, p[:40]) for t, p in seen]

        # Genuine records on their way while the mutants arrive; the forged acks name them.
        third = enqueue(config, 3, pdf_sizes=(700,)) + enqueue(config, 1, pdf_sizes=(8_000,))
        junk = records_mutants(packs[0], chunks[0], singles[0])
        forged = ack_mutants(batches[0], [(r.record_id, r.sha256) for r in third])
        # Those the decoder refuses are a dead letter each. The few it reads (a body
        # that runs one byte into its file's) name a record id and sha256 the receiver
        # holds: duplicates, acknowledged for the bytes it holds, not dead letters.
        # A pack it reads whose file is neither held nor its sha256's bytes is one more
        # (ChunkRefused: the items and files lines swapped make the record's sha256 a file).
        readable = [p for p in junk if _decodes(p)]
        assert len(junk) - len(readable) >= 35 and len(readable) <= 3, len(readable)
        held = {sha for r in first + second for sha in r.file_shas}
        expected_dead = len(junk) - len(readable) + sum(
            1 for p in readable if _refused_file(p, held))
        for payload in forged:  # refused, or read and not believed
            try:
                msg = wire.decode_ack_message(payload)
            except WireError:
                continue
            assert not (msg.device_id == config.device.id and acksig.verify(public, msg))
        dead_central = _dead_at_central(config)
        dead_device = _dead_at_device(config)
        for a, b in zip(junk, forged + [b""] * len(junk), strict=False):
            attacker.publish(records_topic, a)
            if b:
                attacker.publish(acks_topic, b)
        # Replays of genuine messages: duplicates, acknowledged again, never dead letters.
        attacker.publish(records_topic, packs[0])
        attacker.publish(records_topic, singles[0])
        wait_for(lambda: _dead_at_central(config) >= dead_central + expected_dead, 30,
                 "every records mutant set aside")
        wait_for(lambda: _dead_at_device(config) >= dead_device + len(forged), 30,
                 "every ack mutant set aside")
        wait_for(lambda: all_delivered(config, third), 40, "the records sent meanwhile")
        last = enqueue(config, 2, pdf_sizes=(600,))
        wait_for(lambda: all_delivered(config, last), 30, "the records sent after")
        time.sleep(1.0)  # anything redelivered would come back now
        assert _dead_at_central(config) == dead_central + expected_dead
        assert _dead_at_device(config) == dead_device + len(forged)
        assert central.poll() is None, central_log.read_text()
        assert sync.poll() is None, sync_log.read_text()
        assert_exactly_once(config, first + second + third + last)
        assert_no_false_delivery(config)
        counts = device_dead_letters(config)
        assert counts.get("forged", 0) + counts.get("other_device", 0) >= len(third) + 1
    finally:
        for proc in procs:
            _stop(proc)
        attacker.close()
    assert "Traceback" not in sync_log.read_text()
    assert "Traceback" not in central_log.read_text()


def test_a_record_of_257_small_papers_is_delivered_with_chunk_bytes_raised(
        tmp_path: Path, broker: MosquittoProcess) -> None:
    """Found by this fuzzing: publisher.send_pack bounded a pack by mqtt.chunk_bytes and
    MAX_PACKED_RECORDS records, not by files, while the receiver reads at most
    MAX_PACKED_FILES (256) in a pack. With mqtt.chunk_bytes raised (a broker without
    AWS's 128 KB cap; the configuration allows up to wire.MAX_MESSAGE_BYTES), a record of
    257 papers with a 300-byte PDF each went as a pack the receiver set aside, at every
    re-send: never delivered. Every message the device sends must now be one the
    receiver reads, and the record must arrive."""
    config = make_config(tmp_path, broker.port, chunk_bytes=1_000_000)
    config_file = write_config_file(tmp_path, config)
    recs = enqueue(config, 1, pdf_sizes=(300,) * 257) + enqueue(config, 3, pdf_sizes=(300,))
    conn = db.connect(config.paths.database, key_file=config.paths.key_file)
    try:  # the device has heard from a receiver that reads packs (as after a first ack)
        with db.transaction(conn):
            db.set_state(conn, PACKS_STATE_KEY, "1")
    finally:
        conn.close()
    topic = wire.records_topic("bhxh", config.device.id)
    attacker = Attacker(broker.port)
    attacker.sniff(topic)
    procs = [service_process(CENTRAL, config_file, tmp_path / "central.log")]
    try:
        probe(lambda: attacker.publish("bhxh/devices/probe-1/records", b"["),
              lambda: _dead_at_central(config), "the receiver")
        dead = _dead_at_central(config)
        procs.append(service_process(SYNC, config_file, tmp_path / "sync.log"))
        wait_for(lambda: all_delivered(config, recs), 60, "every record")
        assert _dead_at_central(config) == dead
        assert_exactly_once(config, recs)
        assert_no_false_delivery(config)
    finally:
        for proc in procs:
            _stop(proc)
        attacker.close()
    sent = [payload for t, payload in attacker.seen if t == topic]
    for payload in sent:
        msg = wire.decode_device_message(payload)
        if isinstance(msg, wire.RecordPack):
            assert len(msg.files) <= wire.MAX_PACKED_FILES
    assert any(isinstance(wire.decode_device_message(p), wire.RecordPack) for p in sent)
