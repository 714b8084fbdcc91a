"""Red team: hand-made hostile messages against the receiver's fast paths.

Why: binary record packs, the batch insert of new records (store.put_records with
_fresh/_insert_fresh), binary chunks with a resume that asks for both cuts, and
inline batch acks are new ways in. tests/sync/hostile.py already proves the decoder
refuses each malformed shape on its own; these tests send what the decoder lets
through, or what it refuses for reasons not yet exercised live, through a real
mosquitto at a running receiver and `appliance sync`, and then check the promises:
both keep running, every message that cannot be processed is a dead letter (counted
exactly), a record whose content is wrong is a rejection (never stored, never acked),
a squatted id never displaces the genuine record, chunk state expires, and the
genuine records sent afterwards arrive exactly once, byte-identical.

Three bugs it found are fixed, and their tests below now hold: a lone surrogate in a
body's text was an internal error that took its whole pack; files sent whole escaped
the chunk budget and expiry (tests/central/test_pending_files.py); chunk counts no
file could fill were kept outside the byte budget (wire.max_chunk_count).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from appliance.bench.outbox import met_before
from appliance.central import store as central_store
from appliance.sync import wire
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    NO_CHUNK_STATE,
    Attacker,
    Service,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    central_counters,
    central_dead_letters,
    central_read,
    enqueue,
    make_config,
    subscribed_receiver,
    wait_for,
)
from tests.sync.hostile import _binary_pack

pytestmark = pytest.mark.timeout(120)

Start = Callable[[Callable[..., None], config_mod.Config], Service]
SHA = "a" * 64


def sha_of(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def forged_body(record_id: str, device_id: str, code: str = "FORGED") -> str:
    """A well-formed record body, as an attacker who knows the format writes it."""
    return json.dumps({"record_id": record_id, "device_id": device_id, "dossier_code": code,
                       "papers": []})


def item(body: str, record_id: str | None = None, sha: str | None = None) -> wire.PackItem:
    """One record of a binary pack: the header says `record_id` and `sha` (by default
    what the body says and its true hash), the body travels as its UTF-8 bytes."""
    return wire.PackItem(record_id or json.loads(body)["record_id"], sha or sha_of(body),
                         body.encode("utf-8"))


def pack(items: list[wire.PackItem], files: Iterable[wire.Chunk] = ()) -> bytes:
    return wire.join_record_pack(items, list(files))


def packs_on(config: config_mod.Config) -> None:
    """The device knows the receiver reads packs and binary chunks (as after its first
    signed batch ack), so its first records already take the fast paths."""
    met_before(config)


def served_ids(config: config_mod.Config) -> dict[tuple[str, str], str]:
    return {(r["device_id"], r["record_id"]): r["sha256"]
            for r in central_store.list_records(config.central.database)}


def rejection_reasons(config: config_mod.Config) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for r in central_store.list_rejections(config.central.database):
        found.setdefault(r["record_id"], []).append(r["reason"])
    return found


def settle(count: Callable[[], int], expected: int, what: str) -> None:
    """Wait for `expected`, then make sure nothing more comes (exact, not at least)."""
    wait_for(lambda: count() >= expected, 30, what)
    time.sleep(0.5)
    assert count() == expected, f"{what}: {count()} instead of {expected}"


# --- messages that must each become exactly one dead letter -------------------------

def _dead_on_the_device_topic() -> dict[str, bytes]:
    """Shapes not in tests/sync/hostile.py, each refused whole by the receiver."""
    accented = '{"a":"ạ"}'.encode()
    cut = accented.index("ạ".encode()) + 1  # inside the character's two bytes
    right = forged_body("rt-cut-2", "kiosk-01").encode()
    file_data = b"%PDF-not-what-the-header-says"
    lying_file = wire.Chunk("rt-file-1", sha_of(b"other bytes"), 0, 1, len(file_data),
                            file_data)
    one_chunk = os.urandom(300)
    surrogate_header = (b'{"v":1,"type":"records","items":["rt-s-1","' + SHA.encode()
                        + b'",2],"files":["rt\\ud800","' + SHA.encode() + b'",1]}')
    return {
        "binary pack with no items, only a file": _binary_pack([], b"abc",
                                                               files=["rt-f", sha_of(b"abc"), 3]),
        "binary pack whose header length is 0": b"\x00rp1\x00\x00\x00\x00{}",
        "binary pack header one byte over its limit, all there":
            b"\x00rp1" + (wire.MAX_PACK_HEADER_BYTES + 1).to_bytes(4, "big")
            + b" " * (wire.MAX_PACK_HEADER_BYTES + 1),
        "binary pack header that is JSON null": b"\x00rp1\x00\x00\x00\x04null",
        "binary pack whose items are an object": _binary_pack({"rt-1": 2}, b"{}"),  # type: ignore[arg-type]
        "binary pack, lengths that cut a UTF-8 character":
            _binary_pack(["rt-cut-1", sha_of(accented), cut, "rt-cut-2", sha_of(right),
                          len(accented) - cut + len(right)], accented + right),
        "binary pack, a packed file's id a lone surrogate (JSON escape)":
            b"\x00rp1" + len(surrogate_header).to_bytes(4, "big") + surrogate_header
            + b"{}A",
        "binary pack whose file does not match its sha256 (the record with it is lost too)":
            pack([item(forged_body("rt-file-1", "kiosk-01"))], [lying_file]),
        "a later pack version's magic": b"\x00rp2" + pack([item(forged_body("rt-v2",
                                                                            "kiosk-01"))])[4:],
        "base64 chunk with index == count": wire.encode_chunk(
            wire.Chunk("rt-c", SHA, 2, 2, 10, b"12345")),
        "binary chunk with index == count": wire.encode_binary_chunk(
            wire.Chunk("rt-c", SHA, 2, 2, 10, b"12345")),
        "one-chunk binary file shorter than its size": wire.encode_binary_chunk(
            wire.Chunk("rt-c", sha_of(one_chunk), 0, 1, 305, one_chunk)),
        "one-chunk binary file whose bytes are not its sha256": wire.encode_binary_chunk(
            wire.Chunk("rt-c", SHA, 0, 1, 300, one_chunk)),
        "resume query whose nonce is NULs": json.dumps({
            "v": 1, "type": "resume", "record_id": "rt-r", "nonce": "\0" * 32,
            "files": [SHA, 2]}).encode(),
        "resume query whose nonce is lone surrogates": json.dumps({
            "v": 1, "type": "resume", "record_id": "rt-r", "nonce": "\ud800" * 32,
            "files": [SHA, 2]}).encode(),
        "record whose id holds a NUL": json.dumps({
            "v": 1, "type": "record", "record_id": "rt\0", "sha256": SHA,
            "body_json": "{}"}).encode(),
        "record whose id is full-width letters": json.dumps({
            "v": 1, "type": "record", "record_id": "ｒｔ-1", "sha256": SHA,
            "body_json": "{}"}).encode(),
        "record whose id has a combining accent (not NFC)": json.dumps({
            "v": 1, "type": "record", "record_id": "rte\u0301", "sha256": SHA,
            "body_json": "{}"}, ensure_ascii=False).encode(),
    }


def _lookalike_topics() -> list[str]:
    """Topics the receiver's subscription matches whose device segment is not a device
    id: each must be a dead letter with no device, never a record of kiosk-01."""
    return ["bhxh/devices/kiosk-01\u200b/records", "bhxh/devices/KIOSK-01/records",
            "bhxh/devices//records", "bhxh/devices/kiosk-01 /records",
            "bhxh/devices/kiosk-0\u0301/records", "bhxh/devices/" + "k" * 60_000 + "/records"]


def test_hand_made_packs_chunks_and_topics_never_stop_the_receiver_or_slip_a_record_in(
        tmp_path: Path, broker: MosquittoProcess, services: Start) -> None:
    config = make_config(tmp_path, broker.port, chunk_bytes=65536)
    mine = wire.records_topic("bhxh", config.device.id)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    before = central_dead_letters(config)

    dead = _dead_on_the_device_topic()
    for payload in dead.values():
        attacker.publish(mine, payload)
    lookalike = pack([item(forged_body("rt-lookalike", "kiosk-01"))])
    topics = _lookalike_topics()
    for topic in topics:
        attacker.publish(topic, lookalike)

    # Well-formed packs whose records lie: each record is a rejection, never stored.
    a = forged_body("rt-b", "kiosk-01")
    other_device = forged_body("rt-theirs", "kiosk-02")
    left, right = forged_body("rt-l", "kiosk-01"), forged_body("rt-r", "kiosk-01")
    attacker.publish(mine, pack([item(a, record_id="rt-a"), item(other_device)]))
    attacker.publish(mine, _binary_pack(  # lengths shifted by one: both still UTF-8
        ["rt-l", sha_of(left), len(left) - 1, "rt-r", sha_of(right), len(right) + 1],
        (left + right).encode()))
    # The same id twice across packs: the first content is served, the second held.
    first, second = forged_body("rt-twice", "kiosk-01", "A"), forged_body("rt-twice",
                                                                          "kiosk-01", "B")
    attacker.publish(mine, pack([item(first)]))
    attacker.publish(mine, pack([item(second)]))

    settle(lambda: central_dead_letters(config), before + len(dead) + len(topics),
           "every hostile message set aside")
    wait_for(lambda: len(central_store.list_rejections(config.central.database)) >= 4, 10,
             "the lying records rejected")
    reasons = rejection_reasons(config)
    assert set(reasons) == {"rt-a", "rt-theirs", "rt-l", "rt-r"}, reasons
    assert "names another record_id" in reasons["rt-a"][0]
    assert "from device 'kiosk-02', sent on the topic of 'kiosk-01'" in reasons["rt-theirs"][0]
    assert all("does not match its sha256" in reasons[r][0] for r in ("rt-l", "rt-r"))
    served = served_ids(config)
    assert served == {("kiosk-01", "rt-twice"): sha_of(first)}, served
    [held] = central_store.list_held(config.central.database)
    assert (held["record_id"], held["sha256"]) == ("rt-twice", sha_of(second))
    letters = central_store.list_dead_letters(config.central.database)[-(len(dead)
                                                                         + len(topics)):]
    assert sum(1 for d in letters if d["device_id"] is None) == len(topics)
    assert not any("internal error" in d["reason"] for d in letters), [
        d["reason"] for d in letters]
    assert central_store.chunk_state(config.central.database)["transfers"] == 0

    # Genuine records afterwards, through the packs and binary chunks: exactly once.
    recs = enqueue(config, 3, pdf_sizes=(1_500,)) + enqueue(config, 1, pdf_sizes=(150_000,))
    packs_on(config)
    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, recs), 40, "the genuine records")
    assert_exactly_once(config, recs)
    assert_no_false_delivery(config)
    assert receiver.running() and publisher.running()
    attacker.close()


def test_a_squat_through_the_binary_pack_fast_path_never_displaces_the_genuine_record(
        tmp_path: Path, broker: MosquittoProcess, services: Start) -> None:
    """The attacker packs forged content under two pending ids, and the genuine sha256
    of a third over a forged body, before the device says anything; the genuine records
    then come in a binary pack too (so put_records' fast path sees the held ids)."""
    config = make_config(tmp_path, broker.port, chunk_bytes=65536)
    mine = wire.records_topic("bhxh", config.device.id)
    recs = enqueue(config, 4, pdf_sizes=(1_500,))
    packs_on(config)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    attacker.sniff(mine)
    squats = [forged_body(r.record_id, config.device.id) for r in recs[:2]]
    lying = forged_body(recs[2].record_id, config.device.id)
    hostile = pack([item(b) for b in squats] + [item(lying, sha=recs[2].sha256)])
    attacker.publish(mine, hostile)
    wait_for(lambda: len(served_ids(config)) == 2, 10, "the squats")
    assert rejection_reasons(config) == {
        recs[2].record_id: ["record body does not match its sha256"]}

    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, recs), 30, "the genuine records")
    assert_exactly_once(config, recs)
    assert_no_false_delivery(config)
    held = {(h["record_id"], h["sha256"]) for h in
            central_store.list_held(config.central.database)}
    assert held == {(r.record_id, sha_of(b)) for r, b in zip(recs, squats, strict=False)}
    conflicts = {(c["record_id"], c["state"]) for c in
                 central_store.list_conflicts(config.central.database)}
    assert conflicts == {(r.record_id, "resolved") for r in recs[:2]}
    genuine_packs = [p for _t, p in attacker.seen
                     if p.startswith(wire.BINARY_PACK_MAGIC) and p != hostile]
    assert genuine_packs, "the device never sent a binary pack: the fast path was not used"

    # Replays of either side's packs change nothing that is served or delivered.
    before = central_counters(config).get("records_stored", 0)
    for payload in [hostile, *genuine_packs]:
        attacker.publish(mine, payload)
    time.sleep(1.0)
    assert central_counters(config).get("records_stored", 0) == before
    assert_exactly_once(config, recs)
    assert receiver.running() and publisher.running()
    attacker.close()


