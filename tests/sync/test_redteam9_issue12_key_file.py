"""Red team 9 (issue 12): the device's central key file as real tools and real hands write it.

The ack key change made `mqtt.central_public_key` a file of PEM blocks
(appliance/system/central_key.py), each a PUBLIC KEY or a CERTIFICATE, every one of
which must hold an Ed25519 key. Files made here by OpenSSL's command line and by the
hands that edit such files:

- CRLF line endings (a file edited on Windows), a UTF-8 byte order mark, no newline
  at the end, and `openssl x509 -text` output (the certificate's text dump before its
  PEM block) are read as the one key they hold: holds.
- The central's certificate followed by its issuer's (`cat central.crt ca.crt`, the
  usual way provisioning ships a certificate "with its chain"), the issuer an EC P-256
  CA as most office CAs are: before this change the device read the first certificate
  (x509.load_pem_x509_certificate takes the first block) and synced; now the whole file
  is refused because the CA's key is not Ed25519. `appliance sync` exits 2 at start
  (a ConfigError, which its unit does not restart) and every record waits on the device
  from the moment the new software is installed, before anyone changed any key
  (strict xfail, with a real broker, receiver and `appliance sync` process).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.sync import acksig
from appliance.system import central_key, doctor
from appliance.system import config as config_mod
from appliance.system.doctor import Verdict
from tests.helpers.central_keys import openssl
from tests.helpers.sync_rig import (
    SYNC,
    all_delivered,
    assert_exactly_once,
    enqueue,
    make_config,
    service_process,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(90)


def central_certificate_chain(folder: Path, central_private: Path) -> tuple[Path, Path]:
    """The central's Ed25519 key certified by an EC P-256 CA, all by OpenSSL: the leaf
    alone, and the leaf followed by the CA (as `cat leaf.crt ca.crt` makes a chain)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(ca_key), "-subj", "/CN=bhxh-office-ca", "-days", "30",
            "-out", str(ca_crt))
    csr, leaf = folder / "central.csr", folder / "central.crt"
    openssl("req", "-new", "-key", str(central_private), "-subj", "/CN=central-acks.bhxh",
            "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "30", "-out", str(leaf))
    chain = folder / "central-chain.pem"
    chain.write_bytes(leaf.read_bytes() + ca_crt.read_bytes())
    return leaf, chain


def test_hand_edited_and_openssl_text_files_read_as_their_one_key(tmp_path):
    private, public = tmp_path / "c.key", tmp_path / "c.pub"
    openssl("genpkey", "-algorithm", "ed25519", "-out", str(private))
    openssl("pkey", "-in", str(private), "-pubout", "-out", str(public))
    der = openssl("pkey", "-in", str(private), "-pubout", "-outform", "DER")
    expected = hashlib.sha256(der[-32:]).hexdigest()[:16]
    pem = public.read_bytes()
    leaf, _chain = central_certificate_chain(tmp_path, private)
    variants = {
        "crlf": pem.replace(b"\n", b"\r\n"),
        "bom": b"\xef\xbb\xbf" + pem,
        "no final newline": pem.rstrip(b"\n"),
        "x509 -text": openssl("x509", "-in", str(leaf), "-text"),
        "crlf certificate": leaf.read_bytes().replace(b"\n", b"\r\n"),
    }
    for name, data in variants.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pem"
        path.write_bytes(data)
        assert [central_key.key_id(k) for k in central_key.load(path)] == [expected], name
        assert acksig.TrustedKeys.load(path).ids == [expected], name


def test_certificate_with_its_chain_still_syncs_after_the_upgrade(tmp_path, broker, services):
    config = make_config(tmp_path, broker.port)
    _leaf, chain = central_certificate_chain(tmp_path / "pki",
                                             Path(config.central.signing_key))
    # What the previous version read from this file: the first certificate's key.
    from cryptography import x509
    first = x509.load_pem_x509_certificate(chain.read_bytes()).public_key()
    central_id = acksig.key_id(acksig.load_private_key(
        Path(config.central.signing_key)).public_key())
    assert central_key.key_id(first) == central_id

    device = config_mod.with_overrides(config, mqtt={"central_public_key": str(chain)})
    services(run_receiver, config)
    records = enqueue(config, 2)
    log = tmp_path / "sync.log"
    proc = service_process(SYNC, write_config_file(tmp_path, device), log)
    try:
        wait_for(lambda: proc.poll() is not None or all_delivered(config, records), 40,
                 "delivery, or sync's exit")
        said = log.read_text(errors="replace")
        assert proc.poll() is None, f"appliance sync exited {proc.returncode}: {said[-600:]}"
        assert all_delivered(config, records)
        assert_exactly_once(config, records)
        check = doctor.check_central_key(device)
        assert check.verdict is Verdict.OK, check.summary
        assert acksig.TrustedKeys.load(chain).ids == [central_id]
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
