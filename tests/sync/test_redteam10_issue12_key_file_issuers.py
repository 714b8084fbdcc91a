"""Red team 10 (issue 12): the central key file's "issuer" rule and its re-read by sync.

central_key._issuers (f59f1ec) passes over every certificate that "issued another
certificate in the file", judged by names only, over the whole file; provisioning
(495ac80) writes the held blocks and the given ones into one file and reads it back
under that rule. Keys and certificates are made by OpenSSL's command line.

- `provision central-key --add new.crt`, where the office's new certificate was
  issued by its old one (the old key certifying its successor, a usual way to hand
  over trust): the command says "acks believed from 2 central key(s): OLD, NEW", but
  the file it wrote reads as NEW alone; the old key, which the receivers still sign
  with until step 3, is no longer believed (strict xfail).
- A CERTIFICATE block whose extensions cannot be read (here a duplicated extension,
  which cryptography raises as DuplicateExtension, an Exception that is neither
  ValueError nor CentralKeyError): provisioning raises a traceback instead of "nothing
  was changed" (strict xfail); `appliance sync` started on such a file exits 1 with a
  traceback, which its unit (Restart=on-failure, RestartPreventExitStatus=2) restarts
  into the same traceback, where any other unreadable key file exits 2 (strict xfail).
  Held: a running sync whose file gains such a block survives
  the first forged ack after it (at first, on_message set it aside as "internal"; now
  the file is refused with a warning and the keys in use are kept), and does not read
  the file again for each of the next.
- Held: a file read half-written (truncated in the middle of a block) keeps the keys
  in use; a flood of forged acks does not make sync read an unchanged file again.
"""

from __future__ import annotations