def test_poisoned_chunk_transfers_and_a_misleading_resume_cost_a_retry_never_a_record(
        tmp_path: Path, broker: MosquittoProcess, services: Start) -> None:
    """Before the device sends a scan, the attacker fills the receiver's chunk state for
    that very file (its sha256 and size are in the device's record body, in clear):
    a complete transfer of garbage in the base64 cut, a garbage first chunk in the
    binary cut the device will use (after a chunk announcing another size, which the
    receiver drops), half a transfer with another chunk count, and a chunk whose index
    is its count. The resume answer then truthfully counts garbage chunks as held; the
    sha256 check at completion must catch it, and the device must still get through."""
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=1.5,
                         central={"chunk_expiry_seconds": 4.0})
    mine = wire.records_topic("bhxh", config.device.id)
    [rec] = enqueue(config, 1, pdf_sizes=(9_000,))
    [sha] = rec.file_shas
    packs_on(config)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    dead_before = central_dead_letters(config)

    garbage = os.urandom(9_000)
    base64_cut = list(wire.iter_chunks(rec.record_id, sha, garbage, config.mqtt.chunk_bytes))
    binary_cut = list(wire.iter_chunks(rec.record_id, sha, garbage, config.mqtt.chunk_bytes,
                                       binary=True))
    assert len(base64_cut) != len(binary_cut)  # two transfer keys, as the resume asks
    other_count = list(wire.iter_chunks(rec.record_id, sha, garbage, 2_400))
    for chunk in base64_cut:
        attacker.publish(mine, wire.encode_chunk(chunk))
    first = binary_cut[0]
    attacker.publish(mine, wire.encode_binary_chunk(wire.Chunk(
        first.record_id, sha, 0, first.count, first.size + 1, first.data)))
    attacker.publish(mine, wire.encode_binary_chunk(first))
    for chunk in other_count[:2]:
        attacker.publish(mine, wire.encode_binary_chunk(chunk))
    attacker.publish(mine, wire.encode_binary_chunk(wire.Chunk(
        rec.record_id, sha, first.count, first.count, first.size, first.data)))
    settle(lambda: central_dead_letters(config), dead_before + 1, "index == count refused")
    wait_for(lambda: central_store.chunk_state(config.central.database)["transfers"] == 3, 10,
             "the three poisoned transfers")

    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, [rec]), 45, "the genuine scan")
    assert_exactly_once(config, [rec])
    assert_no_false_delivery(config)
    reasons = rejection_reasons(config).get(rec.record_id, [])
    assert reasons and all("do not match its sha256" in r for r in reasons), reasons
    wait_for(lambda: central_store.chunk_state(config.central.database) == NO_CHUNK_STATE,
             20, "the stray transfers to expire")
    assert central_store.get_file(config.central.database, sha) is not None
    assert_exactly_once(config, [rec])  # expiry kept the stored file's chunks
    assert receiver.running() and publisher.running()
    attacker.close()


