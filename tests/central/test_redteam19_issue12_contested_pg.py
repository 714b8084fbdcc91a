"""Red team 19 (issue 12, commit cf00ddc): store._claim counts conflicts_contested only
on the transition to contested ("already" contested: a claim sent again, counted and
reported once). Held, on a real PostgreSQL shared by two receivers: the first claim
that makes an id contested is counted even when another receiver's claim of the same
id is waiting on the conflict's row lock (FOR UPDATE) behind it, and that waiting
claim, which then finds the id contested, is not counted again; a later contest on
another id is a new count; and a contest arising while a receiver's claim serves a
content (the other receiver's claim waits, then finds the first one claimed) is
counted once too. The SQLite side is tests/central/test_store.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from appliance.central import store
from appliance.central.db import connect
from appliance.sync import wire
from appliance.system import crypto
from tests.central.test_store import record
from tests.helpers import postgres as pg_helpers

pg_server, pg_dsn = pg_helpers.pg_server, pg_helpers.pg_dsn  # fixtures

pytestmark = pytest.mark.timeout(60)

DEVICE = "kiosk-01"


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "central.key"
    crypto.create_key(path)
    return path


def claim_of(msg: wire.RecordMessage) -> wire.RecordMessage:
    return wire.RecordMessage(msg.record_id, msg.sha256, msg.body_json, True)


def three_contents(conn, record_id: str) -> list[wire.RecordMessage]:
    """X served (first, unclaimed), Y and Z kept aside: an open conflict."""
    contents = [record(record_id, code=c) for c in ("X", "Y", "Z")]
    for m in contents:
        store.put_record(conn, DEVICE, m)
    return contents


def race(dsn, key, first: wire.RecordMessage, second: wire.RecordMessage
         ) -> list[wire.AckStatus]:
    """Receiver A claims `first` in its open batch; B claims `second` meanwhile (it
    must wait for A's row lock); A commits, then B."""
    a = connect(dsn, key_file=key)
    statuses: list[wire.AckStatus] = []
    errors: list[BaseException] = []

    def other() -> None:
        b = connect(dsn, key_file=key)
        try:
            b.execute("BEGIN IMMEDIATE")
            statuses.append(store.put_record(b, DEVICE, second).status)
            b.execute("COMMIT")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            b.close()

    try:
        a.execute("BEGIN IMMEDIATE")
        statuses.append(store.put_record(a, DEVICE, first).status)
        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.5)
        assert len(statuses) == 1, "B did not wait for A's claim"
        a.execute("COMMIT")
        t.join(20)
        assert not errors, errors
    finally:
        a.close()
    return statuses


def test_a_contest_is_counted_once_with_two_receivers_on_postgresql(pg_dsn, key):
    conn = connect(pg_dsn, key_file=key)
    try:
        x, y, z = three_contents(conn, "r-1")
        # Y claimed: served, the id resolved (X was never claimed).
        assert store.put_record(conn, DEVICE, claim_of(y)).status is wire.AckStatus.STORED
        assert store.counters(conn).get("conflicts_contested", 0) == 0
        # Z's claim makes it contested in A's batch; X's claim waits in B's, then finds
        # the id contested: one contest.
        assert race(pg_dsn, key, claim_of(z), claim_of(x)) == [wire.AckStatus.CONTESTED] * 2
        assert store.counters(conn).get("conflicts_contested", 0) == 1
        # Every claim again, from either receiver: the same contest.
        assert race(pg_dsn, key, claim_of(x), claim_of(z)) == [wire.AckStatus.CONTESTED] * 2
        for m in (x, y, z):
            store.put_record(conn, DEVICE, claim_of(m))
        assert store.counters(conn).get("conflicts_contested", 0) == 1

        # Another id: A's claim serves Y2 (resolved, uncommitted) while B's claim of Z2
        # waits; B then sees Y2 claimed: contested, a new count.
        _x2, y2, z2 = three_contents(conn, "r-2")
        assert race(pg_dsn, key, claim_of(y2), claim_of(z2)) == [
            wire.AckStatus.STORED, wire.AckStatus.CONTESTED]
        counts = store.counters(conn)
        assert counts["conflicts_contested"] == 2, counts
        assert counts["conflicts"] == 4, counts  # Y, Z under r-1; Y2, Z2 under r-2
        states = {r["record_id"]: r["state"] for r in store.list_conflicts(conn)}
        assert states == {"r-1": "contested", "r-2": "contested"}
    finally:
        conn.close()
