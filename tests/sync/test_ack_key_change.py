"""The central office changes its ack signing key, and no record waits or is lost.

The keys and certificates are made by OpenSSL's command line, not by this project's
code, and each key's id is worked out here from OpenSSL's own DER output, so the
device's reading of the key file is checked against an independent maker.

- A device's mqtt.central_public_key may hold several keys (PEM blocks as `cat` joins
  them, public keys and certificates mixed): acks signed by any are believed. A file
  holding a private key, a key of another kind, no key or too many is refused with a
  message that says so, and `appliance doctor` names the key ids a device believes.
- Through a real broker: records delivered under the old key, the receiver switched to
  the new key, records delivered under it, each exactly once; `--report` lists both
  keys. A device that does not yet believe the new key marks nothing delivered, counts
  the acks as forged, and delivers everything once its file holds the key.
- A receiver never makes a new key for a database whose acks devices already took: a
  real `appliance central` exits 2 with a message naming the missing file, and makes
  no key file.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from appliance.central import report as central_report
from appliance.central.db import connect as central_connect
from appliance.central.receiver import run_receiver
from appliance.store.outbox import OutboxState
from appliance.sync import acksig
from appliance.sync.publisher import run_publisher
from appliance.system import central_key, doctor
from appliance.system import config as config_mod
from appliance.system.doctor import Verdict
from appliance.web.i18n import Translations
from tests.helpers.central_keys import ed25519 as openssl_ed25519
from tests.helpers.central_keys import openssl, provision
from tests.helpers.sync_rig import (
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    start_central,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(120)


def openssl_certificate(private: Path, out: Path) -> Path:
    openssl("req", "-x509", "-new", "-key", str(private), "-subj", "/CN=bhxh-central-acks",
            "-days", "30", "-out", str(out))
    return out


def bundle(path: Path, *parts: Path) -> Path:
    """Files joined as `cat` joins them, with a comment line before each."""
    path.write_bytes(b"".join(b"# " + p.name.encode() + b"\n" + p.read_bytes()
                              for p in parts))
    return path


def signed_by(config: config_mod.Config, key: Path, believed: Path) -> config_mod.Config:
    return config_mod.with_overrides(config, mqtt={"central_public_key": str(believed)},
                                     central={"signing_key": str(key)})


# --- the device's key file --------------------------------------------------------------


def test_key_file_reads_openssl_keys_and_certificates_and_refuses_the_rest(tmp_path):
    old_key, old_pub, old_id = openssl_ed25519(tmp_path, "old")
    new_key, _new_pub, new_id = openssl_ed25519(tmp_path, "new")
    new_crt = openssl_certificate(new_key, tmp_path / "new.crt")
    both = bundle(tmp_path / "both.pem", old_pub, new_crt, old_pub)   # old twice: once

    keys = central_key.load(both)
    assert [central_key.key_id(k) for k in keys] == [old_id, new_id]
    assert acksig.TrustedKeys.load(both).ids == [old_id, new_id]
    # A receiver's key made by this project gets the same id from both sides.
    ours = acksig.generate_key(tmp_path / "ours.key", tmp_path / "ours.pub")
    assert central_key.key_id(central_key.load(tmp_path / "ours.pub")[0]) == \
        acksig.key_id(ours.public_key())

    ec_key = tmp_path / "ec.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(ec_key))
    (tmp_path / "ec.pub").write_bytes(openssl("pkey", "-in", str(ec_key), "-pubout"))
    many = []
    for i in range(central_key.MAX_KEYS + 1):
        many.append(openssl_ed25519(tmp_path / "many", f"k{i}")[1])
    truncated = tmp_path / "cut.pem"
    truncated.write_bytes(old_pub.read_bytes()[:-30])
    refused = {
        "PRIVATE KEY block has no place": bundle(tmp_path / "p.pem", old_pub, old_key),
        "must be Ed25519": bundle(tmp_path / "ec.pem", old_pub, tmp_path / "ec.pub"),
        "the file is damaged": truncated,
        f"at most {central_key.MAX_KEYS}": bundle(tmp_path / "many.pem", *many),
        "cannot read": tmp_path / "absent.pem",
    }
    for words, path in refused.items():
        with pytest.raises(acksig.AckKeyError, match=words):
            acksig.load_public_keys(path)


def test_doctor_names_the_keys_a_device_believes(tmp_path):
    _old_key, old_pub, old_id = openssl_ed25519(tmp_path, "old")
    new_key, _new_pub, new_id = openssl_ed25519(tmp_path, "new")
    both = bundle(tmp_path / "both.pem", old_pub, openssl_certificate(new_key,
                                                                      tmp_path / "new.crt"))
    base = config_mod.with_overrides(config_mod.Config(), mqtt={"host": "127.0.0.1"})
    words = Translations.load()

    found = doctor.check_central_key(config_mod.with_overrides(
        base, mqtt={"central_public_key": str(both)}))
    assert found.verdict is Verdict.OK
    assert f"2 key(s): {old_id}, {new_id}" in found.summary
    said = words.text("vi", found.summary_msg.key, **found.summary_msg.args)
    assert f"bằng 2 khóa: {old_id}, {new_id}" in said

    unset = doctor.check_central_key(base)
    assert unset.verdict is Verdict.WARN and "without a signature check" in unset.summary
    broken = doctor.check_central_key(config_mod.with_overrides(
        base, mqtt={"central_public_key": str(bundle(tmp_path / "bad.pem", new_key))}))
    assert broken.verdict is Verdict.FAIL and "PRIVATE KEY" in broken.summary
    assert words.text("vi", broken.next_msg.key).startswith("Cài lại tệp khóa công khai")
    assert "central_key" in doctor.LOCAL_CHECKS   # so the status heartbeat carries it


# --- through a real broker ------------------------------------------------------------


def test_central_changes_key_and_no_record_waits(tmp_path, broker, services, caplog):
    old_key, old_pub, old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    both = bundle(tmp_path / "keys" / "both.pem", old_pub, new_pub)
    config = make_config(tmp_path, broker.port, signed=False)

    # 1. The devices already believe both keys; the receivers still sign with the old.
    receiver = services(run_receiver, signed_by(config, old_key, both))
    pub = services(run_publisher, signed_by(config, old_key, both))
    before = enqueue(config, 3)
    wait_for(lambda: all_delivered(config, before), 30, "delivery under the old key")
    receiver.stop()

    # 2. The receivers switch to the new key: its acks are believed at once.
    caplog.set_level(logging.INFO)
    services(run_receiver, signed_by(config, new_key, both))
    after = enqueue(config, 3)
    wait_for(lambda: all_delivered(config, after), 30, "delivery under the new key")
    said = caplog.text
    assert f"signing acks with key {new_id}" in said
    assert f"key {new_id} is new to this database, whose acks were signed by {old_id}" \
        in said
    assert_exactly_once(config, before + after)
    assert_no_false_delivery(config)
    assert device_dead_letters(config).get("forged", 0) == 0
    assert pub.running()

    # 3. --report lists both keys, the new one last used.
    conn = central_connect(config.central.database)
    try:
        listed = central_report.build(conn)["signing_keys"]
    finally:
        conn.close()
    assert [k["key_id"] for k in listed] == [new_id, old_id]
    assert listed[0]["public_key"] == new_pub.read_text()


def test_device_not_yet_believing_the_new_key_keeps_its_records(tmp_path, broker, services):
    _old_key, old_pub, _old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, new_pub, _new_id = openssl_ed25519(tmp_path / "keys", "new")
    config = make_config(tmp_path, broker.port, signed=False, ack_timeout_seconds=2.0)

    services(run_receiver, signed_by(config, new_key, new_pub))
    device = services(run_publisher, signed_by(config, new_key, old_pub))   # old only
    records = enqueue(config, 3)
    wait_for(lambda: device_dead_letters(config).get("forged", 0) >= 2, 30,
             "the new key's acks refused, twice")
    assert not any(outbox_state(config, r.record_id) is OutboxState.DELIVERED
                   for r in records)
    assert device.running()
    device.stop()

    # Its technician adds the new key to the file: everything goes, once.
    both = bundle(tmp_path / "keys" / "both.pem", old_pub, new_pub)
    services(run_publisher, signed_by(config, new_key, both))
    wait_for(lambda: all_delivered(config, records), 30, "delivery once the key is believed")
    assert_exactly_once(config, records)
    assert_no_false_delivery(config)


def _one_record_acknowledged(tmp_path, broker, services):
    """A device and a receiver (signing with a key made for the test, signing_key set)
    after one record went through; the receiver stopped, the device still running."""
    config = make_config(tmp_path, broker.port)
    receiver = services(run_receiver, config)
    services(run_publisher, config)
    records = enqueue(config, 1)
    wait_for(lambda: all_delivered(config, records), 30, "a first record acknowledged")
    receiver.stop()
    return config, records


def test_receiver_never_makes_a_key_for_a_database_that_gave_acks(tmp_path, broker, services):
    config, records = _one_record_acknowledged(tmp_path, broker, services)

    key = Path(config.central.signing_key)
    kept = key.read_bytes()
    key.unlink()
    config_file = write_config_file(tmp_path, config)
    log = tmp_path / "central.log"
    proc = start_central(config_file, log)
    try:
        assert proc.wait(30) == 2, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
    said = log.read_text(errors="replace")
    assert f"the ack signing key {key} is missing" in said
    assert "central database holds acks signed by key " in said
    assert not key.exists()

    # The key put back from the backup: the receiver starts and signs as before.
    key.write_bytes(kept)
    more = enqueue(config, 1)
    services(run_receiver, config)
    wait_for(lambda: all_delivered(config, more), 30, "delivery with the key put back")
    assert_exactly_once(config, records + more)


def test_database_from_before_keys_were_noted_also_refuses_a_new_key(tmp_path, broker,
                                                                      services):
    config, _records = _one_record_acknowledged(tmp_path, broker, services)
    conn = central_connect(config.central.database)
    try:
        conn.execute("DELETE FROM signing_keys")   # as a receiver before this change left it
    finally:
        conn.close()
    Path(config.central.signing_key).unlink()
    with pytest.raises(acksig.AckKeyError, match="records acknowledged before keys"):
        run_receiver(config, threading.Event())
    assert not Path(config.central.signing_key).exists()


# --- the technician's step: appliance provision central-key ---------------------------


def test_provisioned_key_change_needs_no_sync_restart(tmp_path, broker, services):
    """The README's four steps through the technician's command: the device's sync
    keeps running from the first record to the last, and nothing waits."""
    old_key, old_pub, old_id = openssl_ed25519(tmp_path / "keys", "old")
    new_key, new_pub, new_id = openssl_ed25519(tmp_path / "keys", "new")
    config_file = write_config_file(tmp_path, make_config(tmp_path, broker.port,
                                                          signed=False))
    etc = tmp_path / "etc"
    assert provision(config_file, etc, str(old_pub)) == (
        0, provision(config_file, etc, str(old_pub))[1])   # re-run: the same
    config = config_mod.load(config_file)
    assert config.mqtt.central_public_key == str(etc / "central-acks.pem")
    assert central_key.load(etc / "central-acks.pem")[0].public_bytes_raw() == \
        central_key.load(old_pub)[0].public_bytes_raw()

    receiver = services(run_receiver, signed_by(config, old_key, old_pub))
    device = services(run_publisher, config)              # never restarted below
    first = enqueue(config, 2)
    wait_for(lambda: all_delivered(config, first), 30, "delivery under the old key")

    rc, said = provision(config_file, etc, "--add", str(new_pub))     # step 2
    assert rc == 0 and f"2 central key(s): {old_id}, {new_id}" in said, said
    receiver.stop()                                                   # step 3
    receiver = services(run_receiver, signed_by(config, new_key, new_pub))
    second = enqueue(config, 2)
    wait_for(lambda: all_delivered(config, second), 30, "delivery under the new key")
    rc, said = provision(config_file, etc, "--remove", old_id)        # step 4
    assert rc == 0 and f"1 central key(s): {new_id}" in said, said
    third = enqueue(config, 2)
    wait_for(lambda: all_delivered(config, third), 30, "delivery after the old key left")

    assert device.running()
    assert device_dead_letters(config).get("forged", 0) == 0
    assert_exactly_once(config, first + second + third)
    assert_no_false_delivery(config)


def test_provisioning_refuses_a_bad_key_file_and_changes_nothing(tmp_path):
    old_key, old_pub, old_id = openssl_ed25519(tmp_path / "keys", "old")
    config_file = write_config_file(tmp_path, make_config(tmp_path, 1, signed=False))
    etc = tmp_path / "etc"
    assert provision(config_file, etc, str(old_pub))[0] == 0
    installed = (etc / "central-acks.pem").read_bytes()
    settings = config_file.read_bytes()
    many = [openssl_ed25519(tmp_path / "many", f"k{i}")[1]
            for i in range(central_key.MAX_KEYS)]
    for argv, words in (
            ((str(bundle(tmp_path / "p.pem", old_pub, old_key)),), "PRIVATE KEY block"),
            (("--add", str(bundle(tmp_path / "m.pem", *many))), "at most 8"),
            (("--remove", old_id), "the only key this device believes"),
            (("--remove", "0" * 16), "is not a key this device believes"),
            ((), "give the central office's public key FILE")):
        rc, said = provision(config_file, etc, *argv)
        assert rc == 1 and words in said and "nothing was changed" in said, (argv, said)
        assert (etc / "central-acks.pem").read_bytes() == installed
        assert config_file.read_bytes() == settings


def test_a_chain_after_the_centrals_certificate(tmp_path):
    """`cat central.crt ca.crt`: an EC CA's key can sign no ack and is passed over (red
    team 9's test has it through a real sync); an Ed25519 CA's key could, so it is
    believed like any key in the file, and provisioning says so."""
    ca_key, _ca_pub, ca_id = openssl_ed25519(tmp_path, "ca")
    ca_crt = openssl_certificate(ca_key, tmp_path / "ca.crt")
    central, _central_pub, central_id = openssl_ed25519(tmp_path, "central")
    csr = tmp_path / "central.csr"
    openssl("req", "-new", "-key", str(central), "-subj", "/CN=bhxh-central-acks-2026",
            "-out", str(csr))
    leaf = tmp_path / "central.crt"
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "30", "-out", str(leaf))
    chain = bundle(tmp_path / "chain.pem", leaf, ca_crt)
    assert [b.key_id for b in central_key.read(chain)] == [central_id, ca_id]
    assert [b.ca for b in central_key.read(chain)] == [False, True]
    config_file = write_config_file(tmp_path, make_config(tmp_path, 1, signed=False))
    rc, said = provision(config_file, tmp_path / "etc", str(chain))
    assert rc == 0 and "warn" in said.lower(), said
    assert f"{ca_id} came as a CA's certificate" in said
    rc, said = provision(config_file, tmp_path / "etc", "--remove", ca_id)
    assert rc == 0 and f"1 central key(s): {central_id}" in said, said
