"""Red team 14 (issue 12): `appliance central --show DEVICE RECORD_ID` and `--decide`
(ed13c66) as an operator runs them, through a real broker and receiver, each command a
real `appliance central` process:

- Bug (fixed): the text output splits a body's value at U+2028, U+2029 and
  U+0085 (str.splitlines), so those characters reach the terminal as line breaks, not
  escapes, and a body can print a line of its own choosing, such as a second
  "content 2: ... claimed" under a record id that holds one content.
- Held: an id known only as a refused record is "nothing held" (exit 1, no
  traceback, nothing on stdout) for --show and for --decide, and --report lists the
  refusal; a decided id shows as resolved with its decision and operator, a second
  --decide changes it (the earlier one named only in its log line), a content not
  held is refused with exit 1; a body of 400 papers (260 KB) is shown whole, as
  text and JSON, in seconds, with no control character.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from tests.helpers.central_cli import record_message, record_sha, run_central
from tests.helpers.sync_rig import (
    Attacker,
    central_read,
    make_config,
    probe_receiver,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(90)


def _no_control(text: str) -> None:
    bad = [ch for ch in text if ch != "\n" and not ch.isprintable()]
    assert not bad, bad[:5]


def _rig(tmp_path: Path, broker: Any, services: Any) -> tuple[Any, Path, Attacker, str]:
    config = make_config(tmp_path, broker.port)
    config_file = write_config_file(tmp_path, config)
    services(run_receiver, config)
    attacker = Attacker(config.mqtt.port)
    probe_receiver(attacker, config)
    return config, config_file, attacker, wire.records_topic("bhxh", config.device.id)


def _counter(config: Any, name: str) -> int:
    return central_read(config, central_store.counters, {}).get(name, 0)


def test_show_escapes_line_separators_inside_a_body_value(tmp_path, broker, services):
    config, config_file, attacker, topic = _rig(tmp_path, broker, services)
    device = config.device.id
    fake = "a" * 64
    code = f"HS-1\u2028content 2: {fake} served claimed, first now, 9 copies\u0085 x\u2029y"
    try:
        attacker.publish(topic, record_message("ls-1", device, code))
        wait_for(lambda: _counter(config, "records_stored") >= 1, 20, "record stored")
    finally:
        attacker.close()
    shown = run_central(config_file, "--show", device, "ls-1")
    assert shown.returncode == 0, shown.stderr[-600:]
    assert shown.stdout.startswith(f"record ls-1 of {device}: 1 content(s), no conflict")
    _no_control(shown.stdout)
    # One content: no line other than the real heading may say "content".
    headings = [line for line in shown.stdout.splitlines()
                if line.strip().startswith("content ")]
    assert headings == [line for line in headings if line.startswith("content 1: ")], headings
    # Each of the three characters is written as an escape, on the dossier's one line.
    assert "HS-1\\u2028content 2: " in shown.stdout, shown.stdout[:600]
    assert "\\x85 x\\u2029y" in shown.stdout, shown.stdout[:600]


def test_refused_only_id_is_nothing_held_for_show_and_decide(tmp_path, broker, services):
    config, config_file, attacker, topic = _rig(tmp_path, broker, services)
    device = config.device.id
    body = json.dumps({"record_id": "rf-1", "device_id": device, "dossier_code": "R",
                       "papers": []})
    try:
        # Its sha256 is not the body's: the receiver refuses the record.
        attacker.publish(topic, wire.encode_record(
            wire.RecordMessage("rf-1", "0" * 64, body, False)))
        wait_for(lambda: _counter(config, "records_rejected") >= 1, 20, "record refused")
    finally:
        attacker.close()
    report = run_central(config_file, "--report")
    assert report.returncode == 0, report.stderr[-600:]
    assert f"{device} rf-1: record body does not match its sha256" in report.stdout
    for argv in (("--show", device, "rf-1"), ("--show", device, "rf-1", "--json"),
                 ("--decide", device, "rf-1", "0" * 64)):
        done = run_central(config_file, *argv)
        assert done.returncode == 1, (argv, done.stdout[:300], done.stderr[-600:])
        assert done.stdout == "" and "Traceback" not in done.stderr, done.stderr[-600:]
        assert "rf-1" in done.stderr, done.stderr
    assert "nothing is held under record rf-1" in run_central(
        config_file, "--show", device, "rf-1").stderr


def test_decided_id_shows_its_decision_and_a_second_decision_is_refused(
        tmp_path, broker, services):
    config, config_file, attacker, topic = _rig(tmp_path, broker, services)
    device = config.device.id
    try:
        for code in ("A", "B"):
            attacker.publish(topic, record_message("dc-1", device, code))
        for code in ("B", "A"):
            attacker.publish(topic, record_message("dc-1", device, code, claim=True))
        wait_for(lambda: _counter(config, "conflicts_contested") >= 1, 20, "contested")
    finally:
        attacker.close()
    chosen, other = record_sha("dc-1", device, "B"), record_sha("dc-1", device, "A")
    before = run_central(config_file, "--show", device, "dc-1")
    assert before.returncode == 0 and "2 content(s), contested" in before.stdout, before
    decided = run_central(config_file, "--decide", device, "dc-1", chosen,
                          "--operator", "op\u202eer")
    assert decided.returncode == 0, decided.stderr[-600:]
    _no_control(decided.stdout)
    after = run_central(config_file, "--show", device, "dc-1")
    assert after.returncode == 0, after.stderr[-600:]
    first = after.stdout.splitlines()[0]
    assert first == (f"record dc-1 of {device}: 2 content(s), resolved, decided for "
                     f"{chosen} by op\\u202eer"), first
    _no_control(after.stdout)
    as_json = json.loads(run_central(config_file, "--show", device, "dc-1", "--json").stdout)
    assert as_json["conflict"]["decided_sha256"] == chosen
    assert {c["sha256"]: c["status"] for c in as_json["contents"]} == {
        chosen: "served", other: "held"}
    # The operator changes their mind: allowed; the earlier decision is named in the
    # log line (stderr, the journal), not in the answer on stdout.
    again = run_central(config_file, "--decide", device, "dc-1", other)
    assert again.returncode == 0, again.stderr[-600:]
    assert f"earlier decision {chosen}" in again.stderr, again.stderr[-600:]
    shown = json.loads(run_central(config_file, "--show", device, "dc-1", "--json").stdout)
    assert shown["conflict"]["decided_sha256"] == other
    assert {c["sha256"]: c["status"] for c in shown["contents"]} == {
        chosen: "held", other: "served"}
    # A content that is not held under the id: refused, exit 1, as --show's unknown id.
    wrong = run_central(config_file, "--decide", device, "dc-1", "f" * 64)
    assert wrong.returncode == 1 and wrong.stdout == "", (wrong.stdout, wrong.stderr)
    assert "Traceback" not in wrong.stderr and wrong.stderr.strip(), wrong.stderr


def test_a_body_of_400_papers_is_shown_whole(tmp_path, broker, services):
    config, config_file, attacker, topic = _rig(tmp_path, broker, services)
    device = config.device.id
    papers = [{"n": i, "title": f"Giấy tờ số {i} \u009b2J", "text": "x" * 600,
               "file": None} for i in range(400)]
    body = json.dumps({"record_id": "big-1", "device_id": device, "dossier_code": "BIG",
                       "papers": papers}, ensure_ascii=False)
    assert len(body.encode()) > 250_000
    try:
        attacker.publish(topic, wire.encode_record(wire.RecordMessage(
            "big-1", hashlib.sha256(body.encode()).hexdigest(), body, False)))
        wait_for(lambda: _counter(config, "records_stored") >= 1, 20, "record stored")
    finally:
        attacker.close()
    started = time.monotonic()
    shown = run_central(config_file, "--show", device, "big-1")
    took = time.monotonic() - started
    assert shown.returncode == 0, shown.stderr[-600:]
    assert took < 15, took
    _no_control(shown.stdout)
    assert all(f"Giấy tờ số {i} \\x9b2J" in shown.stdout for i in (0, 199, 399))
    as_json = run_central(config_file, "--show", device, "big-1", "--json")
    assert as_json.returncode == 0, as_json.stderr[-600:]
    _no_control(as_json.stdout)
    assert len(json.loads(as_json.stdout)["contents"][0]["body"]["papers"]) == 400
