"""Red team 8 on issue 12: U+0000 in a record body's dossier code, SQLite against
PostgreSQL.

wire._text checks a body's short text fields (dossier_code, each paper's result_code)
for length and for lone surrogates, "as the database can store it", but lets U+0000
through. JSON writes it as the escape \\u0000, so the body is valid, its sha256 is
right and it names its record and device. store._put_record and store._insert_fresh
then write body.dossier_code into records.dossier_code, a text column: SQLite keeps
it; PostgreSQL cannot hold NUL in text and psycopg refuses the value (DataError ->
StoreDataError, a WireError). The receiver sets the whole message aside as a dead
letter:
- a single record is stored and acknowledged on SQLite, a dead letter on PostgreSQL
  (no ack: its device sends it again after every ack timeout, one more dead letter
  each time, for good);
- in a binary pack the record goes into _insert_fresh's one multi-row INSERT, so the
  whole pack is one dead letter on PostgreSQL: the genuine records beside it are
  neither stored nor acknowledged either (the same class of fault wire._text's
  docstring says was fixed for lone surrogates, "an internal error that took the
  whole pack with it").

Real processes: mosquitto and `appliance central` on each engine, the same messages
published in the same order; a last plain record says everything before it is
committed. The two engines must come to the same records, refusals and dead letters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import postgres as pg_helpers
from tests.helpers.redteam8_rig import (
    ENGINES,
    Receivers,
    counters,
    engine_config,
    pack,
    record,
    records_topic,
    served_ids,
    single,
)
from tests.helpers.sync_rig import Attacker, Brokers, probe_receiver, wait_for

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(90)

NUL_CODE = "HS-\x00-3"
PACKED = [record(f"p-{i}", NUL_CODE if i == 3 else f"HS-{i}") for i in range(1, 6)]
ALONE = record("s-1", NUL_CODE)
LAST = record("s-2", "HS-last")
WATCHED = ("records_stored", "records_rejected", "dead_letters")


def _outcome(tmp_path: Path, brokers: Brokers, pg_server: Any,
             engine: str) -> tuple[set[str], dict[str, int]]:
    """What one receiver on `engine` makes of the messages: the record ids it serves
    and its counters (less the probe)."""
    folder = tmp_path / engine
    folder.mkdir()
    broker = brokers.start()
    config = engine_config(folder, broker.port, engine, pg_server)
    receivers = Receivers(folder, config)
    attacker = Attacker(broker.port, client_id=f"rt8-{engine}")
    try:
        receivers.start(0)
        before = probe_receiver(attacker, config, "the receiver")
        for payload in (pack(PACKED), single(ALONE), single(LAST)):
            attacker.publish(records_topic(), payload)
        wait_for(lambda: LAST.record_id in served_ids(config) or not receivers.running(0),
                 20, f"the last record on {engine}")
        assert receivers.running(0), receivers.log_text(0)[-1500:]
        got = counters(config)
        got["dead_letters"] = got.get("dead_letters", 0) - before
        return set(served_ids(config)), {k: got.get(k, 0) for k in WATCHED}
    finally:
        attacker.close()
        receivers.stop_all()


def test_both_engines_make_the_same_of_a_nul_in_a_dossier_code(
        tmp_path: Path, brokers: Brokers, pg_server: Any) -> None:
    results = {engine: _outcome(tmp_path, brokers, pg_server, engine) for engine in ENGINES}
    plain = {m.record_id for m in PACKED if "\\u0000" not in m.body_json} | {LAST.record_id}
    for engine, (ids, _counts) in results.items():
        assert plain <= ids, f"{engine}: plain records missing: {sorted(plain - ids)}"
    assert results["sqlite"] == results["postgresql"], results
