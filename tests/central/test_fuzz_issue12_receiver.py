"""Issue 12, item 1, fuzzed at the receiver: mutants of a device's genuine messages go
through the real `appliance central` message path (receiver._Receiver.process, the
store, its SQLite database sealed with its key, one group commit per message), and
after each one the promises are checked on the database itself.

Why in-process as well as through a broker (tests/sync/test_fuzz_issue12_broker.py):
hypothesis can push a few hundred mutants through the receiver's own code here in
seconds and check after every single one what a broker test can only check at the end:
- process() never raises (a sqlite3.OperationalError or CentralStoreError caused by a
  message would be taken for a failing disk: no PUBACK, a reconnect, the broker
  redelivering it, for ever);
- a payload decode_device_message refuses is exactly one more dead letter, and no
  dead letter is an "internal error" (a bug reached by a message);
- every ack the batch would publish names bytes the database now holds;
- every record held is byte-exact (its body's sha256 is its key's, it names its device
  and id) and every file a served record names is held and matches its sha256;
- the chunk accounting stays exact (transfers_open, chunk_bytes_held, records_stored
  against the rows themselves), so no message can make the budgets drift;
and afterwards the genuine records all arrive, byte-identical.

It also pins where the device and the receiver disagree on wire.py's limits.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.central import store as central_store
from appliance.central.db import CentralConnection, open_configured
from appliance.central.receiver import _Receiver
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.sync import wire
from appliance.sync.errors import WireError
from appliance.sync.publisher import resume_groups
from appliance.system import config as config_mod
from tests.helpers.device_records import TestRecord, add_record
from tests.helpers.sync_rig import make_config
from tests.sync.test_fuzz_issue12_wire import FUZZ, _mutants

pytestmark = pytest.mark.timeout(90)

DEVICE = "kiosk-01"
NONCE = "00112233445566778899aabbccddeeff"
CHUNK_BYTES = 4096


@dataclass(frozen=True)
class Sent:
    """A genuine record and every message a device sends for it, in order."""

    record: TestRecord
    messages: list[bytes]
    files: dict[str, bytes]
    store: FileStore


def _messages(rec: TestRecord, store: FileStore, *, packed: bool, binary: bool) -> Sent:
    """What `appliance sync` sends for `rec`: its files (in one pack with the record when
    each fits one chunk, else chunk by chunk), then the record."""
    files = {sha: store.read(sha, ".pdf") for sha in rec.file_shas}
    msg = wire.RecordMessage(rec.record_id, rec.sha256, rec.body_json, batch=True)
    if packed:
        chunks = [wire.Chunk(rec.record_id, sha, 0, 1, len(data), data)
                  for sha, data in files.items()]
        return Sent(rec, [wire.join_record_pack([wire.pack_item(msg)], chunks)], files, store)
    encode = wire.encode_binary_chunk if binary else wire.encode_chunk
    out = [encode(c) for sha, data in files.items()
           for c in wire.iter_chunks(rec.record_id, sha, data, CHUNK_BYTES, binary=binary)]
    return Sent(rec, [*out, wire.encode_record(msg)], files, store)


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Sent]]:
    """Records signed through the product: the first two are fuzzed, the last two are
    sent only after the fuzzing, genuine, for the first time."""
    root = tmp_path_factory.mktemp("fuzz-receiver-device")
    config = config_mod.with_overrides(config_mod.Config(), paths={"data_dir": str(root)})
    conn = connect(config.paths.database)
    try:
        recs = [add_record(conn, config.paths.files, device_id=DEVICE, pdf_sizes=sizes)
                for sizes in ((700,), (600, 9000), (800,), (9500,))]
    finally:
        conn.close()
    store = FileStore(config.paths.files)
    yield [_messages(recs[0], store, packed=True, binary=True),
           _messages(recs[1], store, packed=False, binary=True),
           _messages(recs[2], store, packed=True, binary=True),
           _messages(recs[3], store, packed=False, binary=False)]


def _receiver(tmp_path: Path) -> tuple[_Receiver, CentralConnection]:
    config = make_config(tmp_path, 1)
    conn = open_configured(config.central)
    return _Receiver(config, conn, threading.Event(), lambda _m: None, "fuzz-central"), conn


def _dead_letters(conn: CentralConnection) -> int:
    return conn.counter("dead_letters")


def _published_acks(rx: _Receiver) -> list[tuple[str, str, str]]:
    """(record id, sha256, status) of every ack the open batch would publish."""
    batch = rx.batch
    assert batch is not None
    out = []
    for _topic, payload in batch.acks:
        ack = wire.decode_ack(payload)
        out.append((ack.record_id, ack.sha256, ack.status.value))
    for device_id, items in batch.batched.items():
        assert device_id == DEVICE
        out += [(i.record_id, i.sha256, i.status.value) for i in items]
    return out


def check_store(conn: CentralConnection) -> None:
    """What the central database must be after any message: see the module docstring."""
    rows = conn.execute("SELECT device_id, record_id, sha256, status FROM records").fetchall()
    for r in rows:
        body = central_store._open_text(  # noqa: SLF001 - the row as stored, sealed
            conn, conn.execute("SELECT body_json FROM records WHERE device_id=? AND "
                               "record_id=? AND sha256=?",
                               (r["device_id"], r["record_id"], r["sha256"])).fetchone()[0],
            central_store._body_aad(r["device_id"], r["record_id"], r["sha256"]))  # noqa: SLF001
        assert hashlib.sha256(body.encode("utf-8")).hexdigest() == r["sha256"]
        parsed = wire.parse_body(body)
        assert (parsed.device_id, parsed.record_id) == (r["device_id"], r["record_id"])
        assert r["status"] in ("served", "held")
        if r["status"] == "served":
            for sha, size in parsed.files:
                data = central_store.get_file(conn, sha)
                assert data is not None, f"record {r['record_id']} served without {sha}"
                assert hashlib.sha256(data).hexdigest() == sha and len(data) == size
    served = [(r["device_id"], r["record_id"]) for r in rows if r["status"] == "served"]
    assert len(served) == len(set(served))
    counters = conn.all_counters()
    transfers = conn.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM transfers"
                             ).fetchone()
    pending = conn.execute("SELECT COALESCE(SUM(charge), 0) FROM pending_files").fetchone()[0]
    assert counters.get("transfers_open", 0) == transfers[0], (counters, transfers[0])
    assert counters.get("chunk_bytes_held", 0) == transfers[1] + pending, (
        counters, transfers[1], pending)
    assert counters.get("records_stored", 0) == len(rows)


def _send(rx: _Receiver, payload: bytes) -> list[tuple[str, str, str]]:
    """One message through the receiver and its commit; the acks that batch published."""
    rx.process(wire.records_topic(rx.prefix, DEVICE), payload, False, 1, 1, time.monotonic())
    acks = _published_acks(rx)
    rx.flush()
    return acks


def _deliver(rx: _Receiver, conn: CentralConnection, sent: Sent, tries: int) -> None:
    """Send a genuine record's messages as the device does, again after a refusal (a
    device re-sends after its ack timeout), until its ack names its bytes."""
    rec = sent.record
    for _try in range(tries):
        acks = [a for m in sent.messages for a in _send(rx, m)]
        if (rec.record_id, rec.sha256, "stored") in acks:
            break
    else:
        raise AssertionError(f"record {rec.record_id} not acknowledged in {tries} tries")
    served = [r for r in central_store.list_records(conn) if r["record_id"] == rec.record_id]
    assert len(served) == 1 and served[0]["sha256"] == rec.sha256
    assert served[0]["body_json"] == rec.body_json and served[0]["files"] == rec.file_shas
    for sha, data in sent.files.items():
        assert central_store.get_file(conn, sha) == data


def test_mutants_of_genuine_messages_never_break_the_receiver_or_its_store(
        tmp_path: Path, device: list[Sent]) -> None:
    rx, conn = _receiver(tmp_path)
    seeds = [m for sent in device[:2] for m in sent.messages] + [
        wire.encode_resume(wire.ResumeQuery(device[1].record.record_id, NONCE, tuple(
            (sha, n) for sha in device[1].record.file_shas for n in (1, 3)))),
        wire.encode_record(wire.RecordMessage(
            device[0].record.record_id, device[0].record.sha256, "", batch=True,
            body_bytes=len(device[0].record.body_json.encode("utf-8"))))]
    seen = {"dead": 0, "decoded": 0, "acked": 0}
    try:
        @settings(FUZZ, max_examples=600)
        @given(data=st.data())
        def fuzz(data: st.DataObject) -> None:
            payload = data.draw(_mutants(seeds))
            before = _dead_letters(conn)
            acks = _send(rx, payload)
            after = _dead_letters(conn)
            try:
                wire.decode_device_message(payload)
            except WireError:
                assert after == before + 1, "a payload that does not decode was not set aside"
            else:
                seen["decoded"] += 1
                assert after in (before, before + 1)
            if after > before:
                seen["dead"] += 1
                reason = conn.execute("SELECT reason FROM dead_letters ORDER BY id DESC "
                                      "LIMIT 1").fetchone()[0]
                assert not reason.startswith("internal error"), reason
            for record_id, sha, _status in acks:
                seen["acked"] += 1
                assert conn.execute("SELECT 1 FROM records WHERE device_id=? AND record_id=? "
                                    "AND sha256=?", (DEVICE, record_id, sha)).fetchone(), (
                    f"ack for {record_id} {sha} that the receiver does not hold")
            check_store(conn)

        fuzz()
        assert seen["decoded"] >= 50 and seen["dead"] >= 300, seen
        # The fuzzed records (a stray chunk may cost one retry, as the device's re-send
        # after its ack timeout), then two never sent before: each arrives byte-exact.
        for sent in device[2:]:
            _deliver(rx, conn, sent, tries=1)
        # The fuzzed ones may be blocked by a stray chunk until its transfer expires
        # (test_one_oversized_stray_chunk_blocks_a_genuine_scan_until_expiry below):
        # once it has, they too arrive at the first try.
        central_store.purge_expired(conn, rx.limits.chunk_expiry_seconds,
                                    now=time.time() + rx.limits.chunk_expiry_seconds + 1)
        for sent in device[:2]:
            _deliver(rx, conn, sent, tries=1)
        check_store(conn)
        served = {r["record_id"]: r for r in central_store.list_records(conn)}
        for sent in device:
            assert served[sent.record.record_id]["sha256"] == sent.record.sha256
    finally:
        rx.abandon()
        conn.close()


# --- the device and the receiver disagree on wire.py's limits -------------------------


def _scans_body(record_id: str, papers: int) -> tuple[str, list[tuple[str, int]]]:
    """A record body of `papers` scans of 1 MB each (what records.signing writes, less
    the audit and metadata), within every limit of a body: MAX_PAPERS, MAX_BODY_BYTES."""
    files = [(hashlib.sha256(b"scan %d" % n).hexdigest(), 1_000_000) for n in range(papers)]
    body = json.dumps({"record_id": record_id, "device_id": DEVICE, "dossier_code": "D-1",
                       "papers": [{"ordinal": n + 1, "result_code": f"D-1.{n + 1:03d}",
                                   "file": {"sha256": sha, "size": size}}
                                  for n, (sha, size) in enumerate(files)]})
    assert len(body) <= wire.MAX_BODY_BYTES and papers <= wire.MAX_PAPERS
    wire.parse_body(body)
    return body, files


def _resume_query(record_id: str, files: list[tuple[str, int]]) -> bytes:
    """The query publisher._Publisher.ask sends for a record tried before
    (publisher.resume_groups: its files under both cuts of the default
    mqtt.chunk_bytes, largest first, at most wire.MAX_RESUME_GROUPS groups)."""
    chunk_bytes = config_mod.Config().mqtt.chunk_bytes

    def count(size: int, binary: bool) -> int:
        return max(1, -(-size // wire.chunk_data_bytes(chunk_bytes, binary=binary)))

    return wire.encode_resume(wire.ResumeQuery(record_id, NONCE, resume_groups(files, count)))


def test_the_resume_query_for_a_record_of_1000_scans_is_answered(tmp_path: Path) -> None:
    """Found by this fuzzing: the device asked about every file under both cuts, and the
    query for 501 scans or more (1,002 groups) was a dead letter at the receiver; every
    chunk of every scan was sent again. The device now asks about at most
    MAX_RESUME_GROUPS groups, largest files first (publisher.resume_groups)."""
    _body, files = _scans_body("r-1000", wire.MAX_PAPERS)
    files[-1] = (files[-1][0], 9_000_000)  # the largest is asked about first
    query = wire.decode_device_message(_resume_query("r-1000", files))
    assert isinstance(query, wire.ResumeQuery)
    assert len(query.files) == wire.MAX_RESUME_GROUPS
    assert query.files[0][0] == files[-1][0]
    rx, conn = _receiver(tmp_path)
    try:
        _send(rx, b"[")  # a dead letter first: the counter exists
        before = _dead_letters(conn)
        rx.process(wire.records_topic(rx.prefix, DEVICE), _resume_query("r-1000", files),
                   False, 1, 1, time.monotonic())
        assert rx.batch is not None and len(rx.batch.answers) == 1
        rx.flush()
        assert _dead_letters(conn) == before
    finally:
        rx.abandon()
        conn.close()


def test_the_receivers_answer_to_the_largest_query_is_read_by_the_device(
        tmp_path: Path) -> None:
    """Found by this fuzzing: the receiver's answer to a query of 920 groups (460
    scans under both cuts) was 65,994 bytes, over what the device reads on its ack
    topic (MAX_BATCH_ACK_BYTES), so the resume was lost. A query now has at most
    MAX_RESUME_GROUPS groups, and the answer to the largest one fits."""
    _body, files = _scans_body("r-1000", wire.MAX_PAPERS)
    query = _resume_query("r-1000", files)
    assert isinstance(wire.decode_device_message(query), wire.ResumeQuery)
    rx, conn = _receiver(tmp_path)
    try:
        rx.process(wire.records_topic(rx.prefix, DEVICE), query, False, 1, 1,
                   time.monotonic())
        assert rx.batch is not None
        [(topic, answer)] = rx.batch.answers
        assert topic == wire.acks_topic(rx.prefix, DEVICE)
        rx.flush()
        assert len(answer) <= wire.MAX_BATCH_ACK_BYTES
        have = wire.decode_ack_message(answer)
        assert isinstance(have, wire.Have) and len(have.files) == wire.MAX_RESUME_GROUPS
    finally:
        rx.abandon()
        conn.close()


def test_one_oversized_stray_chunk_costs_the_genuine_scan_nothing(
        tmp_path: Path, device: list[Sent]) -> None:
    """Found by this fuzzing: a chunk was refused when it did not fit beside the bytes
    held, so one stray chunk carrying the whole file at index 0 made every genuine chunk
    a dead letter until the transfer expired (24 h by default). Such a chunk now
    restarts the transfer, the latest sender winning. Minimal payload:
    encode_binary_chunk(Chunk(<record id>, <the scan's sha256>,
    index=0, count=3, size=9500, data=9,500 zero bytes)), sent once before the device
    sends its 9,500-byte scan in 3 binary chunks (mqtt.chunk_bytes 4096); found by
    test_mutants_of_genuine_messages_never_break_the_receiver_or_its_store."""
    sent = _messages(device[3].record, device[3].store, packed=False, binary=True)
    [sha] = sent.record.file_shas
    rx, conn = _receiver(tmp_path)
    try:
        stray = wire.Chunk(sent.record.record_id, sha, 0, 3, 9500, bytes(9500))
        assert isinstance(wire.decode_device_message(wire.encode_binary_chunk(stray)),
                          wire.Chunk)
        assert len(sent.messages) == 4  # 3 chunks, then the record
        _send(rx, wire.encode_binary_chunk(stray))
        _deliver(rx, conn, sent, tries=1)  # the first try gets through
    finally:
        rx.abandon()
        conn.close()
