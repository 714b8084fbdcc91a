"""Red team 19 (issue 12, commit cf00ddc): store.record_needs / store.needs_ready took
the place of store.record_files_ready, so that a record kept for its files behind a
share group is decoded once instead of at every look. Held: the pair answers exactly
as the old function did, for every state of the files table and the transfers table
a kept record can meet (files held with the right or another size, transfers complete
or not, for this device or another, for the size the body names or another), for a
body sent ahead in chunks (body_bytes: the size must match) and for a body that does
not parse (True: put_record then rejects it).

The old function is copied verbatim from the commit before (cf00ddc^) and run against
the same real SQLite database as the new pair.
"""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest

from appliance.central import store
from appliance.central.db import CentralConnection, connect
from appliance.sync import wire
from appliance.sync.errors import WireError

pytestmark = pytest.mark.timeout(60)

DEVICE = "kiosk-01"


def old_record_files_ready(conn: CentralConnection, device_id: str,
                           msg: wire.RecordMessage) -> bool:
    """store.record_files_ready as it was before cf00ddc (verbatim)."""
    if msg.body_bytes:  # the body itself is still in chunks: are they all here?
        return (conn.execute("SELECT 1 FROM transfers WHERE device_id=? AND file_sha256=? "
                             "AND size=? AND have=count",
                             (device_id, msg.sha256, msg.body_bytes)).fetchone() is not None
                or conn.execute("SELECT 1 FROM files WHERE sha256=? AND size=?",
                                (msg.sha256, msg.body_bytes)).fetchone() is not None)
    try:
        body = wire.parse_body(msg.body_json)
    except WireError:
        return True
    for sha, size in body.files:
        if conn.execute("SELECT 1 FROM files WHERE sha256=?", (sha,)).fetchone():
            continue
        if conn.execute("SELECT 1 FROM transfers WHERE device_id=? AND file_sha256=? "
                        "AND size=? AND have=count", (device_id, sha, size)).fetchone():
            continue
        return False
    return True


def new_ready(conn: CentralConnection, device_id: str, msg: wire.RecordMessage) -> bool:
    """What receiver.files_ready now answers for a record message."""
    needs = store.record_needs(msg)
    return True if needs is None else store.needs_ready(conn, device_id, needs)


# The states one file can be in: (files row: size or None, transfers rows:
# [(device, size, count, have)]).
STATES = {
    "absent": (None, []),
    "held": ("right", []),
    "held-other-size": ("wrong", []),
    "transfer-complete": (None, [(DEVICE, "right", 3, 3)]),
    "transfer-partial": (None, [(DEVICE, "right", 3, 2)]),
    "transfer-complete-other-size": (None, [(DEVICE, "wrong", 3, 3)]),
    "transfer-complete-other-device": (None, [("kiosk-02", "right", 3, 3)]),
    "two-cuts-one-complete": (None, [(DEVICE, "right", 3, 1), (DEVICE, "right", 2, 2)]),
}


def put_state(conn: CentralConnection, sha: str, size: int, state: str) -> None:
    held, transfers = STATES[state]
    if held is not None:
        conn.execute("INSERT INTO files(sha256, size, data, stored_at) VALUES (?, ?, ?, 0)",
                     (sha, size if held == "right" else size + 1, b"x"))
    for device, which, count, have in transfers:
        conn.execute("INSERT INTO transfers(device_id, file_sha256, count, size, record_id, "
                     "have, bytes, started_at, last_at) VALUES (?, ?, ?, ?, 'r', ?, 0, 0, 0)",
                     (device, sha, count, size if which == "right" else size + 7, have))


def clear(conn: CentralConnection) -> None:
    conn.execute("DELETE FROM files")
    conn.execute("DELETE FROM transfers")


def record_naming(files: list[tuple[str, int]], record_id: str = "r-1") -> wire.RecordMessage:
    body = json.dumps({"record_id": record_id, "device_id": DEVICE, "dossier_code": "D-1",
                       "papers": [{"result_code": f"D-1.{i:02d}",
                                   "file": {"sha256": sha, "size": size}}
                                  for i, (sha, size) in enumerate(files, start=1)]})
    return wire.RecordMessage(record_id, hashlib.sha256(body.encode()).hexdigest(), body)


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "central.sqlite3")
    yield c
    c.close()


def test_needs_ready_answers_as_record_files_ready_did(conn):
    a = (hashlib.sha256(b"a").hexdigest(), 5000)
    b = (hashlib.sha256(b"b").hexdigest(), 70_000)
    messages = [record_naming([]), record_naming([a]), record_naming([a, b]),
                record_naming([a, a])]
    compared = 0
    for msg in messages:
        for sa, sb in itertools.product(STATES, STATES):
            clear(conn)
            put_state(conn, *a, sa)
            put_state(conn, *b, sb)
            old, new = old_record_files_ready(conn, DEVICE, msg), new_ready(conn, DEVICE, msg)
            assert old == new, (msg.body_json, sa, sb, old, new)
            compared += 1
    assert compared == 4 * len(STATES) ** 2


def test_a_body_in_chunks_needs_its_own_size(conn):
    body_bytes = 300_000
    sha = hashlib.sha256(b"the body").hexdigest()
    msg = wire.RecordMessage("r-body", sha, "", batch=True, body_bytes=body_bytes)
    answers = {}
    for state in STATES:
        clear(conn)
        put_state(conn, sha, body_bytes, state)
        old, new = old_record_files_ready(conn, DEVICE, msg), new_ready(conn, DEVICE, msg)
        assert old == new, (state, old, new)
        answers[state] = new
    # And what that means: only the body's own bytes, held or all here, will do.
    assert answers == {"absent": False, "held": True, "held-other-size": False,
                       "transfer-complete": True, "transfer-partial": False,
                       "transfer-complete-other-size": False,
                       "transfer-complete-other-device": False,
                       "two-cuts-one-complete": True}


@pytest.mark.parametrize("body", ["", "{", "[]", '{"record_id": "r-x"}', "null",
                                  '{"record_id": "r-x", "device_id": "kiosk-01", '
                                  '"dossier_code": "D", "papers": [{"file": 1}]}'])
def test_a_body_that_does_not_parse_is_worth_a_try_at_once(conn, body):
    msg = wire.RecordMessage("r-x", hashlib.sha256(body.encode()).hexdigest(), body)
    assert store.record_needs(msg) is None
    assert old_record_files_ready(conn, DEVICE, msg) is True
    assert new_ready(conn, DEVICE, msg) is True
