"""`appliance central --report` and `--decide` as real processes, on what a real
receiver wrote.

Everything in the report was put there through a real mosquitto:
- a contested record id (a squatter and a second content, both claimed);
- a record naming another device;
- poison whose first bytes would clear the operator's terminal.

The report must show each of them and count what the store counts. In JSON the
items are the store's own rows. It must never write a control character to the
terminal, and it must not create a database where none is. An operator's decision
serves the chosen content for good: later claims and copies through the broker change
nothing, and their senders hear CONTESTED (final), not CONFLICT (claim again).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync import acksig, wire
from tests.helpers import postgres as pg_helpers
from tests.helpers.central_cli import record_body, record_message, record_sha, run_central
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
CLEAR_SCREEN = b"\x1b[2J\x1b[H"


def _report(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_central(config_file, "--report", *args)


def _attack(attacker: Attacker, device: str) -> None:
    """A contested id, a refused record and poison, on `device`'s records topic."""
    topic = wire.records_topic("bhxh", device)
    attacker.publish(topic, record_message("x-1", device, "SQUAT"))
    attacker.publish(topic, record_message("x-1", device, "OTHER"))
    attacker.publish(topic, record_message("x-1", device, "OTHER", claim=True))
    attacker.publish(topic, record_message("x-1", device, "SQUAT", claim=True))
    attacker.publish(topic, record_message("stolen-1", "kiosk-77", "STOLEN"))
    attacker.publish(topic, CLEAR_SCREEN + b'{"v":1}')


def _settled(config: Any) -> bool:
    counts = central_read(config, central_store.counters, {})
    return (counts.get("conflicts_contested", 0) >= 1
            and counts.get("records_rejected", 0) >= 1 and counts.get("dead_letters", 0) >= 2)


def _check_json(report: dict[str, Any], config: Any, device: str) -> None:
    store_rows = central_read(config, lambda conn: (
        central_store.counters(conn), central_store.list_rejections(conn),
        central_store.list_dead_letters(conn), central_store.list_conflicts(conn)), None)
    assert store_rows is not None
    counters, rejections, letters, conflicts = store_rows
    assert report["counters"] == dict(sorted(counters.items()))
    assert report["conflicts"]["contested"] == 1
    [conflict] = report["conflicts"]["latest"]
    assert (conflict["device_id"], conflict["record_id"], conflict["state"]) == (
        device, "x-1", "contested") == tuple(conflicts[0][k] for k in
                                             ("device_id", "record_id", "state"))
    assert [r["record_id"] for r in report["rejections"]] == [
        r["record_id"] for r in reversed(rejections)] == ["stolen-1"]
    assert "from device 'kiosk-77'" in report["rejections"][0]["reason"]
    assert [d["id"] for d in report["dead_letters"]] == [d["id"] for d in reversed(letters)]
    newest = report["dead_letters"][0]
    assert newest["head"].startswith(CLEAR_SCREEN.decode())
    assert newest["device_id"] == device and newest["size"] == len(CLEAR_SCREEN) + 7


def _attacked(tmp_path: Path, port: int, services: Any,
              **central: str) -> tuple[Any, Path, Attacker, Any]:
    """A receiver (on `central`'s database) that has taken the attack: its config,
    config file, the attacker and the receiver."""
    config = make_config(tmp_path, port, central=central)
    config_file = write_config_file(tmp_path, config)
    attacker = Attacker(port)
    receiver = services(run_receiver, config)
    probe_receiver(attacker, config)
    _attack(attacker, config.device.id)
    wait_for(lambda: _settled(config), 20, "the attack stored")
    return config, config_file, attacker, receiver


def test_the_report_shows_what_needs_a_person_and_writes_no_control_character(
        tmp_path: Path, broker: Any, services: Any) -> None:
    config, config_file, attacker, receiver = _attacked(tmp_path, broker.port, services)
    text = _report(config_file)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "central database (sqlite)" in out
    assert "conflicts: 0 open, 1 contested" in out
    assert f"{config.device.id} x-1" in out
    assert "stolen-1: record body is from device 'kiosk-77'" in out
    assert "(kiosk-01, 14 bytes): JSON nested deeper than 2 levels" in out
    assert "\\x1b[2J\\x1b[H" in out  # the poison's first bytes, escaped
    assert not any(ch != "\n" and not ch.isprintable() for ch in out), repr(out)

    as_json = _report(config_file, "--json", "--last", "5")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    _check_json(report, config, config.device.id)
    assert len(report["dead_letters"]) == 2  # the probe's and the poison
    _decide_and_check(config, config_file, attacker)
    assert receiver.running()
    attacker.close()