# --- bugs, pinned ------------------------------------------------------------------


def test_a_lone_surrogate_in_a_body_is_that_records_rejection_not_an_internal_error(
        tmp_path: Path, broker: MosquittoProcess, services: Start) -> None:
    config = make_config(tmp_path, broker.port)
    mine = wire.records_topic("bhxh", config.device.id)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    before = central_dead_letters(config)
    bad = json.dumps({"record_id": "rt-surrogate", "device_id": "kiosk-01",
                      "dossier_code": "\ud800", "papers": [{"result_code": "\udfff"}]})
    good = forged_body("rt-alongside", "kiosk-01", "FINE")
    attacker.publish(mine, pack([item(bad), item(good)]))
    wait_for(lambda: central_dead_letters(config) > before
             or central_store.list_records(config.central.database), 10, "the pack handled")
    time.sleep(0.5)
    assert receiver.running()  # holds today: the promise that nothing stops it
    letters = central_store.list_dead_letters(config.central.database)[before:]
    assert not any("internal error" in d["reason"] for d in letters), [
        d["reason"] for d in letters]
    assert served_ids(config) == {("kiosk-01", "rt-alongside"): sha_of(good)}
    assert "rt-surrogate" in rejection_reasons(config)
    attacker.close()


def test_files_no_record_names_are_bounded_and_expire_like_chunk_state(
        tmp_path: Path, broker: MosquittoProcess, services: Start) -> None:
    """Files sent whole (a binary pack's, one-chunk files) by a device id that does not
    exist, under records that are refused: they are charged to the chunk budget (the
    packs beyond it are dead letters) and purged after the expiry. The genuine device's
    files, named by its stored records, outlive many expiry periods."""
    limit = 60_000
    config = make_config(tmp_path, broker.port, chunk_bytes=65536, central={
        "max_chunk_store_bytes": limit, "chunk_expiry_seconds": 1.0})
    recs = enqueue(config, 3, pdf_sizes=(2_000,))
    packs_on(config)
    ghost = wire.records_topic("bhxh", "ghost-77")
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    before = central_dead_letters(config)
    for n in range(10):
        blobs = [os.urandom(10_000) for _ in range(4)]
        files = [wire.Chunk(f"rt-orphan-{n}", sha_of(b), 0, 1, len(b), b) for b in blobs]
        # The record is refused (it names another device), its files are not.
        attacker.publish(ghost, pack([item(forged_body(f"rt-orphan-{n}", "kiosk-01"))],
                                     files))
    wait_for(lambda: len(central_store.list_rejections(config.central.database))
             + central_dead_letters(config) - before == 10, 20, "the packs handled")
    state = central_store.chunk_state(config.central.database)
    assert 0 < state["pending_bytes"] <= limit, state
    assert central_dead_letters(config) > before  # the budget refused the rest

    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, recs), 30, "the genuine records")
    time.sleep(3.0)  # several expiry periods of the receiver's purge
    assert receiver.running() and publisher.running()
    assert central_store.chunk_state(config.central.database)["pending_files"] == 0

    def file_bytes(conn: central_store.CentralConnection) -> int:
        return int(conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM files").fetchone()[0])

    assert central_read(config, file_bytes, -1) == 3 * 2_000, "only the genuine files stay"
    assert_exactly_once(config, recs)  # their files byte-identical
    assert central_counters(config).get("chunk_bytes_held", 0) == 0
    assert central_counters(config).get("files_purged", 0) > 0
    attacker.close()


def test_chunks_of_a_transfer_that_can_never_complete_are_refused(
        tmp_path: Path, broker: MosquittoProcess, services: Start) -> None:
    config = make_config(tmp_path, broker.port, central={"max_chunk_store_bytes": 10_000})
    mine = wire.records_topic("bhxh", config.device.id)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    before = central_dead_letters(config)
    empty = sha_of(b"")
    for index in range(50):
        attacker.publish(mine, wire.encode_binary_chunk(
            wire.Chunk("rt-empty", empty, index, wire.MAX_CHUNKS, 0, b"")))
        attacker.publish(mine, wire.encode_binary_chunk(
            wire.Chunk("rt-tiny", SHA, index, wire.MAX_CHUNKS, 100, b"x")))
    wait_for(lambda: central_dead_letters(config) >= before + 100
             or central_store.chunk_state(config.central.database)["chunks"] >= 100, 20,
             "the chunks handled")
    time.sleep(0.5)
    assert receiver.running()  # holds today
    state = central_store.chunk_state(config.central.database)
    assert state["chunks"] == 0, f"{state} kept for transfers that can never complete"
    assert central_dead_letters(config) == before + 100
    attacker.close()
