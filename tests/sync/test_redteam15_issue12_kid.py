"""Red team 15 on issue 12, item 2 and the "kid" hint (commit 0743671): an ack names the
key that signed it, outside the signature, so a device that does not believe that key
can say which one it lacks, and `appliance doctor` (and with it the technician panel
and the status heartbeat) tells the technician which key to add.

The hint is written by whoever publishes, and the device keeps only the last one it
refused (device_state sync.unbelieved_central_key, overwritten by each forged ack that
names a key it does not hold). During the office's key change, the receivers' genuine
acks name the new key N; one forged ack that names any other id A, published by
anyone who can publish on the device's ack topic, replaces N. The doctor then says
"some naming key A" and "if the central office's new key has the id A, add it":
the id of the key the office really signs with is gone from the panel and the
heartbeat, and the only key the technician is told about is the attacker's. Records
meanwhile wait (nothing is lost), but the office cannot tell from the heartbeat which
devices miss its new key, which is what the kid was added for.

What holds here: a forged ack naming the device's own believed key, an old-format ack
without a kid, and a genuine ack whose kid was rewritten all end as before: what is
believed depends on the signature only.

Real mosquitto, the services' own run functions, keys made by OpenSSL's command line.
"""

from __future__ import annotations

import json

import pytest

from appliance.central.receiver import run_receiver
from appliance.store.outbox import OutboxState
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from appliance.system import doctor
from appliance.system.doctor import Verdict
from tests.helpers.central_keys import ed25519 as openssl_ed25519
from tests.helpers.central_keys import hand_built_batch_ack, provision
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(60)


def test_one_forged_kid_does_not_hide_the_key_the_office_signs_with(
        tmp_path, broker, services):
    _old_key, old_pub, _old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, _new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    rogue_key, _rogue_pub, rogue_id = openssl_ed25519(tmp_path / "keys", "rogue")
    config_file = write_config_file(tmp_path, make_config(tmp_path, broker.port,
                                                          signed=False))
    assert provision(config_file, tmp_path / "etc", str(old_pub))[0] == 0
    config = config_mod.load(config_file)

    # The office signs with its new key; this device was never given it.
    receiver = services(run_receiver, config_mod.with_overrides(
        config, central={"signing_key": str(new_key)}))
    services(run_publisher, config)
    records = enqueue(config, 2)
    wait_for(lambda: device_dead_letters(config).get("forged", 0) >= 1, 30,
             "the new key's acks refused")
    receiver.stop()  # its acks so far named the new key
    found = doctor.check_central_key(config)
    assert f"naming key {new_id}" in found.summary, found.summary
    forged = device_dead_letters(config)["forged"]

    # One forged ack, by anyone who may publish on the ack topic, naming another key.
    attacker = Attacker(broker.port)
    try:
        attacker.publish(f"bhxh/devices/{config.device.id}/acks", hand_built_batch_ack(
            rogue_key, config.device.id, [(records[0].record_id, records[0].sha256)],
            kid=rogue_id))
        wait_for(lambda: device_dead_letters(config)["forged"] == forged + 1, 15,
                 "the forged ack refused")
    finally:
        attacker.close()
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.WARN
    assert new_id in found.summary, found.summary
    assert new_id in found.next_step, found.next_step


def test_the_kid_never_changes_what_is_believed_or_counted(tmp_path, broker, services):
    """Holds: a rogue signature naming the believed key is forged; a genuine signature
    with no kid (an old receiver) or a kid rewritten to another id is believed once; a
    genuine ack replayed with a new kid after delivery changes nothing."""
    key, pub, key_id = openssl_ed25519(tmp_path / "keys", "central")
    rogue_key, _rogue_pub, rogue_id = openssl_ed25519(tmp_path / "keys", "rogue")
    config = make_config(tmp_path, broker.port, signed=False, ack_timeout_seconds=60.0,
                         central_public_key=str(pub))
    device = services(run_publisher, config)  # no receiver: the test acknowledges
    records = enqueue(config, 3)
    wait_for(lambda: all(outbox_state(config, r.record_id) is OutboxState.SENDING
                         for r in records), 30, "the records sent")
    topic = f"bhxh/devices/{config.device.id}/acks"
    pairs = [(r.record_id, r.sha256) for r in records]
    attacker = Attacker(broker.port)
    try:
        attacker.publish(topic, hand_built_batch_ack(rogue_key, config.device.id, pairs,
                                                     kid=key_id))
        wait_for(lambda: device_dead_letters(config).get("forged", 0) == 1, 15,
                 "the rogue ack refused")
        assert not any(outbox_state(config, r.record_id) is OutboxState.DELIVERED
                       for r in records)
        first = hand_built_batch_ack(key, config.device.id, pairs[:1])            # no kid at all
        attacker.publish(topic, first)
        attacker.publish(topic, hand_built_batch_ack(key, config.device.id, pairs[1:2],
                                                     kid=rogue_id))
        wait_for(lambda: all_delivered(config, records[:2]), 15, "the genuine acks")
        # The first genuine ack again, now naming the rogue key: believed, nothing new.
        replay = json.loads(first)
        replay["kid"] = rogue_id
        attacker.publish(topic, json.dumps(replay).encode())
        attacker.publish(topic, b"sentinel")
        wait_for(lambda: device_dead_letters(config).get("malformed", 0) == 1, 15,
                 "the sentinel")
    finally:
        attacker.close()
    assert outbox_state(config, records[2].record_id) is OutboxState.SENDING
    counts = device_dead_letters(config)
    assert counts == {"total": 2, "forged": 1, "malformed": 1}, counts
    assert device.running()
    # The doctor warns of the one forged ack and names no key to add: it named a
    # believed one.
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.WARN and "naming key" not in found.summary
