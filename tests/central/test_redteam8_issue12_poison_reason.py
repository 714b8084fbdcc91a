"""Red team 8 on issue 12: a dead letter whose reason quotes the message.

wire._binary_pack refuses a packed body length or a packed file size that is not an
integer with `f"packed body length {str(size)[:20]} outside the payload"`: the value
is the header's own text, not its repr. The header is JSON, and JSON may escape a lone
surrogate ("\\ud800"), which json.loads turns into a str no UTF-8 codec encodes.
The receiver sets the message aside (put_dead_letter), and the INSERT of that reason
raises UnicodeEncodeError (sqlite3 and psycopg alike encode parameters to UTF-8):
neither a WireError nor a database error. It leaves on_message, paho re-raises it
from loop(), run() does not catch it, and `appliance central` exits with a traceback
before the PUBACK. The broker keeps the message in the receiver's persistent session
and delivers it again at every restart: the crash loop the module promises cannot
happen, from one 90-byte message anyone who can publish on a records topic can send.

Real processes: mosquitto, `appliance central` on SQLite and on PostgreSQL; the poison
message, then plain junk behind it that must still be counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import postgres as pg_helpers
from tests.helpers.redteam8_rig import (
    ENGINES,
    Receivers,
    all_rows,
    counters,
    engine_config,
    records_topic,
)
from tests.helpers.sync_rig import Attacker, Brokers, probe_receiver, wait_for

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(90)


def _pack_header(items: list[Any]) -> bytes:
    head = json.dumps({"v": 1, "type": "records", "items": items}).encode("ascii")
    return b"\x00rp1" + len(head).to_bytes(4, "big") + head


# json.dumps writes the lone surrogate as the ASCII escape \ud800: valid JSON.
POISON = _pack_header(["r-1", "a" * 64, "\ud800"])


@pytest.mark.parametrize("engine", ENGINES)
def test_a_surrogate_in_a_packed_length_is_one_dead_letter(
        tmp_path: Path, brokers: Brokers, pg_server: Any, engine: str) -> None:
    broker = brokers.start()
    config = engine_config(tmp_path, broker.port, engine, pg_server)
    receivers = Receivers(tmp_path, config)
    attacker = Attacker(broker.port)
    try:
        receivers.start(0)
        before = probe_receiver(attacker, config, "the receiver")
        attacker.publish(records_topic(), POISON)
        attacker.publish(records_topic(), b"plain junk behind it")
        wait_for(lambda: counters(config).get("dead_letters", 0) >= before + 2
                 or not receivers.running(0), 20, "both set aside, or the receiver gone")
        assert receivers.running(0), (
            f"the receiver exited on one message:\n{receivers.log_text(0)[-1500:]}")
        assert counters(config).get("dead_letters", 0) == before + 2
        letters = [r["reason"] for r in
                   all_rows(config, "SELECT reason FROM dead_letters ORDER BY id")]
        assert any("packed body length" in r for r in letters), letters
        # Started again, it must not meet the message again (PUBACKed once set aside).
        receivers.stop_all()
        receivers.start(0)
        attacker.publish(records_topic(), b"more junk after the restart")
        wait_for(lambda: counters(config).get("dead_letters", 0) >= before + 3
                 or not receivers.running(0), 20, "the junk after the restart")
        assert receivers.running(0), receivers.log_text(0)[-1500:]
        assert counters(config).get("dead_letters", 0) == before + 3
    finally:
        attacker.close()
        receivers.stop_all()
