"""Red team 17 on issue 12 and commit 7b913c0: refused acks are counted "since the key
file's last change", which sync and the doctor both read as the ctime of the file
mqtt.central_public_key names (Path.stat, through a symlink).

A key file reached through a symlink that a deployment swaps (config management
keeps versions side by side and points `central.pem` at the current one, as
Kubernetes ConfigMaps and `current -> release-N` layouts do) changes without any
ctime changing: the target is a file written earlier. Sync notices (the inode
differs), reads the office's new key and delivers. The doctor's count of refused
acks, `sync_dead_letters.at > st_ctime` of the new target, then takes in every ack
refused before the switch, as long as the new file was written before them, and
never lets go of them: the technician who installed the key as told still reads
"N ack(s) since <when the file was written> were signed by none of them ... add the
new one", and so does the office in the heartbeat, for as long as those rows are
kept. (The named ids, keyed by the exact ctime, are rightly not shown.)

Real mosquitto, the receiver's and sync's own run functions, keys made by OpenSSL.
"""

from __future__ import annotations

import os

import pytest

from appliance.central.receiver import run_receiver
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from appliance.system import doctor
from appliance.system.doctor import Verdict
from tests.helpers.central_keys import ed25519 as openssl_ed25519
from tests.helpers.central_keys import refused_ack_keys
from tests.helpers.sync_rig import (
    all_delivered,
    device_dead_letters,
    enqueue,
    make_config,
    wait_for,
)

pytestmark = pytest.mark.timeout(40)


def test_a_symlinked_key_file_switched_to_the_new_key_clears_the_warning(
        tmp_path, broker, services):
    _old_key, old_pub, _old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    # Both versions of the device's key file, made ahead (the key change's first step
    # prepared by the deployment), and the link the configuration names.
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "central-v1.pem").write_bytes(old_pub.read_bytes())
    (etc / "central-v2.pem").write_bytes(old_pub.read_bytes() + new_pub.read_bytes())
    link = etc / "central.pem"
    link.symlink_to("central-v1.pem")
    config = make_config(tmp_path, broker.port, signed=False,
                         central_public_key=str(link))

    # The office signs with its new key, which this device does not hold yet.
    receiver = services(run_receiver, config_mod.with_overrides(
        config, central={"signing_key": str(new_key)}))
    device = services(run_publisher, config)
    records = enqueue(config, 2)
    wait_for(lambda: refused_ack_keys(config).get(new_id, (0, 0.0))[0] >= 2, 30,
             "the new key's acks refused twice")
    found = doctor.check_central_key(config)
    assert found.verdict is Verdict.WARN and new_id in found.summary, found.summary

    # The deployment switches the link to the version with the new key.
    tmp_link = etc / "central.pem.new"
    tmp_link.symlink_to("central-v2.pem")
    os.replace(tmp_link, link)
    wait_for(lambda: all_delivered(config, records), 20, "delivery under the new key")
    receiver.stop()
    assert device.running()
    assert device_dead_letters(config)["forged"] >= 2

    found = doctor.check_central_key(config)
    assert new_id in found.summary  # believed now
    assert found.verdict is Verdict.OK, found.summary
