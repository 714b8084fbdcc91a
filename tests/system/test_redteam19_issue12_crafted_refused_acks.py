"""Red team 19 (issue 12, commit cf00ddc): the refused-ack counts in device_state
("sync.refused_acks") are now kept per set of believed key ids, and the doctor dates
its WARN from the count's own `since` (`counted.since / 1e9`), where it used the key
file's ctime before.

Held: a legacy value (no "believed", written before this release) counts on under the
same file change and is dropped under another; sync's note_refused_ack never raises
on a value not as it writes it.

Found: central_key.refused_acks() read any JSON integer as `since`, "None for
anything not as note_refused_ack writes it" notwithstanding (sync writes a ctime in
ns). With a `since` no clock reaches, under the keys believed, the doctor's
central_key check raises (datetime out of range, or an int too large for a float)
and the panel and the heartbeat show "the check itself failed" instead of the WARN
naming the key the refused acks named. Fixed since: a `since` outside 0 to 2**63 ns
makes the value unreadable (counted afresh).

Real key files (OpenSSL), the device's own database, the doctor's own check_all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from appliance.store import db
from appliance.system import central_key, doctor
from appliance.system.doctor import Verdict
from tests.helpers.central_keys import ed25519 as openssl_ed25519
from tests.helpers.sync_rig import make_config

pytestmark = pytest.mark.timeout(30)

OFFICE = "0f" * 8  # the key id the refused acks name


@pytest.fixture
def device(tmp_path):
    _key, public, kid = openssl_ed25519(tmp_path / "keys", "old")
    config = make_config(tmp_path, 1, signed=False, central_public_key=str(public))
    conn = db.connect(config.paths.database)

    def state(value: str) -> doctor.Check:
        with db.transaction(conn):
            db.set_state(conn, central_key.REFUSED_ACKS_STATE_KEY, value)
        [found] = doctor.check_all(config, {"central_key": doctor.check_central_key})
        return found

    yield state, Path(public), kid
    conn.close()


def crafted(since: int, kid: str) -> str:
    return json.dumps({"since": since, "count": 3, "more": 0,
                       "keys": {OFFICE: [3, time.time()]}, "believed": [kid]})


def test_legacy_counts_hold_under_the_same_file_only_and_sync_never_raises(device):
    state, public, kid = device
    ctime = public.stat().st_ctime_ns
    legacy = json.dumps({"since": ctime, "count": 2, "more": 0,
                         "keys": {OFFICE: [2, time.time()]}})
    found = state(legacy)
    assert found.verdict is Verdict.WARN and OFFICE in found.summary, found.summary
    found = state(json.dumps({**json.loads(legacy), "since": ctime - 1}))
    assert found.verdict is Verdict.OK, found.summary
    # As sync writes it: WARN, dated from the first refusal under these keys.
    found = state(central_key.note_refused_ack("", OFFICE, time.time(), ctime, [kid]))
    assert found.verdict is Verdict.WARN and OFFICE in found.summary, found.summary
    # Sync's own step on values it never wrote: no exception, a count it can read.
    for value in (legacy, crafted(2**80, kid), crafted(-(10**400), kid), "[]", "{",
                  '{"since": 1, "count": 1, "more": 0, "keys": {}, "believed": "x"}',
                  '{"since": 1, "count": 1, "more": 0, "keys": {}, "believed": [1]}',
                  json.dumps({"since": 1, "count": 1, "more": 0, "keys": {},
                              "believed": [kid] * 9})):
        after = central_key.refused_acks(
            central_key.note_refused_ack(value, OFFICE, time.time(), ctime, [kid]))
        assert after is not None and after.count >= 1 and OFFICE in after.keys, value


@pytest.mark.parametrize("since", [2**80, -(2**80), 10**400],
                         ids=["2pow80", "minus-2pow80", "10pow400"])
def test_a_since_no_clock_reaches_does_not_break_the_check(device, since):
    state, _public, kid = device
    found = state(crafted(since, kid))
    assert found.verdict is not Verdict.FAIL and "check itself failed" not in found.summary, (
        found.summary)
