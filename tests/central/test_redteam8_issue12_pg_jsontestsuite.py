"""Red team 8 on issue 12: JSONTestSuite through a real broker at receivers on
PostgreSQL, compared with SQLite.

tests/sync/test_jsontestsuite.py sends the suite (tests/corpus/jsontestsuite, MIT)
through mosquitto at one receiver on SQLite only. Here the same 340 cases go, each as
a raw message and each (when it is UTF-8) as the body of a well-formed record
message, at two `appliance central` processes sharing one subscription, on SQLite and
on PostgreSQL, with genuine hand-made records between them. Both engines must set
every raw case aside once, refuse every body once, serve every genuine record once
with its exact bytes, and keep both receivers running.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from appliance.sync import wire
from tests.helpers import postgres as pg_helpers
from tests.helpers.junk_flood import flood, settled_dead_letters
from tests.helpers.redteam8_rig import (
    ENGINES,
    Receivers,
    counters,
    engine_config,
    record,
    records_topic,
    served_bodies,
    single,
)
from tests.helpers.sync_rig import Attacker, Brokers, probe_receiver, wait_for

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(120)

SUITE = Path(__file__).resolve().parents[1] / "corpus" / "jsontestsuite"
CASES = sorted((SUITE / "test_parsing").glob("*.json")) + sorted(
    (SUITE / "test_transform").glob("*.json"))
GROUP = "rt8-jts-5c1e9a0f7b3d2648"
GENUINE_EVERY = 40


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _messages() -> tuple[list[bytes], int, int, dict[str, str]]:
    """The suite's messages with genuine records between them: (payloads, raw cases,
    bodies, genuine record id -> body)."""
    payloads: list[bytes] = []
    genuine: dict[str, str] = {}
    bodies = 0
    for index, case in enumerate(CASES):
        raw = case.read_bytes()
        payloads.append(raw)
        text = _text(raw)
        if text is not None:
            payloads.append(wire.encode_record(wire.RecordMessage(
                f"jts-{index}", hashlib.sha256(text.encode("utf-8")).hexdigest(), text)))
            bodies += 1
        if index % GENUINE_EVERY == 0:
            msg = record(f"g-{index}", f"HS-{index}")
            genuine[msg.record_id] = msg.body_json
            payloads.append(single(msg))
    return payloads, len(CASES), bodies, genuine


def _run(tmp_path: Path, brokers: Brokers, pg_server: Any, engine: str) -> dict[str, Any]:
    folder = tmp_path / engine
    folder.mkdir()
    broker = brokers.start()
    config = engine_config(folder, broker.port, engine, pg_server, share_group=GROUP)
    receivers = Receivers(folder, config)
    attacker = Attacker(broker.port, client_id=f"rt8-probe-{engine}")
    payloads, cases, bodies, genuine = _messages()
    try:
        receivers.start(0)
        receivers.start(1)
        before = probe_receiver(attacker, config, "the receivers")
        flood(broker.port, records_topic(), payloads, client_id=f"rt8-jts-{engine}",
              wait_s=30)

        def done() -> bool:
            got = counters(config)
            return (got.get("dead_letters", 0) >= before + cases
                    and got.get("records_rejected", 0) >= bodies
                    and len(served_bodies(config)) >= len(genuine)) or bool(receivers.exited())

        wait_for(done, 60, f"every case handled on {engine}")
        assert not receivers.exited(), receivers.exited()
        settled_dead_letters(config, 1.0, 20)  # nothing counted twice after the wait
        got = counters(config)
        return {"dead_letters": got.get("dead_letters", 0) - before,
                "records_rejected": got.get("records_rejected", 0),
                "records_stored": got.get("records_stored", 0),
                "served": served_bodies(config), "expected": (cases, bodies, genuine)}
    finally:
        attacker.close()
        receivers.stop_all()


def test_the_suite_at_shared_receivers_on_both_engines(
        tmp_path: Path, brokers: Brokers, pg_server: Any) -> None:
    results = {engine: _run(tmp_path, brokers, pg_server, engine) for engine in ENGINES}
    for engine, got in results.items():
        cases, bodies, genuine = got["expected"]
        assert got["dead_letters"] == cases, engine
        assert got["records_rejected"] == bodies, engine
        assert got["records_stored"] == len(genuine), engine
        assert got["served"] == genuine, engine  # each once, its exact bytes
    assert results["sqlite"] == results["postgresql"]
