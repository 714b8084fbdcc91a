"""Red team 10 (issue 12): `appliance central --show DEVICE RECORD_ID` (ed13c66).

Through a real broker and receiver, with a real `appliance central` process:

- Held, on PostgreSQL: a contested id's two contents are opened and shown; a body
  that carries C1 controls (U+009B, the 8-bit CSI), DEL, bidi overrides and a BEL
  writes no control character to the terminal, as text or as --json (which reads back
  to the same body).
- Held, on SQLite: the key file missing is a message (a configuration error, exit 2),
  no traceback, and no new key is made for a database whose contents are sealed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from tests.helpers import postgres as pg_helpers
from tests.helpers.central_cli import record_message, record_sha, run_central
from tests.helpers.sync_rig import (
    Attacker,
    central_read,
    make_config,
    probe_receiver,
    wait_for,
    write_config_file,
)

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(120)

HOSTILE = "A\u009b2J\x7f\u202e\u2066B\x07"


def _stored(config: Any, device: str) -> None:
    attacker = Attacker(config.mqtt.port)
    try:
        probe_receiver(attacker, config)
        topic = wire.records_topic("bhxh", device)
        attacker.publish(topic, record_message("x-1", device, "SQUAT"))
        attacker.publish(topic, record_message("x-1", device, HOSTILE))
        attacker.publish(topic, record_message("x-1", device, HOSTILE, claim=True))
        attacker.publish(topic, record_message("x-1", device, "SQUAT", claim=True))
        wait_for(lambda: central_read(config, central_store.counters, {}).get(
            "conflicts_contested", 0) >= 1, 20, "both contents held, contested")
    finally:
        attacker.close()


def _no_control(text: str) -> None:
    assert not any(ch != "\n" and not ch.isprintable() for ch in text), \
        [ch for ch in text if ch != "\n" and not ch.isprintable()][:5]


def test_show_on_postgresql_opens_both_contents_and_writes_no_control_character(
        tmp_path: Path, broker: Any, services: Any, pg_server: Any) -> None:
    config = make_config(tmp_path, broker.port,
                         central={"postgres_dsn": pg_server.create_database()})
    config_file = write_config_file(tmp_path, config)
    receiver = services(run_receiver, config)
    device = config.device.id
    _stored(config, device)
    shown = run_central(config_file, "--show", device, "x-1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"record x-1 of {device}: 2 content(s)"), shown.stdout[:300]
    assert record_sha("x-1", device, "SQUAT") in shown.stdout
    assert record_sha("x-1", device, HOSTILE) in shown.stdout
    _no_control(shown.stdout)
    as_json = run_central(config_file, "--show", device, "x-1", "--json")
    assert as_json.returncode == 0, as_json.stderr
    _no_control(as_json.stdout)
    bodies = [c["body"]["dossier_code"] for c in json.loads(as_json.stdout)["contents"]]
    assert sorted(bodies) == sorted(["SQUAT", HOSTILE])
    nothing = run_central(config_file, "--show", device, "x-404")
    assert nothing.returncode == 1 and "Traceback" not in nothing.stderr
    assert receiver.running()


def test_show_without_the_key_is_a_message_and_makes_no_key(
        tmp_path: Path, broker: Any, services: Any) -> None:
    config = make_config(tmp_path, broker.port)
    config_file = write_config_file(tmp_path, config)
    receiver = services(run_receiver, config)
    device = config.device.id
    _stored(config, device)
    receiver.stop()
    key = config.central.key_path
    assert key.exists()
    key.rename(key.with_name(key.name + ".away"))
    shown = run_central(config_file, "--show", device, "x-1")
    assert shown.returncode in (1, 2), (shown.stdout[:300], shown.stderr[-600:])
    assert shown.stdout == "" and "Traceback" not in shown.stderr, shown.stderr[-600:]
    assert "restore that key file" in shown.stderr, shown.stderr[-600:]
    assert not key.exists()
