"""Red team 19 (issue 12, commit cf00ddc): refused-ack counts are now kept per set of
believed key ids (central_key.RefusedAcks.believed), read by the doctor through
RefusedAcks.under(). doctor._refused_acks_since's docstring says what that keeps: "a
chmod of the file keeps the WARN, so does an `--add` of a key other than the one the
refused acks named". RefusedAcks.under() does not: any other set of believed keys
starts the counts afresh, so the doctor says OK the moment the file holds one more
key, whichever key it is.

The scene (red team 18's, one step on): the office signs with its new key, the device
was not given it and refuses every ack, the doctor WARNs naming the new key. The
technician adds a key with `appliance provision central-key --add` - the wrong one
(an old backup, another office's key). The device still refuses every ack of the
office, yet the doctor (the panel, the status heartbeat) says OK "acks believed from
2 key(s)", and the technician leaves: the WARN comes back only once the office's next
ack is refused, after the record's back-off. Sync is stopped before the `--add`, so
that no new refusal (which would WARN again under the new set) races the look.

Real mosquitto, the services' own run functions, OpenSSL keys, the technician's own
`appliance provision central-key`.
"""

from __future__ import annotations

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
    enqueue,
    make_config,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(60)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "RefusedAcks.under() (appliance/system/central_key.py:94) counts afresh under "
    "any other set of believed keys, so `--add` of a key other than the one refused "
    "acks named turns the doctor's WARN into OK until the office's next ack is refused. "
    "Kept as a trade-off (doctor._refused_acks_since): the named ids are unsigned, and "
    "carrying them across a change of keys let an old flood of made-up ids hide the "
    "office's new key (red team 16)"))
def test_adding_some_other_key_keeps_the_warn_naming_the_offices_key(
        tmp_path, broker, services):
    _old_key, old_pub, old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, _new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    _other_key, other_pub, other_id = openssl_ed25519(tmp_path / "keys", "other")
    config_file = write_config_file(tmp_path, make_config(
        tmp_path, broker.port, signed=False, ack_timeout_seconds=1.0,
        central={"signing_key": str(new_key)}))
    assert provision(config_file, tmp_path / "etc", str(old_pub))[0] == 0
    config = config_mod.load(config_file)
    assert Path(config.mqtt.central_public_key).is_file()

    def warns() -> bool:
        found = doctor.check_central_key(config)
        return found.verdict is Verdict.WARN and new_id in found.summary

    services(run_receiver, config)
    device = services(run_publisher, config)
    records = enqueue(config, 1)
    if not _waited(warns, 20):
        raise RuntimeError("setup: the doctor never named the office's new key")
    device.stop()  # no refusal from now on: what the doctor says is what it kept
    assert not all_delivered(config, records)

    # The wrong key added: the office's acks are still refused by this set.
    rc, out = provision(config_file, tmp_path / "etc", "--add", str(other_pub))
    if rc != 0:
        raise RuntimeError(out)
    found = doctor.check_central_key(config)
    if not (old_id in found.summary and other_id in found.summary):
        raise RuntimeError(f"setup: the file does not hold both keys: {found.summary}")
    assert found.verdict is Verdict.WARN and new_id in found.summary, (
        f"the office's key {new_id} is still not believed, yet the doctor says "
        f"{found.verdict.name}: {found.summary}")


def _waited(predicate, timeout: float) -> bool:
    try:
        wait_for(predicate, timeout, "")
    except AssertionError:
        return False
    return True
