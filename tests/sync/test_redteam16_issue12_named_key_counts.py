"""Red team 16 on issue 12, item 2 and commit 09cfad3 ("Named key ids counted, not
overwritten"): the device keeps up to 8 key ids that refused acks named, each with a
count, and `appliance doctor` (so the technician panel and the status heartbeat)
names the 3 most named: "if the id of the central office's new key is among A (n),
B (n), C (n), add the key".

The count is the one thing deciding which ids are shown and which are kept, and the
forger writes as many acks as it likes: red team 15's one forged ack no longer hides
the office's new key, but a few more than the office sent do. The office names its
key once per ack it sends again (one per resend of the device's pending records, a
few a minute); an attacker on the ack topic publishes thousands a second. Three ids
each named once more than the office's key push it out of the doctor's line; eight
push it out of the device's state, and when the office names it again it starts
from 1, behind every forged id (central_key.note_named_key, now note_refused_ack,
ranked the rest by count).
The technician is then told the office's new key is among three ids that are all
the attacker's, and the heartbeat carries the same line to the office.

Fixed since: the kid is unsigned, so no ranking of the ids it names can be trusted;
the device now keeps every id first come (central_key.MAX_NAMED_KEYS of them), never
evicts one, counts from the key file's last change, and the doctor lists every id
kept. These tests now pin that.

Real mosquitto, the receiver's and sync's own run functions, keys made by OpenSSL.
"""

from __future__ import annotations

import time

import pytest

