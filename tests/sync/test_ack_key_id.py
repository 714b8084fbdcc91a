"""An ack names the key that signed it, so a device that does not believe the key can
say which one it lacks; the name is a hint and never decides what is believed.

The keys are made by OpenSSL's command line and each key id is worked out from
OpenSSL's own DER output (tests/helpers/central_keys.py). The hostile acks are
written here by hand, as JSON and signed bytes an attacker (or a test holding a
central key) builds without this project's encoder, and published through a real
mosquitto on the device's ack topic.

- A device that missed the office's new key refuses its acks, and its dead letters
  and `appliance doctor` name the new key by the id OpenSSL gives it, in Vietnamese
  and English; `appliance provision central-key --add` then lets every record through
  without a sync restart, and the doctor is OK again.
- An ack naming the believed key but signed by another is still refused, and the
  doctor does not tell the technician to add a key; an ack signed by the believed key
  is believed whatever key it names, or none (a receiver from before the field), and
  the receipt the device keeps names the key that verified it.
- A malformed key id is a malformed message, set aside, never counted as forged.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from appliance.central.receiver import run_receiver
from appliance.store.outbox import OutboxState
from appliance.sync.publisher import run_publisher
from appliance.system import central_key, doctor
from appliance.system import config as config_mod
from appliance.system.doctor import Verdict
from appliance.web.i18n import Translations
from tests.helpers.central_keys import ed25519 as openssl_ed25519
from tests.helpers.central_keys import hand_built_batch_ack, provision
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(120)


def dead_letter_reasons(config: config_mod.Config, kind: str) -> list[str]:
    conn = sqlite3.connect(config.paths.database)
    try:
        return [r[0] for r in conn.execute(
            "SELECT reason FROM sync_dead_letters WHERE kind=? ORDER BY id", (kind,))]
    finally:
        conn.close()


def test_device_names_the_key_it_lacks_and_adding_it_lets_everything_through(
        tmp_path, broker, services):
    old_key, old_pub, old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    config_file = write_config_file(tmp_path, make_config(tmp_path, broker.port,
                                                          signed=False))
    etc = tmp_path / "etc"
    assert provision(config_file, etc, str(old_pub))[0] == 0
    config = config_mod.load(config_file)

    # The office switched to its new key; this device was never given it.
    services(run_receiver, config_mod.with_overrides(
        config, central={"signing_key": str(new_key)}))
    device = services(run_publisher, config)                   # never restarted below
    records = enqueue(config, 2)
    wait_for(lambda: device_dead_letters(config).get("forged", 0) >= 1, 30,
             "the new key's acks refused")
    assert not any(outbox_state(config, r.record_id) is OutboxState.DELIVERED
                   for r in records)
    reasons = dead_letter_reasons(config, "forged")
    assert (f"signed by central key {new_id}, which this device does not believe "
            f"(believed: {old_id})") in reasons[0], reasons

    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.WARN, found
    assert f"some naming key {new_id} (" in found.summary
    assert f"new key is among {new_id} (" in found.next_step
    words = Translations.load()
    assert f"ghi khóa {new_id}" in words.text("vi", found.summary_msg.key,
                                              **found.summary_msg.args)
    assert f"nằm trong số {new_id} (" in words.text("vi", found.next_msg.key,
                                                   **found.next_msg.args)
    assert f"is among {new_id} (" in words.text("en", found.next_msg.key,
                                                **found.next_msg.args)

    # The technician adds the key the doctor named: everything goes, once.
    rc, said = provision(config_file, etc, "--add", str(new_pub))
    assert rc == 0 and f"2 central key(s): {old_id}, {new_id}" in said, said
    more = enqueue(config, 1)
    wait_for(lambda: all_delivered(config, records + more), 30,
             "delivery once the named key is believed")
    assert device.running()
    assert_exactly_once(config, records + more)
    assert_no_false_delivery(config)
    assert doctor.check_central_key(config).verdict is Verdict.OK


def test_the_key_id_is_a_hint_and_never_what_is_believed(tmp_path, broker, services):
    believed_key, believed_pub, believed_id = openssl_ed25519(tmp_path / "keys", "central")
    rogue_key, _rogue_pub, rogue_id = openssl_ed25519(tmp_path / "keys", "rogue")
    config = make_config(tmp_path, broker.port, signed=False, ack_timeout_seconds=60.0,
                         central_public_key=str(believed_pub))
    device = services(run_publisher, config)        # no receiver: records wait for acks
    records = enqueue(config, 3)
    wait_for(lambda: all(outbox_state(config, r.record_id) is OutboxState.SENDING
                         for r in records), 30, "the records sent")
    topic = f"{config.mqtt.topic_prefix}/devices/{config.device.id}/acks"
    pairs = [(r.record_id, r.sha256) for r in records]
    attacker = Attacker(broker.port)
    try:
        # Signed by a rogue key, naming the believed one: refused, and the doctor does
        # not send the technician after a key.
        attacker.publish(topic, hand_built_batch_ack(rogue_key, config.device.id, pairs,
                                          kid=believed_id))
        wait_for(lambda: device_dead_letters(config).get("forged", 0) == 1, 15,
                 "the rogue ack refused")
        assert f"names believed central key {believed_id}" in \
            dead_letter_reasons(config, "forged")[0]
        found = doctor.check_central_key(config)
        assert found.verdict is Verdict.WARN and "naming key" not in found.summary

        # Malformed key ids: set aside as malformed, never as forged.
        for kid in ("", "ZZ", believed_id.upper(), believed_id + "0", 5, None, [believed_id]):
            attacker.publish(topic, hand_built_batch_ack(believed_key, config.device.id, pairs[:1],
                                              kid=kid))
        wait_for(lambda: device_dead_letters(config).get("malformed", 0) == 7, 15,
                 "the malformed key ids set aside")
        assert all("'kid' is not a key id" in r for r in
                   dead_letter_reasons(config, "malformed")), \
            dead_letter_reasons(config, "malformed")
        assert not any(outbox_state(config, r.record_id) is OutboxState.DELIVERED
                       for r in records)

        # Signed by the believed key: believed, naming another key or none.
        attacker.publish(topic, hand_built_batch_ack(believed_key, config.device.id, pairs[:1],
                                          kid=rogue_id))
        attacker.publish(topic, hand_built_batch_ack(believed_key, config.device.id, pairs[1:2]))
        wait_for(lambda: all_delivered(config, records[:2]), 15,
                 "the genuinely signed acks believed")
    finally:
        attacker.close()
    # Each receipt kept names the key that verified it, not the key the ack named.
    conn = sqlite3.connect(config.paths.database)
    try:
        kept = [json.loads(conn.execute("SELECT ack_json FROM outbox WHERE record_id=?",
                                        (r.record_id,)).fetchone()[0]) for r in records[:2]]
    finally:
        conn.close()
    assert [k["kid"] for k in kept] == [believed_id, believed_id]
    assert outbox_state(config, records[2].record_id) is OutboxState.SENDING
    assert device_dead_letters(config).get("forged", 0) == 1
    assert device.running()


def test_refused_acks_are_counted_per_believed_keys_and_ids_kept_first_come():
    """What the device keeps of the acks it refused. The kid is unsigned, so a forger
    names what it likes as often as it likes: nothing is evicted (the office's key,
    once named, stays whatever comes after), ids past the limit are only counted.
    Counts go on while the same keys are believed, whatever else changed the file (a
    chmod, red team 18); they start afresh when other keys are believed. A state not
    as sync writes it is read as nothing."""
    office, change, old = "0f" * 8, 1_764_000_000_123_456_789, ["aa" * 8]
    value = ""
    for i in range(5):
        value = central_key.note_refused_ack(value, office, 1000.0 + i, change, old)
    value = central_key.note_refused_ack(value, "", 1500.0, change, old)  # named none
    for i in range(2000):
        for _ in range(3):
            value = central_key.note_refused_ack(value, f"{i:016x}", 2000.0 + i, change, old)
    counted = central_key.refused_acks(value)
    assert counted is not None and counted.count == 5 + 1 + 6000
    assert counted.believed == tuple(old)
    assert len(counted.keys) == central_key.MAX_NAMED_KEYS
    assert counted.keys[office] == (5, 1004.0)
    assert counted.keys[f"{0:016x}"] == (3, 2000.0)
    assert f"{1999:016x}" not in counted.keys
    assert counted.more == 3 * (2000 - central_key.MAX_NAMED_KEYS + 1)
    value = central_key.note_refused_ack(value, office, 9000.0, change, old)
    assert central_key.refused_acks(value).keys[office] == (6, 9000.0)
    # The file changed, the keys did not (a chmod): counted on, from the same time.
    value = central_key.note_refused_ack(value, office, 9100.0, change + 1, old)
    counted = central_key.refused_acks(value)
    assert (counted.since, counted.count, counted.keys[office]) == (
        change, 5 + 1 + 6000 + 2, (7, 9100.0))
    # Other keys believed: counted afresh from their change.
    fixed = sorted([*old, office])
    after = central_key.refused_acks(central_key.note_refused_ack(
        value, "ab" * 8, 9500.0, change + 4, fixed))
    assert after == central_key.RefusedAcks(change + 4, 1, {"ab" * 8: (1, 9500.0)}, 0,
                                            tuple(fixed))
    for junk in ("", "[]", "null", "{", '{"keys": {}}', '{"since": 1, "count": 0, "more": 0}',
                 '{"since": 1.5, "count": 0, "more": 0, "keys": {}}',
                 '{"since": true, "count": 0, "more": 0, "keys": {}}'):
        assert central_key.refused_acks(junk) is None, junk
    for entry in ('[true, 1]', '["1", 1]', '[1]', '[0, 1]', '[1, true]'):
        found = central_key.refused_acks('{"since": 1, "count": 1, "more": 0, "keys": '
                                         '{"0123456789abcdef": ' + entry
                                         + ', "0123456789ABCDEF": [1, 1]}}')
        assert found is not None and found.keys == {}, entry
