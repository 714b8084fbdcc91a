"""Red team 8 on issue 12: three receivers on PostgreSQL sharing one subscription while
hostile and genuine messages interleave, one of them killed -9 mid-stream.

The stream, published through paho as fast as mosquitto takes it (up to 1,000 in
flight, so that the kill finds messages read and not committed): JSONTestSuite's raw
cases cycled (junk, many of them byte-identical), genuine hand-made records alone and
in binary packs, and records with a file cut into binary chunks, which the broker
deals out to different receivers than their record (the record waits for another
receiver's commit). Receiver 1 is killed -9 once a third of the junk is counted and
started again in its kept session.

Afterwards: no receiver exited, every genuine record is served once with its exact
bytes and every file reads back byte-identical, every junk message is one dead
letter, no more, no less.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from appliance.central import store as central_store
from appliance.sync import wire
from tests.helpers import postgres as pg_helpers
from tests.helpers.junk_flood import flood, held, settled_dead_letters
from tests.helpers.redteam8_rig import (
    DEVICE,
    Receivers,
    counters,
    engine_config,
    pack,
    record,
    records_topic,
    served_bodies,
    single,
)
from tests.helpers.sync_rig import Attacker, Brokers, central_read, probe_receiver, wait_for

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(150)

SUITE = Path(__file__).resolve().parents[1] / "corpus" / "jsontestsuite" / "test_parsing"
JUNK = [p.read_bytes() for p in sorted(SUITE.glob("*.json"))]
GROUP = "rt8-kill-93a1c7e2d04f5b68"
JUNK_MESSAGES = 2_400
KILL_AT = 800


def _file_record(n: int) -> tuple[wire.RecordMessage, list[bytes], bytes]:
    """A record naming one file of 1,500 bytes, and the file's binary chunks (3)."""
    data = hashlib.sha256(b"file %d" % n).digest() * 47  # 1,504 bytes
    data = data[:1500]
    sha = hashlib.sha256(data).hexdigest()
    record_id = f"f-{n}"
    text = json.dumps({"record_id": record_id, "device_id": DEVICE, "dossier_code": f"F-{n}",
                       "papers": [{"result_code": f"{record_id}-1",
                                   "file": {"sha256": sha, "size": len(data)}}]})
    msg = wire.RecordMessage(record_id, hashlib.sha256(text.encode()).hexdigest(), text)
    chunks = [wire.encode_binary_chunk(c) for c in
              wire.iter_chunks(record_id, sha, data, 1024, binary=True)]
    assert len(chunks) == 3
    return msg, chunks, data


def _stream() -> tuple[list[bytes], int, dict[str, str], dict[str, bytes]]:
    """(payloads, junk count, genuine id -> body, file sha -> bytes)."""
    payloads: list[bytes] = []
    genuine: dict[str, str] = {}
    files: dict[str, bytes] = {}
    junk = 0
    n = 0
    while junk < JUNK_MESSAGES:
        for _ in range(8):
            payloads.append(JUNK[junk % len(JUNK)])
            junk += 1
        kind = n % 3
        if kind == 0:
            msg = record(f"s-{n}", f"HS-{n}")
            payloads.append(single(msg))
            genuine[msg.record_id] = msg.body_json
        elif kind == 1:
            msgs = [record(f"p-{n}-{i}", f"HP-{n}-{i}") for i in range(4)]
            payloads.append(pack(msgs))
            genuine.update({m.record_id: m.body_json for m in msgs})
        else:
            msg, chunks, data = _file_record(n)
            payloads.extend(chunks)
            payloads.append(single(msg))
            genuine[msg.record_id] = msg.body_json
            files[hashlib.sha256(data).hexdigest()] = data
        n += 1
    return payloads, junk, genuine, files


def test_three_pg_receivers_one_killed_keep_every_count(
        tmp_path: Path, brokers: Brokers, pg_server: Any) -> None:
    broker = brokers.start()
    config = engine_config(tmp_path, broker.port, "postgresql", pg_server,
                           share_group=GROUP, max_transfers_per_device=256)
    receivers = Receivers(tmp_path, config)
    attacker = Attacker(broker.port, client_id="rt8-probe")
    payloads, junk, genuine, files = _stream()
    try:
        for n in range(3):
            receivers.start(n)
        before = probe_receiver(attacker, config, "the receivers")
        with contextlib.ExitStack() as stopped:  # the kill lands mid-stream (junk_flood.held)
            for proc in receivers.procs.values():
                stopped.enter_context(held(proc))
            flood(broker.port, records_topic(), payloads, client_id=DEVICE, wait_s=60)
        wait_for(lambda: counters(config).get("dead_letters", 0) >= before + KILL_AT, 60,
                 "a third of the junk counted")
        receivers.kill9(1)
        killed_at = counters(config).get("dead_letters", 0) - before
        assert killed_at < junk, "the kill came after the stream: nothing tested"
        receivers.start(1)
        wait_for(lambda: len(served_bodies(config)) >= len(genuine) or bool(
            {k: v for k, v in receivers.exited().items()}), 90, "every genuine record")
        assert not receivers.exited(), receivers.exited()
        counted = settled_dead_letters(config, 2.0, 60) - before
        assert not receivers.exited(), receivers.exited()
        served = served_bodies(config)
        assert served == genuine, (
            f"{len(served)} served of {len(genuine)}; missing "
            f"{sorted(set(genuine) - set(served))[:10]}")
        got = counters(config)
        assert got.get("records_stored", 0) == len(genuine), got
        assert counted == junk, f"{counted} dead letters for {junk} junk messages ({killed_at} " \
                                f"at the kill)"
        for sha, data in files.items():
            assert central_read(config, lambda c, s=sha: central_store.get_file(c, s),
                                None) == data, sha
    finally:
        attacker.close()
        receivers.stop_all()
