"""Red team 12 (issue 12): a central key taken off a device while sync runs.

Why: the README's key change ends with `appliance provision central-key --remove
OLD_ID` (the key "suspected leaked, or on schedule"), and says sync reads the file
again by itself. acksig.TrustedKeys (495ac80) reads the file again only when an ack
verifies under *none* of the keys it holds. After the change every genuine ack is
signed by the new key, which it holds, so nothing ever fails and the file is never
read again: the retired key stays believed in the running sync until it restarts. An
ack forged with the leaked old key then marks a record delivered that the central
office never received.

Real mosquitto, the real publisher and receiver loops (tests/helpers/sync_rig.py);
the file is replaced as provisioning replaces it (whole blocks, written to a
temporary file and renamed). The control: a key *never* in the file is refused.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.store.outbox import OutboxState
from appliance.sync import acksig, wire
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    Attacker,
    Service,
    ack_keys,
    all_delivered,
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

Start = Callable[[Callable[..., None], config_mod.Config], Service]


def _replace(path: Path, data: bytes) -> None:
    """As provisioning writes it (pki.atomic_write): a new file renamed over the old."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _forge(attacker: Attacker, config: config_mod.Config, key_file: Path,
           record: object) -> None:
    key = acksig.load_private_key(key_file)
    ack = acksig.sign(key, wire.Ack(record.record_id, record.sha256, time.time(),
                                    config.device.id))
    attacker.publish(wire.acks_topic("bhxh", config.device.id), wire.encode_ack(ack))


def _verdict(config: config_mod.Config, record: object, forged_before: int) -> OutboxState:
    """Wait until the device acted on the forged ack: delivered, or set aside."""
    wait_for(lambda: outbox_state(config, record.record_id) is OutboxState.DELIVERED
             or device_dead_letters(config).get("forged", 0) > forged_before, 15,
             "the device's verdict on the forged ack")
    return outbox_state(config, record.record_id)


def test_a_removed_key_is_no_longer_believed(
        tmp_path: Path, broker: MosquittoProcess, services: Start) -> None:
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=30.0)
    new_private, new_public = ack_keys(tmp_path / "keys")
    old_private, old_public = tmp_path / "keys" / "old.key", tmp_path / "keys" / "old.pub"
    acksig.generate_key(old_private, old_public)
    believed = tmp_path / "keys" / "central-acks.pem"
    _replace(believed, old_public.read_bytes() + new_public.read_bytes())
    config = config_mod.with_overrides(config, mqtt={"central_public_key": str(believed)})

    receiver = services(run_receiver, config)           # signs with the new key
    publisher = services(run_publisher, config)
    first = enqueue(config, 2)
    wait_for(lambda: all_delivered(config, first), 30, "delivery under the new key")

    # Step 4 of the README's key change: the old key off the device.
    _replace(believed, new_public.read_bytes())
    assert len(acksig.load_public_keys(believed)) == 1
    more = enqueue(config, 1)
    wait_for(lambda: all_delivered(config, more), 30, "a genuine ack after the removal")

    # The receiver away; a record on its way; an ack forged with the leaked old key.
    receiver.stop()
    attacker = Attacker(broker.port)
    try:
        waiting = enqueue(config, 1)[0]
        wait_for(lambda: outbox_state(config, waiting.record_id) is OutboxState.SENDING,
                 15, "the record sent")
        forged_before = device_dead_letters(config).get("forged", 0)
        _forge(attacker, config, old_private, waiting)
        state = _verdict(config, waiting, forged_before)
    finally:
        attacker.close()
    assert publisher.running()
    assert state is not OutboxState.DELIVERED, \
        "a record the central never received is marked delivered on an ack signed " \
        "by the key removed from the device's file"


def test_control_a_key_never_believed_is_refused(
        tmp_path: Path, broker: MosquittoProcess, services: Start) -> None:
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=30.0)
    stranger = tmp_path / "keys" / "stranger.key"
    acksig.generate_key(stranger)
    publisher = services(run_publisher, config)   # no receiver: nothing genuine comes
    attacker = Attacker(broker.port)
    try:
        waiting = enqueue(config, 1)[0]
        wait_for(lambda: outbox_state(config, waiting.record_id) is OutboxState.SENDING,
                 15, "the record sent")
        _forge(attacker, config, stranger, waiting)
        state = _verdict(config, waiting, 0)
    finally:
        attacker.close()
    assert publisher.running()
    assert state is not OutboxState.DELIVERED
    assert device_dead_letters(config).get("forged") == 1


def test_an_ack_while_the_key_file_is_written_in_place(tmp_path: Path) -> None:
    """A key file rewritten in place (an editor, `cat new.pub >> file`, not provisioning's
    rename): an ack of the new key that arrives while the file is half written is not
    believed and the keys in use stay; the same ack is believed once the file is whole,
    with no restart. An ack of the old key is believed throughout."""
    keys = tmp_path / "keys"
    old_private, old_public = keys / "old.key", keys / "old.pub"
    new_private, new_public = keys / "new.key", keys / "new.pub"
    keys.mkdir()
    acksig.generate_key(old_private, old_public)
    acksig.generate_key(new_private, new_public)
    believed = keys / "central-acks.pem"
    believed.write_bytes(old_public.read_bytes())
    trusted = acksig.TrustedKeys.load(believed)

    def ack(private: Path) -> wire.Ack:
        return acksig.sign(acksig.load_private_key(private),
                           wire.Ack("r-1", "a" * 64, 1.7e9, "kiosk-01"))

    whole = old_public.read_bytes() + new_public.read_bytes()
    with open(believed, "r+b") as fh:      # half of the new block written so far
        fh.seek(0)
        fh.write(whole[:len(whole) - 40])
        fh.flush()
    assert not trusted.verify(ack(new_private))
    assert trusted.verify(ack(old_private)), "the key in use was dropped"
    with open(believed, "r+b") as fh:
        fh.seek(0)
        fh.write(whole)
    assert trusted.verify(ack(new_private)), "the whole file was never read again"
    assert trusted.verify(ack(old_private))
    assert len(trusted.ids) == 2