import base64
import datetime
import subprocess
import time
from pathlib import Path
from unittest import mock

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from appliance.sync import acksig, wire
from appliance.system import central_key
from appliance.system import config as config_mod
from tests.helpers.central_keys import ed25519, openssl, provision
from tests.helpers.sync_rig import (
    SYNC,
    Attacker,
    device_dead_letters,
    make_config,
    service_process,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(90)


def duplicate_extension_certificate(path: Path) -> Path:
    """A self-signed Ed25519 certificate whose SubjectKeyIdentifier's OID was turned into
    BasicConstraints' (both 55 1d xx): it loads, and reading its extensions raises
    cryptography's DuplicateExtension."""
    key = Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bhxh-central-acks")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, None))
    der = cert.public_bytes(serialization.Encoding.DER)
    ski, bc = bytes.fromhex("0603551d0e"), bytes.fromhex("0603551d13")
    assert der.count(ski) == 1
    text = base64.b64encode(der.replace(ski, bc)).decode("ascii")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    path.write_text("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines)
                    + "\n-----END CERTIFICATE-----\n")
    x509.load_pem_x509_certificate(path.read_bytes())  # it does load
    return path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- provisioning: the old key certified its successor -----------------------------


def test_adding_a_successor_certified_by_the_old_key_keeps_the_old_key(tmp_path):
    keys = tmp_path / "keys"
    old_key, _old_pub, old_id = ed25519(keys, "old")
    new_key, _new_pub, new_id = ed25519(keys, "new")
    old_crt = keys / "old.crt"
    openssl("req", "-x509", "-new", "-key", str(old_key), "-subj",
            "/CN=bhxh-central-acks-2025", "-days", "365", "-out", str(old_crt))
    csr, new_crt = keys / "new.csr", keys / "new.crt"
    openssl("req", "-new", "-key", str(new_key), "-subj", "/CN=bhxh-central-acks-2026",
            "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(old_crt), "-CAkey", str(old_key),
            "-CAcreateserial", "-days", "365", "-out", str(new_crt))
    config_file = write_config_file(tmp_path, make_config(tmp_path, 1, signed=False))
    etc = tmp_path / "etc"
    rc, said = provision(config_file, etc, str(old_crt))
    assert rc == 0 and f"1 central key(s): {old_id}" in said, said
    rc, said = provision(config_file, etc, "--add", str(new_crt))
    assert rc == 0 and f"2 central key(s): {old_id}, {new_id}" in said, said
    believed = [b.key_id for b in central_key.read(etc / "central-acks.pem")]
    assert believed == [old_id, new_id], (said, believed)
    assert acksig.TrustedKeys.load(etc / "central-acks.pem").ids == [old_id, new_id]


# --- a certificate whose extensions cannot be read ----------------------------------


def test_provisioning_refuses_a_certificate_with_unreadable_extensions(tmp_path):
    _key, pub, _kid = ed25519(tmp_path / "keys", "old")
    config_file = write_config_file(tmp_path, make_config(tmp_path, 1, signed=False))
    etc = tmp_path / "etc"
    assert provision(config_file, etc, str(pub))[0] == 0
    installed = (etc / "central-acks.pem").read_bytes()
    bad = duplicate_extension_certificate(tmp_path / "office.crt")
    rc, said = provision(config_file, etc, "--add", str(bad))
    assert rc == 1 and "nothing was changed" in said, said
    assert (etc / "central-acks.pem").read_bytes() == installed


def test_sync_on_such_a_file_stops_with_a_message_not_a_traceback(tmp_path):
    config = make_config(tmp_path, 1)
    key_file = tmp_path / "central-acks.pem"
    key_file.write_bytes(Path(config.mqtt.central_public_key).read_bytes()
                         + duplicate_extension_certificate(tmp_path / "x.crt").read_bytes())
    device = config_mod.with_overrides(config, mqtt={"central_public_key": str(key_file)})
    log = tmp_path / "sync.log"
    proc = service_process(SYNC, write_config_file(tmp_path, device), log)
    try:
        proc.wait(30)
    finally:
        _stop(proc)
    said = log.read_text(errors="replace")
    assert "Traceback" not in said, said[-800:]
    assert proc.returncode == 2, (proc.returncode, said[-800:])


def test_a_forged_ack_after_such_an_edit_does_not_stop_sync(tmp_path, broker):
    config = make_config(tmp_path, broker.port)
    key_file = tmp_path / "central-acks.pem"
    key_file.write_bytes(Path(config.mqtt.central_public_key).read_bytes())
    device = config_mod.with_overrides(config, mqtt={"central_public_key": str(key_file)})
    log = tmp_path / "sync.log"
    proc = service_process(SYNC, write_config_file(tmp_path, device), log)
    attacker = Attacker(broker.port)
    mallory = acksig.generate_key(tmp_path / "mallory.key")
    topic = wire.acks_topic(config.mqtt.topic_prefix, config.device.id)

    def forge() -> None:
        attacker.publish(topic, wire.encode_ack(acksig.sign(mallory, wire.Ack(
            "r-forged", "ab" * 32, time.time(), config.device.id))))

    try:
        deadline = time.monotonic() + 30
        while device_dead_letters(device).get("forged", 0) < 1:
            assert proc.poll() is None, log.read_text(errors="replace")[-800:]
            assert time.monotonic() < deadline, "sync never took a forged ack"
            forge()
            time.sleep(0.5)
        # The technician's hand edit: the office's certificate pasted after the key.
        time.sleep(0.05)
        with key_file.open("ab") as f:
            f.write(duplicate_extension_certificate(tmp_path / "x.crt").read_bytes())
        before = sum(device_dead_letters(device).values())
        forge()
        wait_for(lambda: proc.poll() is not None
                 or sum(device_dead_letters(device).values()) > before, 20,
                 "the forged ack set aside, or sync's exit")
        for _ in range(20):                      # the file is not read again each time
            forge()
        wait_for(lambda: proc.poll() is not None
                 or sum(device_dead_letters(device).values()) >= before + 21, 20,
                 "the flood set aside, or sync's exit")
        said = log.read_text(errors="replace")
        assert proc.poll() is None, f"sync exited {proc.returncode}: {said[-800:]}"
        # Read once, refused with a message, the keys in use kept: no internal error.
        assert said.count("(internal)") == 0, said[-1500:]
        assert said.count("acks are still checked against central key") == 1, said[-1500:]
    finally:
        attacker.close()
        _stop(proc)


# --- held: a half-written file, and a flood on an unchanged file ---------------------


def test_a_half_written_file_keeps_the_keys_in_use(tmp_path):
    old, old_pub, old_id = ed25519(tmp_path, "old")
    _new, new_pub, new_id = ed25519(tmp_path, "new")
    key_file = tmp_path / "central-acks.pem"
    key_file.write_bytes(old_pub.read_bytes())
    trusted = acksig.TrustedKeys.load(key_file)
    signer = acksig.load_private_key(old)
    good = acksig.sign(signer, wire.Ack("r-1", "ab" * 32, time.time(), "kiosk-01"))
    stranger = acksig.sign(Ed25519PrivateKey.generate(),
                           wire.Ack("r-2", "ab" * 32, time.time(), "kiosk-01"))
    # A non-atomic editor save caught in the middle: the new key's block cut short.
    whole = old_pub.read_bytes() + new_pub.read_bytes()
    key_file.write_bytes(whole[: len(old_pub.read_bytes()) + 40])
    assert trusted.verify(stranger) is False
    assert trusted.verify(good) is True and trusted.ids == [old_id]
    key_file.write_bytes(b"")                                 # truncated
    assert trusted.verify(stranger) is False
    assert trusted.verify(good) is True and trusted.ids == [old_id]
    key_file.write_bytes(whole)                               # the save completed
    assert trusted.verify(stranger) is False
    assert trusted.ids == [old_id, new_id]


def test_a_flood_of_forged_acks_reads_an_unchanged_file_once(tmp_path):
    _old, old_pub, _old_id = ed25519(tmp_path, "old")
    key_file = tmp_path / "central-acks.pem"
    key_file.write_bytes(old_pub.read_bytes())
    trusted = acksig.TrustedKeys.load(key_file)
    forged = acksig.sign(Ed25519PrivateKey.generate(),
                         wire.Ack("r-2", "ab" * 32, time.time(), "kiosk-01"))
    with mock.patch.object(acksig, "load_public_keys",
                           wraps=acksig.load_public_keys) as reads:
        for _ in range(2000):
            assert trusted.verify(forged) is False
        assert reads.call_count == 0
        key_file.write_bytes(old_pub.read_bytes() + b"# a comment\n")
        for _ in range(2000):
            assert trusted.verify(forged) is False
        assert reads.call_count == 1
