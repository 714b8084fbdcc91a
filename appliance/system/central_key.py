"""The central office's ack key file on the device: read by sync and by the doctor.

Why a file of keys: the device believes an acknowledgement only when the central
office's key signed it (appliance.sync.acksig). To change that key without a record
waiting, the new public key is added beside the old one on every device first, then
the receivers switch to it, then the old one is taken off. So the file
(`mqtt.central_public_key`) holds one or more PEM blocks one after another, as `cat`
joins them: Ed25519 public keys or X.509 certificates carrying one. Text between the
blocks (a comment saying which key is which) is ignored, and so are the certificates
of issuers (a CA chain after the central's certificate).

A key is named by its key id: the first 16 hex digits of the SHA-256 of its 32 raw
bytes. The receiver logs it, `appliance central --report` lists it, and `appliance
doctor` (and so the status heartbeat) shows the ids a device believes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# Keys one device believes at once, at most: a forged ack costs one check per key.
MAX_KEYS = 8
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


class CentralKeyError(ValueError):
    """The file is missing or unreadable, or holds something other than 1 to MAX_KEYS
    Ed25519 public keys and certificates."""


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for a public key, the same on the receiver, the device and in logs."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_key_of(block: bytes, label: str, path: Path) -> Ed25519PublicKey:
    if label not in ("CERTIFICATE", "PUBLIC KEY"):
        # A private key here would sit on every device: refused, not just skipped.
        raise CentralKeyError(f"{path}: a {label} block has no place in the central "
                              "public key file (only PUBLIC KEY and CERTIFICATE blocks)")
    try:
        key = (x509.load_pem_x509_certificate(block).public_key() if label == "CERTIFICATE"
               else serialization.load_pem_public_key(block))
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise CentralKeyError(f"{path}: a {label} block cannot be read: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise CentralKeyError(f"{path}: the central public key must be Ed25519, a {label} "
                              f"block holds a {type(key).__name__}")
    return key


def _issuers(blocks: list[tuple[bytes, str]]) -> list[bool]:
    """Which blocks are certificates of an issuer rather than of the central: one that
    issued another certificate in the file, or a CA's whose key is not Ed25519 (it can
    sign no ack). Provisioning ships "the central's certificate with its chain" (`cat
    central.crt ca.crt`): before the file held several keys the device read its first
    block only, and such a file must not stop sync after an upgrade (red team 9). A
    self-signed Ed25519 certificate of the central (OpenSSL marks those CA too) stays a
    key."""
    certs: list[x509.Certificate | None] = []
    for block, label in blocks:
        try:
            certs.append(x509.load_pem_x509_certificate(block) if label == "CERTIFICATE"
                         else None)
        except ValueError:
            certs.append(None)  # _public_key_of says what is wrong with it
    out = []
    for cert in certs:
        if cert is None:
            out.append(False)
            continue
        issued = any(other is not None and other is not cert and other.issuer == cert.subject
                     and other.subject != cert.subject for other in certs)
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        out.append(issued or (ca and not isinstance(cert.public_key(), Ed25519PublicKey)))
    return out


def read(path: Path) -> list[tuple[str, Ed25519PublicKey, bytes]]:
    """Every key in the file, in its order, each once: (key id, key, its PEM block).
    Certificates of issuers (a chain after the central's certificate) are passed over."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CentralKeyError(f"cannot read the central public key {path}: {e}") from e
    blocks = [(m.group(0), m.group(1).decode("ascii")) for m in _PEM_BLOCK.finditer(data)]
    keys: dict[str, tuple[str, Ed25519PublicKey, bytes]] = {}
    for (block, label), issuer in zip(blocks, _issuers(blocks), strict=True):
        if issuer:
            continue
        key = _public_key_of(block, label, path)
        keys.setdefault(key_id(key), (key_id(key), key, block))
    if not keys:
        raise CentralKeyError(f"{path} is not a PEM public key or certificate: no PEM "
                              "block of the central's key found")
    if len(keys) > MAX_KEYS:
        raise CentralKeyError(f"{path} holds {len(keys)} central keys; at most {MAX_KEYS} "
                              "(take the retired ones off)")
    return list(keys.values())


def load(path: Path) -> list[Ed25519PublicKey]:
    """Every key in the file, in its order, each once."""
    return [key for _id, key, _block in read(path)]


def render(blocks: list[tuple[str, bytes]]) -> bytes:
    """A key file of these (key id, PEM block) pairs, each after a comment naming it."""
    return b"".join(f"# central key {kid}\n".encode("ascii") + block.strip() + b"\n"
                    for kid, block in blocks)
