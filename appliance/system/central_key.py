"""The central office's ack key file on the device: read by sync and by the doctor.

Why a file of keys: the device believes an acknowledgement only when the central
office's key signed it (appliance.sync.acksig). To change that key without a record
waiting, the new public key is added beside the old one on every device first, then
the receivers switch to it, then the old one is taken off. So the file
(`mqtt.central_public_key`) holds one or more PEM blocks one after another, as `cat`
joins them: Ed25519 public keys or X.509 certificates carrying one. Text between the
blocks (a comment saying which key is which) is ignored, and so are CA certificates
whose key is not Ed25519 (a chain after the central's certificate). An Ed25519 CA
certificate in the file is believed like any other key: provisioning says so.

A key is named by its key id: the first 16 hex digits of the SHA-256 of its 32 raw
bytes. The receiver logs it, `appliance central --report` lists it, and `appliance
doctor` (and so the status heartbeat) shows the ids a device believes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# Keys one device believes at once, at most: a forged ack costs one check per key.
MAX_KEYS = 8
# The largest key file read: 8 certificates with their chains fit many times over.
MAX_FILE_BYTES = 1_000_000
# A block: BEGIN and END each at the start of a line (a block commented out with "#",
# as render() writes comments, is text between blocks), base64 between them. The body
# holds no "-", so a BEGIN without its END costs one scan to the next "-", not one to
# the end of the file per stray BEGIN (red team 11: 13 s for 10,000 stray lines).
_PEM_BLOCK = re.compile(rb"^(?:\xef\xbb\xbf)?(-----BEGIN ([A-Z0-9 ]+)-----\r?\n[^-]*"
                        rb"^-----END \2-----)", re.MULTILINE)
# Every BEGIN and END line; each must be part of a whole block, else the file is
# damaged (a paste cut short, a block inside another) and refused, not half read.
_MARKER = re.compile(rb"^(?:\xef\xbb\xbf)?-----(?:BEGIN|END) ", re.MULTILINE)
# Device state (device_state table): the acks sync refused as forged since the key
# file last changed, and the key ids they named that the device does not hold (wire's
# "kid"), as RefusedAcks. Written by sync, read by the doctor: "N acks refused since
# the key file changed, naming key X, which is not installed here". Kept apart from the
# dead-letter rows, which a junk flood trims (red team 17).
REFUSED_ACKS_STATE_KEY = "sync.refused_acks"
# Distinct key ids counted, first come first kept: the kid is outside the signature,
# so a forger names whatever ids it likes, as often as it likes, and any ranking of
# them (by count, by time) is the forger's to win. Kept instead, never evicted: the
# office's key is hidden only by a forger naming this many other ids first since the
# key file changed, and the doctor then says that acks named ids it did not keep.
MAX_NAMED_KEYS = 12
_KEY_ID = re.compile(r"[0-9a-f]{16}\Z")


@dataclass(frozen=True)
class RefusedAcks:
    """Acks refused as forged while the device believed the keys `believed` (their ids,
    sorted), since the key file's change at `since` (its ctime in ns, as sync read the
    file): how many (`count`); for each key id they named that the device did not hold,
    kept first come, how many named it and the last one's time; `more`: acks naming an
    id not kept, once MAX_NAMED_KEYS were.

    Keyed by what is believed, not by the file's ctime: a chmod moved the ctime and
    hid the doctor's WARN until the office's next ack was refused (red team 18)."""

    since: int = 0
    count: int = 0
    keys: dict[str, tuple[int, float]] = field(default_factory=dict)
    more: int = 0
    believed: tuple[str, ...] = ()

    def render(self) -> str:
        return json.dumps({"since": self.since, "count": self.count, "more": self.more,
                           "keys": {k: list(v) for k, v in self.keys.items()},
                           "believed": list(self.believed)}, sort_keys=True)

    def under(self, believed: Sequence[str], since: int) -> RefusedAcks:
        """These counts for a device that believes `believed` now, under a key file
        changed at `since` (ns): all of them under the same keys, whatever else changed
        the file (a chmod, the same keys written again); none under other keys (counted
        afresh: an old flood of made-up key ids must not fill the ids kept before the
        office's new key is named, red team 16). A count from before this release (no
        `believed`) holds only under the same file change."""
        now = tuple(sorted(believed))
        if self.believed == now:
            return self
        if not self.believed and self.since == since:
            return replace(self, believed=now)
        return RefusedAcks(since, believed=now)


def refused_acks(value: str) -> RefusedAcks | None:
    """REFUSED_ACKS_STATE_KEY's value read back; None for anything not as
    note_refused_ack writes it (an entry that is not is left out)."""
    try:
        found = json.loads(value)
    except ValueError:
        return None
    if not isinstance(found, dict) or not isinstance(found.get("keys"), dict) \
            or any(type(found.get(n)) is not int for n in ("since", "count", "more")):
        return None
    if not 0 <= found["since"] < 2**63:
        # A ctime in ns no clock reaches (a state not written by sync): the doctor
        # dates its WARN from it, and a date past year 9999 broke the check (red team 19).
        return None
    believed = found.get("believed", [])
    if not isinstance(believed, list) or len(believed) > MAX_KEYS or not all(
            isinstance(k, str) and _KEY_ID.match(k) for k in believed):
        return None
    keys: dict[str, tuple[int, float]] = {}
    for kid, entry in found["keys"].items():
        if (_KEY_ID.match(kid) and isinstance(entry, list) and len(entry) == 2
                and type(entry[0]) is int and entry[0] > 0
                and isinstance(entry[1], int | float) and not isinstance(entry[1], bool)
                and len(keys) < MAX_NAMED_KEYS):
            keys[kid] = (entry[0], float(entry[1]))
    return RefusedAcks(found["since"], max(0, found["count"]), keys, max(0, found["more"]),
                       tuple(sorted(believed)))


def note_refused_ack(value: str, kid: str, at: float, since: int,
                     believed: Sequence[str]) -> str:
    """REFUSED_ACKS_STATE_KEY's value with one more ack refused at `at`, naming `kid`
    ("" when it named none, or a key the device holds), refused by the keys `believed`
    of a key file changed at `since` (ns): see RefusedAcks.under for what of the
    counts before a change of the keys is kept."""
    found = refused_acks(value)
    found = (found or RefusedAcks(since, believed=tuple(sorted(believed)))).under(
        believed, since)
    keys, more = dict(found.keys), found.more
    if kid in keys:
        keys[kid] = (keys[kid][0] + 1, at)
    elif kid and len(keys) < MAX_NAMED_KEYS:
        keys[kid] = (1, at)
    elif kid:
        more += 1
    return RefusedAcks(found.since, found.count + 1, keys, more, found.believed).render()


class CentralKeyError(ValueError):
    """The file is missing or unreadable, or holds something other than 1 to MAX_KEYS
    Ed25519 public keys and certificates."""


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for a public key, the same on the receiver, the device and in logs."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_key_of(block: bytes, label: str,
                   where: object) -> tuple[Ed25519PublicKey, bool] | None:
    """The Ed25519 key of a block; None for a CA's certificate whose key is not
    Ed25519 (a chain after the central's certificate: `cat central.crt ca.crt`, which
    the version before several keys read by its first block, must not stop sync after
    an upgrade; such a key can sign no ack anyway). With the key: whether it came as a
    CA's certificate. Anything else: CentralKeyError."""
    if label not in ("CERTIFICATE", "PUBLIC KEY"):
        # A private key here would sit on every device: refused, not just skipped.
        raise CentralKeyError(f"{where}: a {label} block has no place in the central "
                              "public key file (only PUBLIC KEY and CERTIFICATE blocks)")
    ca = False
    try:
        if label == "PUBLIC KEY":
            key = serialization.load_pem_public_key(block)
        else:
            cert = x509.load_pem_x509_certificate(block)
            ca = _is_ca(cert)
            try:
                key = cert.public_key()
            except UnsupportedAlgorithm:
                if ca:  # a CA of a kind cryptography does not know: not Ed25519 either
                    return None
                raise
            if not isinstance(key, Ed25519PublicKey) and ca:
                return None
    except CentralKeyError:
        raise
    except Exception as e:  # noqa: BLE001 - cryptography raises more than ValueError
        # (DuplicateExtension, UnsupportedAlgorithm...): whatever it is, this file is
        # refused with a message, never a traceback that restarts sync again and again.
        raise CentralKeyError(f"{where}: a {label} block cannot be read: "
                              f"{type(e).__name__}: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise CentralKeyError(f"{where}: the central public key must be Ed25519, a {label} "
                              f"block holds a {type(key).__name__}")
    return key, ca


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True)
class Block:
    """One key of the file: its id, the key, its PEM block, and whether it came as a
    CA's certificate (provisioning warns: that CA's key is believed for acks too)."""

    key_id: str
    key: Ed25519PublicKey
    pem: bytes
    ca: bool