def test_show_opens_the_contents_side_by_side_and_words_that_are_not_text_are_refused(
        tmp_path: Path, broker: Any, services: Any) -> None:
    """--show prints every content held under a contested id, opened, with what the
    attacker's text holds escaped; a record id typed in another encoding (bytes that
    are not UTF-8) is refused with a message, not a traceback; the report names the
    key the receiver signs acks with."""
    config, config_file, attacker, receiver = _attacked(tmp_path, broker.port, services)
    device = config.device.id
    attacker.publish(wire.records_topic("bhxh", device),
                     record_message("x-2", device, "A\x1b[2J\u202eB"))
    wait_for(lambda: any(r["record_id"] == "x-2" for r in central_read(
        config, central_store.list_records, [])), 20, "x-2 stored")

    shown = run_central(config_file, "--show", device, "x-1")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith(f"record x-1 of {device}: 2 content(s), contested")
    for code in ("SQUAT", "OTHER"):
        assert f"{record_sha('x-1', device, code)} held claimed" in out
        assert f"  dossier {code}, result codes none" in out
        assert f'"dossier_code": "{code}"' in out
    as_json = json.loads(run_central(config_file, "--show", device, "x-1", "--json").stdout)
    assert [c["body"] for c in as_json["contents"]] == [
        json.loads(record_body("x-1", device, code)) for code in ("SQUAT", "OTHER")]
    assert as_json["conflict"]["state"] == "contested"
    hostile = run_central(config_file, "--show", device, "x-2")
    assert hostile.returncode == 0, hostile.stderr
    assert "no conflict" in hostile.stdout and "A\\x1b[2J\\u202eB" in hostile.stdout
    assert not any(ch != "\n" and not ch.isprintable() for ch in hostile.stdout)
    nothing = run_central(config_file, "--show", device, "x-404")
    assert nothing.returncode == 1 and "nothing is held under record x-404" in nothing.stderr

    other = record_sha("x-1", device, "OTHER")
    for args in (("--decide", device, os.fsdecode(b"x-\xff"), other),
                 ("--show", device, os.fsdecode(b"x-\xff"))):
        refused = run_central(config_file, *args)
        assert refused.returncode == 1, refused.stderr
        assert "the record id given is not UTF-8 text" in refused.stderr
        assert "Traceback" not in refused.stderr
    text = _report(config_file)
    signing = acksig.key_id(acksig.load_public_key(Path(config.mqtt.central_public_key)))
    assert "ack signing keys, last used first (1;" in text.stdout
    assert f"  {signing} first used " in text.stdout
    assert receiver.running()
    attacker.close()


def test_no_database_is_an_error_and_none_is_made(tmp_path: Path) -> None:
    config = make_config(tmp_path, 1)
    config_file = write_config_file(tmp_path, config)
    result = _report(config_file)
    assert result.returncode == 1
    assert "no central database at" in result.stderr
    assert not Path(config.central.database).exists()


def test_the_report_reads_a_postgresql_central_the_same_way(
        tmp_path: Path, broker: Any, services: Any, pg_server: Any) -> None:
    config, config_file, attacker, receiver = _attacked(
        tmp_path, broker.port, services, postgres_dsn=pg_server.create_database())
    result = _report(config_file, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["engine"] == "postgresql"
    _check_json(report, config, config.device.id)
    _decide_and_check(config, config_file, attacker)
    assert receiver.running()
    attacker.close()


def _acks_heard(attacker: Attacker, count: int) -> list[wire.AckStatus]:
    wait_for(lambda: len(attacker.seen) >= count, 10, f"{count} acks")
    return [wire.decode_ack_message(payload).status for _topic, payload in attacker.seen]


def _decide_and_check(config: Any, config_file: Path, attacker: Attacker) -> None:
    """Decide the contested id for OTHER, then try to undo it through the broker."""
    device = config.device.id
    squat, other = record_sha("x-1", device, "SQUAT"), record_sha("x-1", device, "OTHER")
    before = json.loads(_report(config_file, "--json").stdout)
    [conflict] = before["conflicts"]["latest"]
    assert [(c["sha256"], c["claimed"]) for c in conflict["contents"]] == [
        (squat, True), (other, True)]

    wrong = run_central(config_file, "--decide", device, "x-1", "b" * 64)
    assert wrong.returncode == 1 and f"held: {squat}, {other}" in wrong.stderr
    none = run_central(config_file, "--decide", device, "no-such-id", other)
    assert none.returncode == 1 and "not in conflict" in none.stderr
    done = run_central(config_file, "--decide", device, "x-1", other,
                    "--operator", "nguyen.van.a")
    assert done.returncode == 0, done.stderr
    assert f"{other} is served" in done.stdout and "1 other content(s)" in done.stdout

    def served() -> dict[str, str]:
        return central_read(config, lambda conn: {
            r["record_id"]: r["sha256"] for r in central_store.list_records(conn)}, {})

    assert served()["x-1"] == other
    # The squatter claims again, sends a copy, and a third content with a claim.
    attacker.sniff(wire.acks_topic("bhxh", device))
    topic = wire.records_topic("bhxh", device)
    attacker.publish(topic, record_message("x-1", device, "SQUAT", claim=True))
    attacker.publish(topic, record_message("x-1", device, "SQUAT"))
    attacker.publish(topic, record_message("x-1", device, "THIRD", claim=True))
    attacker.publish(topic, record_message("x-1", device, "OTHER"))
    heard = _acks_heard(attacker, 4)
    assert heard == [wire.AckStatus.CONTESTED] * 3 + [wire.AckStatus.STORED]
    assert served()["x-1"] == other
    after = json.loads(_report(config_file, "--json").stdout)
    assert after["conflicts"]["contested"] == 0 and after["conflicts"]["latest"] == []
    assert after["counters"]["conflicts_decided"] == 1
    [row] = central_read(config, central_store.list_conflicts, [])
    assert (row["state"], row["decided_sha256"], row["decided_by"]) == (
        "resolved", other, "nguyen.van.a")
