"""The device's TLS identity: a key made on the device, its CSR, the CA-signed certificate.

Why the layout below: the private key never leaves the device (only the CSR does), and
a certificate renewal must never leave sync with a key and a certificate that do not
belong together, nor stop delivering while the office waits for the CA. So each key
lives in its own generation folder with its CSR and, once signed, its certificate and
the CA; ``current`` is a symlink to the generation in use (what mqtt.cert_file,
key_file and ca_file name), ``pending`` to a key waiting for its certificate. Installing
a certificate fills its generation, then replaces ``current`` with one rename(2): a
reader sees the old pair or the new one, never a mix, and the outbox is not touched.

    tls/
      current -> gen-0002        (device.key 0600, device.crt, ca.crt, device.csr)
      pending -> gen-0003        (device.key 0600, device.csr: sent to the CA)
      device.csr                 (a copy of the newest CSR, to carry to the CA)

EC P-256: supported by every TLS stack a broker may run (mosquitto, EMQX, AWS IoT),
fast to make and use on a Pi, and small.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.provision.errors import ProvisionError
from appliance.system import crypto

KEY_NAME = "device.key"
CSR_NAME = "device.csr"
CERT_NAME = "device.crt"
CA_NAME = "ca.crt"
CURRENT = "current"
PENDING = "pending"


def atomic_write(path: Path, data: bytes, mode: int = 0o644, owner: str | None = None,
                 group: str | None = None) -> None:
    """Write beside the target, fsync, chown/chmod, rename: the file is whole or absent.

    `owner`: the user (and their group) the file is given to; `group`: only the group
    (root keeps the file, the service user's group may read it). With neither, a
    replaced file keeps its owner and group: /etc/appliance/appliance.toml is
    root:appliance 0640, and a rewrite must not take it from the services.
    """
    previous = path.stat() if path.exists() else None

    def give(fd: int) -> None:
        if owner:
            _chown(fd, owner)
        elif group:
            give_group(fd, group)
        elif previous is not None and os.geteuid() == 0:
            os.fchown(fd, previous.st_uid, previous.st_gid)

    crypto.write_private_file(path, data, mode, give)


def _chown(fd: int, owner: str) -> None:
    try:
        entry = pwd.getpwnam(owner)
    except KeyError as e:
        raise ProvisionError(f"service user {owner!r} does not exist: run "
                             "`bash provisioning/install.sh install` first") from e
    if os.geteuid() == 0:
        os.fchown(fd, entry.pw_uid, entry.pw_gid)
    elif os.geteuid() != entry.pw_uid:
        raise ProvisionError(f"cannot give the key to {owner!r}: run as root")


def give_group(target: int | Path, owner: str) -> None:
    """Root keeps `target`; `owner`'s group may read it (a folder: enter it). Only as
    root, and only when that user exists (tests and a development machine run without)."""
    if os.geteuid() != 0:
        return
    try:
        gid = pwd.getpwnam(owner).pw_gid
    except KeyError:
        return
    if isinstance(target, int):
        os.fchown(target, 0, gid)
    else:
        os.chown(target, 0, gid)


def point(tls_dir: Path, link: str, generation: Path) -> None:
    """Make tls_dir/link name `generation` with one rename (atomic for readers)."""
    tmp = tls_dir / f".{link}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(generation.name)
    os.replace(tmp, tls_dir / link)
    crypto.fsync_dir(tls_dir)


def linked(tls_dir: Path, link: str) -> Path | None:
    path = tls_dir / link
    return path.resolve() if path.is_symlink() and path.resolve().is_dir() else None


def new_generation(tls_dir: Path, owner: str | None = None) -> Path:
    """A new generation folder, root:<service group> 0750 (the key inside is the
    service user's own, 0600)."""
    numbers = [int(p.name[4:]) for p in tls_dir.glob("gen-*") if p.name[4:].isdigit()]
    folder = tls_dir / f"gen-{max(numbers, default=0) + 1:04d}"
    folder.mkdir(mode=0o750)
    if owner:
        give_group(folder, owner)
    return folder


def generate_key(folder: Path, owner: str | None) -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key written 0600 (owned by the service user) into `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write(folder / KEY_NAME, pem, 0o600, owner)
    return key


def load_key(folder: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((folder / KEY_NAME).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvisionError(f"{folder / KEY_NAME}: not an EC key")
    return key


def make_csr(key: ec.EllipticCurvePrivateKey, device_id: str, agency_code: str) -> bytes:
    """CN = device id (what the broker takes as the user name), O = agency code."""
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([
               x509.NameAttribute(NameOID.COMMON_NAME, device_id),
               x509.NameAttribute(NameOID.ORGANIZATION_NAME, agency_code),
           ]))
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_names(csr_pem: bytes, device_id: str, agency_code: str) -> bool:
    subject = x509.load_pem_x509_csr(csr_pem).subject
    return subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, agency_code)])


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class CheckedCertificate:
    """A certificate that passed every check, with what the report shows of it."""

    cert_pem: bytes
    ca_pem: bytes
    subject: str
    not_after: dt.datetime
    serial: int


def load_pem_certificates(path: Path, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as e:
        raise ProvisionError(f"{what} {path}: cannot read: {e.strerror or e}") from e
    except ValueError as e:
        raise ProvisionError(f"{what} {path}: not a PEM certificate") from e
    return certs


def key_matches(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    return _spki(cert.public_key()) == _spki(key.public_key())


def check_certificate(cert_path: Path, ca_path: Path, key: ec.EllipticCurvePrivateKey,
                      device_id: str, now: dt.datetime | None = None) -> CheckedCertificate:
    """Refuse, with a message a technician can act on, anything sync could not use."""
    now = now or dt.datetime.now(dt.UTC)
    cert, *chain = load_pem_certificates(cert_path, "certificate")
    cas = load_pem_certificates(ca_path, "CA")
    if not key_matches(cert, key):
        raise ProvisionError(
            f"certificate {cert_path} is not for this device's key (it was signed for "
            "another key): send this device's CSR (`appliance provision key` printed "
            "where it is) to the CA and install what comes back")
    _chain_to_anchor(cert, chain, cas, cert_path, ca_path, now)
    _for_clients(cert, cert_path)
    if now < cert.not_valid_before_utc:
        raise ProvisionError(
            f"certificate {cert_path} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check the device clock "
            "(`date -u`) or wait")
    if now > cert.not_valid_after_utc:
        raise ProvisionError(
            f"certificate {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} "
            "UTC: ask the CA to sign the CSR again (`appliance provision renew`)")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(names[0].value) if names else ""
    if cn != device_id:
        raise ProvisionError(
            f"certificate {cert_path} names {cn!r}, but this device is {device_id!r}: "
            "the broker would take it for another device; get the CSR signed as is")
    ca_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in cas)
    return CheckedCertificate(cert_path.read_bytes(), ca_pem, cert.subject.rfc4514_string(),
                              cert.not_valid_after_utc, cert.serial_number)


# Intermediates between the device's certificate and the CA given, at most.
MAX_INTERMEDIATES = 4


def _chain_to_anchor(cert: x509.Certificate, chain: list[x509.Certificate],
                     cas: list[x509.Certificate], cert_path: Path, ca_path: Path,
                     now: dt.datetime) -> None:
    """The certificate chains, signature by signature, through intermediates of its
    own file (CA certificates, each valid now) to a CA of `ca_path`, itself valid now.
    Before, only a certificate issued directly by that CA was taken (an office's PKI
    with an issuing CA under its root was refused), and an expired CA was installed
    without a word (sync then could not verify the broker)."""
    current = cert
    for _step in range(MAX_INTERMEDIATES + 1):
        candidates = [c for c in [*cas, *chain] if c.subject == current.issuer]
        if not candidates:
            raise ProvisionError(
                f"certificate {cert_path} was issued by "
                f"{current.issuer.rfc4514_string()!r}, not by the CA in {ca_path}: install "
                "the matching CA certificate (and any issuing CA in the certificate file)")
        issuer = None
        for candidate in candidates:
            try:
                current.verify_directly_issued_by(candidate)
            except (InvalidSignature, ValueError, TypeError):
                continue
            issuer = candidate
            break
        if issuer is None:
            raise ProvisionError(
                f"certificate {cert_path} does not chain to the CA in {ca_path} (a "
                "signature does not verify: another CA with the same name?)")
        what = "the CA in" if issuer in cas else "an issuing CA in"
        where = ca_path if issuer in cas else cert_path
        if not now <= issuer.not_valid_after_utc:
            raise ProvisionError(
                f"{what} {where} expired on {issuer.not_valid_after_utc:%Y-%m-%d %H:%M} "
                "UTC: install the CA's current certificate")
        if now < issuer.not_valid_before_utc:
            raise ProvisionError(
                f"{what} {where} is not valid before "
                f"{issuer.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check the device clock")
        if issuer in cas:
            return
        try:
            is_ca = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise ProvisionError(
                f"certificate {cert_path}: {issuer.subject.rfc4514_string()!r} in it is not "
                "a CA certificate, so it cannot issue the device's")
        current = issuer
    raise ProvisionError(f"certificate {cert_path}: more than {MAX_INTERMEDIATES} issuing "
                         f"CAs before the CA in {ca_path}")


def _for_clients(cert: x509.Certificate, cert_path: Path) -> None:
    """A certificate whose extended key usage leaves out TLS clients is refused by
    every broker ('unsupported certificate purpose'): refused here, with the fix."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no restriction
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        raise ProvisionError(
            f"certificate {cert_path} is not for TLS clients (its extended key usage "
            "has no clientAuth): ask the CA to sign the CSR with a client profile")


def certificate_expiry(folder: Path) -> dt.datetime | None:
    path = folder / CERT_NAME
    if not path.exists():
        return None
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