def parse(data: bytes, where: object) -> list[Block]:
    """Every key in a file's bytes, in its order, each once."""
    keys: dict[str, Block] = {}
    matches = list(_PEM_BLOCK.finditer(data))
    if len(_MARKER.findall(data)) != 2 * len(matches):
        raise CentralKeyError(f"{where}: a BEGIN or END line outside a whole PEM block: "
                              "the file is damaged (a paste cut short, or a block inside "
                              "another)")
    for match in matches:
        found = _public_key_of(match.group(1), match.group(2).decode("ascii"), where)
        if found is None:
            continue
        key, ca = found
        kid = key_id(key)
        keys.setdefault(kid, Block(kid, key, match.group(1), ca))
    if not keys:
        raise CentralKeyError(f"{where} is not a PEM public key or certificate: no PEM "
                              "block of the central's key found")
    if len(keys) > MAX_KEYS:
        raise CentralKeyError(f"{where} holds {len(keys)} central keys; at most {MAX_KEYS} "
                              "(take the retired ones off)")
    return list(keys.values())


def read(path: Path) -> list[Block]:
    """Every key in the file (parse)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise CentralKeyError(f"cannot read the central public key {path}: {e}") from e
    if len(data) > MAX_FILE_BYTES:
        raise CentralKeyError(f"{path} is over {MAX_FILE_BYTES} bytes: not a key file")
    return parse(data, path)


def load(path: Path) -> list[Ed25519PublicKey]:
    """Every key in the file, in its order, each once."""
    return [block.key for block in read(path)]


def render(blocks: list[Block]) -> bytes:
    """A key file of these blocks, each after a comment naming its key."""
    return b"".join(f"# central key {b.key_id}\n".encode("ascii") + b.pem.strip() + b"\n"
                    for b in blocks)