from appliance.central.receiver import run_receiver
from appliance.sync import acksig, wire
from appliance.sync.publisher import run_publisher
from appliance.system import central_key, doctor
from appliance.system import config as config_mod
from appliance.system.doctor import Verdict
from tests.helpers.central_keys import ed25519 as openssl_ed25519
from tests.helpers.central_keys import provision, refused_ack_keys
from tests.helpers.sync_rig import (
    Attacker,
    device_dead_letters,
    enqueue,
    make_config,
    probe,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(40)


def test_a_few_more_forged_acks_than_the_office_sent_hide_its_new_key(
        tmp_path, broker, services):
    _old_key, old_pub, _old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, _new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    rogue_key, _rogue_pub, _rogue_id = openssl_ed25519(tmp_path / "keys", "rogue")
    config_file = write_config_file(tmp_path, make_config(tmp_path, broker.port,
                                                          signed=False))
    assert provision(config_file, tmp_path / "etc", str(old_pub))[0] == 0
    config = config_mod.load(config_file)

    # The office signs with its new key, which this device was not given yet.
    receiver = services(run_receiver, config_mod.with_overrides(
        config, central={"signing_key": str(new_key)}))
    device = services(run_publisher, config)
    records = enqueue(config, 2)
    # The office sends its acks again with each resend (ack_timeout_seconds 2 s here).
    wait_for(lambda: refused_ack_keys(config).get(new_id, (0, 0.0))[0] >= 2, 30,
             "the new key's acks refused twice")
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.WARN and new_id in found.summary, found.summary
    receiver.stop()
    office = refused_ack_keys(config)[new_id][0]
    forged = device_dead_letters(config)["forged"]

    # Forged acks for the device's own pending records (learned from its traffic),
    # under three made-up key ids, each named once more than the office's key.
    rogue = acksig.load_private_key(rogue_key)
    fake_ids = [f"{0xdead0000 + i:016x}" for i in range(3)]
    attacker = Attacker(broker.port)
    try:
        for _round in range(office + 1):
            for kid in fake_ids:
                batch = wire.BatchAck(config.device.id, time.time(), tuple(
                    wire.AckItem(r.record_id, r.sha256) for r in records))
                attacker.publish(f"bhxh/devices/{config.device.id}/acks",
                                 wire.encode_batch_ack(acksig.sign(rogue, batch, kid)))
        wait_for(lambda: device_dead_letters(config)["forged"]
                 >= forged + 3 * (office + 1), 20, "the forged acks refused")
    finally:
        attacker.close()
    assert device.running()
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.WARN
    assert new_id in found.summary, found.summary
    assert new_id in found.next_step, found.next_step


def test_eight_forged_ids_named_often_do_not_reset_the_office_count():
    """The same, on what sync writes (central_key.note_refused_ack, as the publisher
    calls it per refused ack): the office's key named 5 times, then 6 forged acks
    naming one made-up id, 6 naming another, ... for 8 ids, then the office's next
    ack. (Eight ids named in turn keep evicting each other: the attacker names them
    one after the other.)"""
    office = "0f" * 8
    value, at = "{}", 1000.0
    OLD = ["aa" * 8]  # noqa: N806 - the key the device believes
    for _ in range(5):
        at += 1
        value = central_key.note_refused_ack(value, office, at, 1, OLD)
    for i in range(central_key.MAX_NAMED_KEYS):
        for _ in range(6):
            at += 1
            value = central_key.note_refused_ack(value, f"{0xbad0 + i:016x}", at, 1, OLD)
    at += 1
    value = central_key.note_refused_ack(value, office, at, 1, OLD)
    named = central_key.refused_acks(value).keys
    assert named[office][0] == 6, named


def test_an_old_flood_lets_one_forged_ack_hide_the_office_key_again(
        tmp_path, broker, services):
    _old_key, old_pub, _old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, _new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    rogue_key, _rogue_pub, _rogue_id = openssl_ed25519(tmp_path / "keys", "rogue")
    _spare_key, spare_pub, _spare_id = openssl_ed25519(tmp_path / "keys", "spare")
    config_file = write_config_file(tmp_path, make_config(tmp_path, broker.port,
                                                          signed=False))
    etc = tmp_path / "etc"
    assert provision(config_file, etc, str(old_pub))[0] == 0
    config = config_mod.load(config_file)
    device = services(run_publisher, config)
    records = enqueue(config, 2)
    topic = f"bhxh/devices/{config.device.id}/acks"
    rogue = acksig.load_private_key(rogue_key)

    def forge(attacker: Attacker, kid: str) -> None:
        batch = wire.BatchAck(config.device.id, time.time(), tuple(
            wire.AckItem(r.record_id, r.sha256) for r in records))
        attacker.publish(topic, wire.encode_batch_ack(acksig.sign(rogue, batch, kid)))

    # Months ago: a flood naming as many made-up ids as the device keeps, 5 acks each
    # (one id after the other).
    attacker = Attacker(broker.port)
    try:
        # Sync subscribes a moment after it starts; acks published before that reach
        # nobody (a CI run counted 56 of 60). Junk first, until sync sets one aside.
        probe(lambda: attacker.publish(topic, b"["),
              lambda: device_dead_letters(config).get("total", 0), "sync")
        for i in range(central_key.MAX_NAMED_KEYS):
            for _ in range(5):
                forge(attacker, f"{0x01d0000 + i:016x}")
        wait_for(lambda: device_dead_letters(config).get("forged", 0)
                 == 5 * central_key.MAX_NAMED_KEYS, 20,
                 "the old flood refused")
    finally:
        attacker.close()
    time.sleep(0.05)
    # Since then the technician changed the key file (a spare key added): the doctor
    # no longer speaks of that flood.
    assert provision(config_file, etc, "--add", str(spare_pub))[0] == 0
    assert doctor.check_central_key(config).verdict is Verdict.OK

    # Today: the office signs with its new key, which this device lacks.
    receiver = services(run_receiver, config_mod.with_overrides(
        config, central={"signing_key": str(new_key)}))
    wait_for(lambda: refused_ack_keys(config).get(new_id, (0, 0.0))[0] >= 2, 30,
             "the new key's acks refused twice")
    receiver.stop()
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.WARN and new_id in found.summary, found.summary
    forged = device_dead_letters(config)["forged"]

    # One forged ack naming another id (red team 15's attack).
    attacker = Attacker(broker.port)
    try:
        forge(attacker, "00000000000a11ce")
        wait_for(lambda: device_dead_letters(config)["forged"] == forged + 1, 15,
                 "the forged ack refused")
    finally:
        attacker.close()
    assert device.running()
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.WARN
    assert new_id in found.summary, found.summary
    assert new_id in found.next_step, found.next_step
