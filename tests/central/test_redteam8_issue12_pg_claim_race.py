"""Red team 8 on issue 12: two claims of different contents under one record id, dealt
by the shared subscription to two receivers on PostgreSQL at the same moment.

store._claim serves a claimed content in three statements: count the other claims,
hold the served content (`UPDATE ... SET status='held' WHERE status='served'`), serve
this one. On SQLite one writer at a time makes the second claim see the first and
mark the id contested (nothing served until an operator decides). On PostgreSQL, in
READ COMMITTED, each receiver counts no other claim (the other's is not committed),
one waits on the other's row lock of the served content, finds it held once the other
commits, skips it, and its `SET status='served'` then breaks the records_served unique
index against the content the other just served: IntegrityError -> StoreDataError ->
the claim is a dead letter. The id is left "resolved" with the first claimant's
content served although two contents were claimed, and a genuine device's claim was
set aside as junk (it only becomes contested when that device sends the claim again
after its ack timeout; a squatter that claims first is served meanwhile).

Real processes: mosquitto, two `appliance central` sharing one subscription on one
PostgreSQL database. Each round stores three contents under a fresh id (X, then Y and
Z held aside), then publishes the claims of Y and Z back to back with junk behind
them (so that both receivers' batches are open at once). The control on SQLite is
the same rig.

(Found on the way, by design and left alone: a content served without a conflict is
never marked claimed, so a claim sent for it changes nothing; the setup therefore
waits for X to be served before Y and Z come.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import postgres as pg_helpers
from tests.helpers.central_cli import record_message
from tests.helpers.junk_flood import flood, settled_dead_letters
from tests.helpers.redteam8_rig import (
    DEVICE,
    ENGINES,
    Receivers,
    all_rows,
    counters,
    engine_config,
    records_topic,
)
from tests.helpers.sync_rig import Attacker, Brokers, probe_receiver, wait_for

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(120)

GROUP = "rt8-claim-6e0b2d9a4c817f35"
ROUNDS = 12  # about 2 s in all
JUNK_BEHIND = 60


def _conflict_states(config: Any) -> dict[str, str]:
    return {r["record_id"]: r["state"] for r in all_rows(
        config, "SELECT record_id, state FROM conflicts")}


def _contents(config: Any, rid: str) -> int:
    return len(all_rows(config, f"SELECT 1 FROM records WHERE record_id='{rid}'"))


def _round(config: Any, port: int, n: int) -> None:
    """X served first, then Y and Z held aside; then the two claims at once."""
    rid = f"c-{n}"
    topic = records_topic()
    flood(port, topic, [record_message(rid, DEVICE, "X")], client_id=f"rt8-x-{n}",
          wait_s=20)
    wait_for(lambda: _contents(config, rid) == 1, 20, f"{rid}: X stored")
    flood(port, topic, [record_message(rid, DEVICE, code) for code in ("Y", "Z")],
          client_id=f"rt8-yz-{n}", wait_s=20)
    wait_for(lambda: _contents(config, rid) == 3, 20, f"{rid}: Y and Z held")
    claims = [record_message(rid, DEVICE, "Y", claim=True),
              record_message(rid, DEVICE, "Z", claim=True)]
    flood(port, topic, claims + [b"junk behind the claims"] * JUNK_BEHIND,
          client_id=f"rt8-claims-{n}", wait_s=20)


@pytest.mark.parametrize("engine", ENGINES)
def test_two_concurrent_claims_make_the_id_contested(
        tmp_path: Path, brokers: Brokers, pg_server: Any, engine: str) -> None:
    broker = brokers.start()
    config = engine_config(tmp_path, broker.port, engine, pg_server, share_group=GROUP)
    receivers = Receivers(tmp_path, config)
    attacker = Attacker(broker.port, client_id="rt8-probe")
    try:
        receivers.start(0)
        receivers.start(1)
        before = probe_receiver(attacker, config, "the receivers")
        for n in range(ROUNDS):
            _round(config, broker.port, n)
        expected = before + ROUNDS * JUNK_BEHIND
        wait_for(lambda: counters(config).get("dead_letters", 0) >= expected
                 or bool(receivers.exited()), 20, "the junk behind the last claims")
        settled_dead_letters(config, 1.0, 20)  # the claims before it are through
        assert not receivers.exited(), receivers.exited()
        states = _conflict_states(config)
        letters = [r["reason"] for r in all_rows(
            config, "SELECT reason FROM dead_letters WHERE reason LIKE '%refused%'")]
        assert letters == [], letters[:3]
        assert states == {f"c-{n}": "contested" for n in range(ROUNDS)}, states
        assert counters(config).get("dead_letters", 0) == expected
    finally:
        attacker.close()
        receivers.stop_all()
