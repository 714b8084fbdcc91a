"""Red team 18 (issue 12, commit 3c62f78): the doctor's refused-ack count comes from
what sync counted under this very key file (central_key.RefusedAcks, keyed by the
file's ctime in ns). With a real receiver signing with the office's new key and a real
sync that was not given it:

- the doctor (the technician panel and the status heartbeat) WARNs, naming the key;
- a change of the file that leaves the office's key out (here a chmod: its ctime
  moves, what is believed does not) hid the WARN until the device's next try (the
  office acks again, sync refuses again, counting under the new ctime); since the
  counts are kept per set of believed keys, it does not hide it at all;
- once the technician adds the key with `appliance provision central-key --add`, with
  sync still running, the record is delivered and the doctor says OK and stays OK.

Real mosquitto, the services' own run functions, OpenSSL keys, the technician's own
`appliance provision central-key`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from appliance.system import doctor
from appliance.system.doctor import Verdict
from tests.helpers.central_keys import ed25519 as openssl_ed25519
from tests.helpers.central_keys import provision
from tests.helpers.sync_rig import (
    all_delivered,
    assert_exactly_once,
    enqueue,
    make_config,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(60)


def test_doctor_follows_the_key_change_with_sync_running(tmp_path, broker, services):
    _old_key, old_pub, old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    config_file = write_config_file(tmp_path, make_config(
        tmp_path, broker.port, signed=False, central={"signing_key": str(new_key)}))
    assert provision(config_file, tmp_path / "etc", str(old_pub))[0] == 0
    config = config_mod.load(config_file)
    key_file = Path(config.mqtt.central_public_key)

    def warns() -> bool:
        found = doctor.check_central_key(config)
        return found.verdict is Verdict.WARN and new_id in found.summary

    receiver = services(run_receiver, config)
    device = services(run_publisher, config)
    records = enqueue(config, 1)
    wait_for(warns, 20, "the doctor naming the office's new key")
    assert not all_delivered(config, records)

    # A change that leaves the office's key out: the WARN stays, and so it does
    # at the next try.
    os.chmod(key_file, 0o640)
    assert warns(), doctor.check_central_key(config).summary
    time.sleep(2 * config.mqtt.ack_timeout_seconds)
    assert warns(), doctor.check_central_key(config).summary
    assert not all_delivered(config, records)

    # The technician adds the key, sync running: delivered, OK, and OK it stays.
    rc, out = provision(config_file, tmp_path / "etc", "--add", str(new_pub))
    assert rc == 0, out
    wait_for(lambda: all_delivered(config, records), 20, "delivery under the added key")
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.OK, found.summary
    assert old_id in found.summary and new_id in found.summary, found.summary
    time.sleep(3 * config.mqtt.ack_timeout_seconds)
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.OK, found.summary
    assert device.running() and receiver.running()
    assert_exactly_once(config, records)
