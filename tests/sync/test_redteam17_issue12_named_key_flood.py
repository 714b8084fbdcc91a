"""Red team 17 on issue 12 and commit 7b913c0 ("Key ids named by refused acks: kept
first come, never evicted, counted from the key file's last change, all listed by the
doctor").

The device's state keeps the office's new key id for good (REFUSED_ACKS_STATE_KEY,
never evicted), but `appliance doctor` shows it only when `forged`, the number of
ROWS of kind 'forged' in sync_dead_letters since the key file's ctime, is not 0
(doctor._refused_acks_since; `if forged and named`). Those rows are trimmed:
outbox.put_dead_letter keeps the last DEAD_LETTERS_KEPT (10,000) dead letters of any
kind. Anyone who can publish on the device's ack topic (the threat red teams 15 and
16 used) sends 11,000 one-byte junk messages (sync sets them aside in about 5 s);
the office's refused acks' rows go, and the doctor, the technician's panel and the
status heartbeat say central_key OK ("acks believed from 1 key(s)") while the device
refuses every ack of the office and its state still names the office's key. The
counter sync.dead_letters.forged, which is never trimmed, still says 1.

Real mosquitto, sync's own run function, keys made by OpenSSL, the technician's own
`appliance provision central-key`.
"""

from __future__ import annotations

import time

import pytest

from appliance.store import outbox
from appliance.sync import acksig, wire
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from appliance.system import doctor
from appliance.system.doctor import Verdict
from tests.helpers.central_keys import ed25519 as openssl_ed25519
from tests.helpers.central_keys import provision, refused_ack_keys
from tests.helpers.sync_rig import (
    Attacker,
    device_dead_letters,
    enqueue,
    make_config,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(60)

JUNK = outbox.DEAD_LETTERS_KEPT + 1000


def test_junk_on_the_ack_topic_does_not_hide_the_office_key(tmp_path, broker, services):
    _old_key, old_pub, _old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, _new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    config_file = write_config_file(tmp_path, make_config(tmp_path, broker.port,
                                                          signed=False))
    assert provision(config_file, tmp_path / "etc", str(old_pub))[0] == 0
    config = config_mod.load(config_file)
    device = services(run_publisher, config)
    records = enqueue(config, 1)
    topic = wire.acks_topic(config.mqtt.topic_prefix, config.device.id)

    attacker = Attacker(broker.port)
    try:
        # The office's ack, signed with its new key, which this device was not given.
        office = acksig.load_private_key(new_key)
        batch = wire.BatchAck(config.device.id, time.time(), tuple(
            wire.AckItem(r.record_id, r.sha256) for r in records))
        deadline = time.monotonic() + 20
        while new_id not in refused_ack_keys(config):  # until sync has subscribed
            assert time.monotonic() < deadline, "the office's ack never refused"
            attacker.publish(topic, wire.encode_batch_ack(acksig.sign(office, batch)))
            time.sleep(0.3)
        found = doctor.check_central_key(config)
        assert found.verdict is Verdict.WARN and new_id in found.summary, found.summary
        forged = device_dead_letters(config)["forged"]

        # Junk, one byte each, pipelined.
        window = []
        for _ in range(JUNK):
            window.append(attacker.client.publish(topic, b"[", qos=1))
            if len(window) >= 16:
                window.pop(0).wait_for_publish(10)
        for info in window:
            info.wait_for_publish(10)
        wait_for(lambda: device_dead_letters(config).get("malformed", 0) >= JUNK, 40,
                 "the junk set aside")
    finally:
        attacker.close()

    assert device.running()
    # What sync keeps still says it all.
    assert new_id in refused_ack_keys(config)
    assert device_dead_letters(config)["forged"] == forged
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.WARN, found.summary
    assert new_id in found.summary, found.summary
