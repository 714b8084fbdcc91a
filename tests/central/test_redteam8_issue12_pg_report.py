"""Red team 8 on issue 12: `appliance central --report` (text and JSON) and `--decide` on
PostgreSQL, over hostile text a real receiver stored there.

tests/central/test_operator.py reads a PostgreSQL central as JSON only, over a plain
attack. Here what PostgreSQL does hold goes into every text column the report shows:
dossier codes with ESC, C1 controls (U+009B is an 8-bit CSI), bidi overrides and
U+2028 in a conflict's contents; a dead letter on a topic whose device segment carries
U+202E and U+2028 (no device); first bytes with ESC and C1. The report must exit 0
and write no character a terminal acts on, in either form, and the operator's
decision on the hostile conflict must go through.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import postgres as pg_helpers
from tests.helpers.central_cli import record_message, record_sha, run_central
from tests.helpers.redteam8_rig import (
    DEVICE,
    Receivers,
    all_rows,
    counters,
    engine_config,
    records_topic,
    served_ids,
)
from tests.helpers.sync_rig import Attacker, Brokers, probe_receiver, wait_for

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(90)

FIRST = "\x1b[31mRED\u009b2J\u202eEVIL"
SECOND = "\u0085NEL\u2028LS\x7fDEL\u200fRLM"
ODD_TOPIC = "bhxh/devices/\u202eevil\u2028x/records"
HEAD = b"\x1b[2J\xc2\x9b2J\xe2\x80\xae"


def _no_control(text: str) -> list[str]:
    return sorted({repr(c) for c in text if c != "\n" and not c.isprintable()})


def test_report_and_decide_on_postgresql_over_hostile_text(
        tmp_path: Path, brokers: Brokers, pg_server: Any) -> None:
    broker = brokers.start()
    config = engine_config(tmp_path, broker.port, "postgresql", pg_server)
    receivers = Receivers(tmp_path, config)
    attacker = Attacker(broker.port, client_id="rt8-report")
    try:
        receivers.start(0)
        before = probe_receiver(attacker, config, "the receiver")
        attacker.publish(records_topic(), record_message("x-1", DEVICE, FIRST))
        wait_for(lambda: "x-1" in served_ids(config), 20, "the first content served")
        attacker.publish(records_topic(), record_message("x-1", DEVICE, SECOND))
        attacker.publish(ODD_TOPIC, HEAD + b"{")
        wait_for(lambda: counters(config).get("conflicts", 0) >= 1
                 and counters(config).get("dead_letters", 0) >= before + 1, 20,
                 "the conflict and the dead letter")
        [letter] = all_rows(config, "SELECT topic, device_id FROM dead_letters "
                                    "ORDER BY id DESC LIMIT 1")
        assert letter == {"topic": ODD_TOPIC, "device_id": None}
        config_file = receivers.config_file

        text = run_central(config_file, "--report")
        assert text.returncode == 0, text.stderr
        assert _no_control(text.stdout) == [], text.stdout
        assert "central database (postgresql)" in text.stdout
        assert "\\u202eevil\\u2028x" in text.stdout
        assert "\\x1b[31mRED\\x9b2J\\u202eEVIL" in text.stdout

        as_json = run_central(config_file, "--report", "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert _no_control(as_json.stdout) == []
        report = json.loads(as_json.stdout)
        [conflict] = report["conflicts"]["latest"]
        assert [c["dossier_code"] for c in conflict["contents"]] == [FIRST, SECOND]
        assert report["dead_letters"][0]["topic"] == ODD_TOPIC
        assert report["dead_letters"][0]["head"].startswith("\x1b[2J\u009b2J\u202e")

        done = run_central(config_file, "--decide", DEVICE, "x-1",
                           record_sha("x-1", DEVICE, SECOND), "--operator", "op\u202e1")
        assert done.returncode == 0, done.stderr
        assert _no_control(done.stdout) == [], done.stdout
        assert served_ids(config)["x-1"] == record_sha("x-1", DEVICE, SECOND)
        assert receivers.running(0)
    finally:
        attacker.close()
        receivers.stop_all()
