"""Ed25519 signatures on acknowledgements: the receiver signs, the device verifies.

Why: an ack makes the device stop sending a record it may hold the only copy of, and
anyone who can publish on a device's ack topic (a broker without ACLs, a leaked
credential) learns each record's id and sha256 from the device's own traffic. A
signature by the central office's own key, whose public half was installed on the
device at provisioning, is the one thing such a publisher cannot produce.

The central key is a PEM PKCS#8 Ed25519 private key; the device accepts either the
PEM public key or an X.509 certificate that carries it (so provisioning can ship the
central's certificate). cryptography's errors are wrapped into AckKeyError here.

The device's file may hold several keys (appliance.system.central_key reads it): the
device then believes an ack signed by any of them. That is how the central office
changes its key without a record waiting: the new public key is added beside the old
one on every device first, then the receivers switch, then the old one is taken off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from appliance.sync.errors import SyncError
from appliance.sync.wire import Ack, BatchAck, Have
from appliance.system import central_key
from appliance.system.central_key import key_id
from appliance.system.errors import ConfigError

log = logging.getLogger(__name__)


class Signed(Protocol):
    """What the receiver signs: a single ack, an "acks" batch, or a "have" answer."""

    @property
    def signature(self) -> bytes: ...

    @property
    def key_id(self) -> str: ...

    def signed_bytes(self) -> bytes: ...


S = TypeVar("S", Ack, BatchAck, Have)


class AckKeyError(SyncError, ConfigError):
    """A signing or verification key is missing, unreadable or not Ed25519. A
    ConfigError too, so the service ends with EXIT_CONFIG (2), which its unit does not
    restart: a restart every few seconds would not bring the key back."""


def generate_key(private_path: Path, public_path: Path | None = None) -> Ed25519PrivateKey:
    """Write a new private key (mode 0600) and, if asked, its public key beside it."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    if public_path is not None:
        public_path.write_bytes(public_pem(key))
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise AckKeyError(f"cannot read the ack signing key {path}: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise AckKeyError(f"{path}: the ack signing key must be Ed25519")
    return key


def load_or_create_private_key(path: Path, *, held: str = "") -> Ed25519PrivateKey:
    """The receiver's key; made on first start so no key ever sits in the repository.

    The public half is written next to it (``<name>.pub``) for provisioning to copy
    onto every device as mqtt.central_public_key. `held` says what the database already
    holds that devices took acks for (empty for a new database): then a missing key is
    refused, never made: a new key would sign acks that no device believes, and every
    record would be sent again and again while the office waited.
    """
    if not path.exists():
        if held:
            raise AckKeyError(
                f"the ack signing key {path} is missing, and the central database holds "
                f"{held}: put back the key its acks were signed with (from the backup of "
                "the central keys). A new key is made only for a new database; to change "
                "keys, follow the key change steps in the README")
        try:
            return generate_key(path, path.with_name(path.name + ".pub"))
        except FileExistsError:
            pass  # another receiver made it a moment ago
        except OSError as e:
            raise AckKeyError(f"cannot create the ack signing key {path}: {e}") from e
    return load_private_key(path)


def load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    """Every central key in the device's file (appliance.system.central_key)."""
    try:
        return central_key.load(path)
    except central_key.CentralKeyError as e:
        raise AckKeyError(str(e)) from e


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The central's one public key from a PEM public key or a PEM X.509 certificate."""
    keys = load_public_keys(path)
    if len(keys) != 1:
        raise AckKeyError(f"{path} holds {len(keys)} central keys where one is expected")
    return keys[0]


class TrustedKeys:
    """The central keys one device believes; the key that verified last is tried first,
    so a genuine ack costs one check whatever the number of keys during a change.

    Loaded from a file, it reads the file again whenever it changed (`appliance
    provision central-key --add` or `--remove`): the office's first ack under a new key
    is believed, and a removed key no longer is, without restarting sync. A file
    changed into something unreadable keeps the keys in use, with a warning.
    """

    def __init__(self, keys: Sequence[Ed25519PublicKey], path: Path | None = None,
                 stamp: tuple[int, int, int, int] | None = None) -> None:
        if not keys:
            raise AckKeyError("no central public key to verify acks with")
        self.keys = list(keys)
        self.ids = [key_id(k) for k in self.keys]
        self.path = path
        self.stamp = stamp

    @classmethod
    def load(cls, path: Path) -> TrustedKeys:
        stamp = _stamp(path)  # taken before the read: a change during it is seen next time
        return cls(load_public_keys(path), path, stamp)

    def verify(self, ack: Signed) -> bool:
        """True if any trusted key signed exactly this message, as the file says now: a
        stat per ack message, and a read when it changed. Read again only when no key
        verified, a key taken off with `--remove` (perhaps leaked) was believed until
        sync restarted, since the new key verified every genuine ack (red team 12)."""
        self._follow_file()
        return self._any(ack)

    def refusal(self, ack: Signed) -> str:
        """Why `ack` was not believed, for its dead letter: the key it names (a hint
        anyone can write, never trusted for anything else) and the keys believed."""
        kind = type(ack).__name__
        believed = " or ".join(self.ids)
        named = ack.key_id
        if not named:
            return f"bad signature on a {kind} that names no key (believed: {believed})"
        if named in self.ids:
            return f"bad signature on a {kind} that names believed central key {named}"
        return (f"{kind} signed by central key {named}, which this device does not "
                f"believe (believed: {believed})")

    def unknown_key(self, ack: Signed) -> str:
        """The key id a refused message names when this device does not hold it, else ""."""
        named = ack.key_id
        return named if named and named not in self.ids else ""

    @property
    def changed_at_ns(self) -> int:
        """The key file's ctime (ns) as last read, 0 for keys given without a file:
        counts of key ids named by refused acks start afresh when it changes."""
        return self.stamp[3] if self.stamp else 0

    @property
    def verified_by(self) -> str:
        """The id of the key that verified the last message verify() believed (the
        message's own "kid" is not signed, so a receipt keeps this one)."""
        return self.ids[0]

    def _any(self, ack: Signed) -> bool:
        for i, key in enumerate(self.keys):
            if verify(key, ack):
                if i:
                    self.keys.insert(0, self.keys.pop(i))
                    self.ids.insert(0, self.ids.pop(i))
                return True
        return False

    def _follow_file(self) -> None:
        """Read the file again if it changed since it was last read."""
        if self.path is None:
            return
        stamp = _stamp(self.path)
        if stamp is None or stamp == self.stamp:
            return
        self.stamp = stamp
        try:
            keys = load_public_keys(self.path)
        except AckKeyError as e:
            log.warning("%s; acks are still checked against central key %s", e,
                        " or ".join(self.ids))
            return
        self.keys, self.ids = keys, [key_id(k) for k in keys]
        log.info("central keys read again from %s: acks are believed when signed by %s",
                 self.path, " or ".join(self.ids))


def _stamp(path: Path | None) -> tuple[int, int, int, int] | None:
    """What tells a changed file: inode (a file replaced by rename), size, mtime, and
    ctime, which no copy can set (`cp -p` of a key of the same size kept the other
    three: red team 13)."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sign(key: Ed25519PrivateKey, ack: S, signer_id: str = "") -> S:
    """The message with the receiver's signature over its signed_bytes(); each kind's
    signed bytes start with its own label, so one kind cannot pass for another. It
    names the key (`signer_id`, its key_id, computed when not given) outside the
    signature, for a device that does not believe it to say which key it lacks."""
    return replace(ack, signature=key.sign(ack.signed_bytes()),
                   key_id=signer_id or key_id(key.public_key()))


def verify(key: Ed25519PublicKey, ack: Signed) -> bool:
    """True only for a message whose every signed field is exactly what the receiver wrote."""
    if len(ack.signature) != 64:
        return False
    try:
        key.verify(ack.signature, ack.signed_bytes())
    except InvalidSignature:
        return False
    return True
