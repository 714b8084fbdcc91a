"""Issue 12, second independent acceptance: records whose bodies travel in chunks
(wire.RecordMessage.body_bytes), delivered through two receivers that share one MQTT v5
subscription and one database (one SQLite file, or PostgreSQL).

mosquitto deals a shared subscription's messages round robin, so a body's chunks and
its record message land on different receivers: the record message finds its body
in another receiver's open batch (INCOMPLETE, kept and tried again) or already
committed. Records with 2 and with 3 body chunks, and some with a scan in chunks too,
shift which receiver gets which part. Every record must arrive once, byte-identical,
and no body chunk may stay behind.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers import postgres as pg_helpers
from tests.helpers.sync_rig import (
    NO_CHUNK_STATE,
    Attacker,
    all_delivered,
    assert_exactly_once_everywhere,
    central_read,
    enqueue,
    make_config,
    probe_receiver,
    wait_for,
)

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(90)
GROUP = "central-2b9e41c07d5a36f8"


def _receiver(client_id: str):
    def run(config: config_mod.Config, stop: threading.Event, notify) -> None:
        run_receiver(config, stop, notify, client_id=client_id)
    return run


def _chunk_state(config: config_mod.Config) -> dict[str, int] | None:
    from appliance.central import store as central_store

    return central_read(config, lambda conn: central_store.chunk_state(conn), None)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_body_chunks_and_their_record_split_between_shared_receivers(
        engine: str, tmp_path: Path, broker, services, request) -> None:
    central: dict[str, object] = {"share_group": GROUP}
    if engine == "postgresql":
        if not pg_helpers.available():
            pytest.skip("no PostgreSQL server binaries")
        central["postgres_dsn"] = request.getfixturevalue("pg_server").create_database()
    # 4096-byte messages: 5 papers make a body of 2 binary chunks, 8 papers 3 chunks.
    config = make_config(tmp_path, broker.port, central=central)
    receivers = [services(_receiver(f"central-{n}"), config) for n in range(2)]
    attacker = Attacker(broker.port)
    probe_receiver(attacker, config, "the receivers")
    attacker.close()
    recs = (enqueue(config, 4, pdf_sizes=(100,) * 5)
            + enqueue(config, 4, pdf_sizes=(100,) * 8)
            + enqueue(config, 3, pdf_sizes=(9000,) + (100,) * 6))
    assert all(len(r.body_json) > config.mqtt.chunk_bytes for r in recs)
    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, recs), 45, "every record delivered")
    assert all(r.running() for r in receivers) and publisher.running()
    assert_exactly_once_everywhere(config, recs)
    # The bodies' chunks went with their records (none left for the expiry to purge).
    wait_for(lambda: _chunk_state(config) == NO_CHUNK_STATE, 5,
             f"no chunk state left (now {_chunk_state(config)})")
