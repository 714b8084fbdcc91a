"""Encryption at rest: one AES-256-GCM key per installation, in a root-only file.

Why: the kiosk stands in a public hall and the device can be carried off; a citizen's
pages, PDFs and the fields read from them are personal data (Law 91/2025/QH15), so
what lies on the disk must be useless without the key. AES-GCM is authenticated: a
changed byte, or a blob moved to another place, fails to open instead of decoding into
something plausible. The associated data names where a blob belongs (a file's
content address, a column and its row), which is what stops files or values from
being swapped.

The key file holds 32 random bytes, base64-encoded on one line, mode 0600. It is made
at provisioning (`appliance keys init`, or `python -m appliance.system.crypto init
PATH` from install.sh); in the demo, where the key sits beside the data, the first
process to open a database that holds no encrypted data yet makes it. A key that does
not match the check value the database keeps (an HMAC of a constant, never the key) or
a missing key for a database that holds encrypted data is a `KeyProblem`: a
configuration error, so every service stops with exit code 2 and a message, and
nothing is written or overwritten.

Under systemd the services run as an unprivileged user and cannot read a root-only
file; a unit passes it with `LoadCredential=appliance.key:/etc/appliance/appliance.key`
and `resolve_key_path` then prefers `$CREDENTIALS_DIRECTORY/appliance.key`.

This module sits in the system layer so that the device's store and the central
receiver (which must not import the device's store) share one implementation.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.system.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
# The first bytes of every sealed blob: a format version, so a later scheme (another
# cipher, a key id) can be told apart from this one and from plaintext written before.
BLOB_MAGIC = b"AGCM1\x00"
# Sealed text values in SQLite carry this prefix before their base64.
TEXT_PREFIX = "gcm1:"
OVERHEAD = len(BLOB_MAGIC) + NONCE_BYTES + TAG_BYTES
KEY_FILE_NAME = "appliance.key"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
# What the key check value is computed over; changing it invalidates every database.
_CHECK_CONSTANT = b"bhxh-appliance key check v1"


class KeyProblem(ConfigError):
    """The key is missing, unreadable, malformed or not the one the data was sealed with.

    A ConfigError, so `run_service` ends the process with EXIT_CONFIG (2): a restart
    cannot help until a person restores the right key file.
    """


class Tampered(ValueError):
    """A sealed blob did not open: wrong key, changed bytes, or moved to another place."""


class Sealer:
    """Seals and opens bytes and text with one key; safe to share between threads.

    `cryptography` (about 11 MB resident) loads at the first seal or open, not when
    the key is checked: `appliance sync` waiting for a broker never opens a file and
    stays small on a 2 GB Pi.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeyProblem(f"an encryption key has {KEY_BYTES} bytes, not {len(key)}")
        self._key = key
        self._aead_once: AESGCM | None = None
        self._lock = threading.Lock()
        self.check_value = hmac.new(key, _CHECK_CONSTANT, hashlib.sha256).hexdigest()

    @property
    def _aead(self) -> AESGCM:
        aead = self._aead_once  # made once; read without the lock after that
        if aead is not None:
            return aead
        with self._lock:
            if self._aead_once is None:
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM

                self._aead_once = AESGCM(self._key)
            return self._aead_once

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """Encrypt `data`; `aad` names where it belongs and must be given again to open it."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return BLOB_MAGIC + nonce + self._aead.encrypt(nonce, data, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt and authenticate a blob made by `seal` with the same `aad`."""
        if not is_sealed(blob):
            raise Tampered("not a sealed blob")
        nonce = blob[len(BLOB_MAGIC):len(BLOB_MAGIC) + NONCE_BYTES]
        aead = self._aead
        try:
            return aead.decrypt(nonce, blob[len(BLOB_MAGIC) + NONCE_BYTES:], aad)
        except Exception as e:
            from cryptography.exceptions import InvalidTag  # loaded with AESGCM by now

            if isinstance(e, InvalidTag):
                raise Tampered("sealed blob does not open: wrong key, changed or "
                               "moved") from e
            raise

    def seal_text(self, text: str, aad: str, utf8: bytes = b"") -> str:
        """A text column's value sealed into text (SQLite TEXT, prefixed base64).
        utf8: the text's UTF-8 bytes when the caller has them (not encoded again)."""
        blob = self.seal(utf8 or text.encode("utf-8"), aad.encode("utf-8"))
        return TEXT_PREFIX + binascii.b2a_base64(blob, newline=False).decode("ascii")

    def open_text(self, value: str, aad: str) -> str:
        return self.open_text_utf8(value, aad).decode("utf-8")

    def open_text_utf8(self, value: str, aad: str) -> bytes:
        """open_text's value as its UTF-8 bytes, for a caller that hashes or sends them
        (not decoded and encoded again)."""
        if not is_sealed_text(value):
            raise Tampered("not a sealed value")
        try:
            # Strict, in C: what b64decode(validate=True) refuses, without its regex.
            blob = binascii.a2b_base64(value[len(TEXT_PREFIX):], strict_mode=True)
        except (binascii.Error, ValueError) as e:
            raise Tampered("sealed value is not valid base64") from e
        return self.open(blob, aad.encode("utf-8"))


    def mac(self, purpose: str, data: bytes) -> bytes:
        """A keyed hash of `data` for `purpose`, with a key derived from this one (never
        the AES key itself): a value the database keeps but that cannot be recomputed,
        or guessed against, from a copy of the database without the key file."""
        subkey = hmac.new(self._key, b"appliance-mac\0" + purpose.encode("utf-8"),
                          hashlib.sha256).digest()
        return hmac.new(subkey, data, hashlib.sha256).digest()


def is_sealed(blob: bytes) -> bool:
    return blob.startswith(BLOB_MAGIC) and len(blob) >= OVERHEAD


def is_sealed_text(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TEXT_PREFIX)


def resolve_key_path(path: str | os.PathLike[str]) -> Path:
    """The key file to read: systemd's credential copy when the unit passes one."""
    creds = os.environ.get(CREDENTIALS_ENV)
    if creds:
        passed = Path(creds) / KEY_FILE_NAME
        if passed.is_file():
            return passed
    return Path(path)


def read_key(path: str | os.PathLike[str]) -> bytes:
    """The key in `path`; KeyProblem, naming the file, if it is absent or malformed."""
    target = resolve_key_path(path)
    try:
        text = target.read_text(encoding="ascii").strip()
    except FileNotFoundError as e:
        raise KeyProblem(f"encryption key file {target} does not exist") from e
    except (OSError, UnicodeDecodeError) as e:
        raise KeyProblem(f"encryption key file {target} cannot be read: {e}") from e
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeyProblem(f"encryption key file {target} is not a base64 key") from e
    if len(key) != KEY_BYTES:
        raise KeyProblem(f"encryption key file {target} holds {len(key)} bytes, "
                         f"not {KEY_BYTES}")
    return key


def create_key(path: str | os.PathLike[str]) -> bool:
    """Write a new random key to `path` (mode 0600) unless a file is already there.

    Never overwrites: the file is written under a temporary name and hard-linked into
    place, which fails if the name exists, so two processes racing here end up using
    the same key and a key that seals data can never be replaced by accident.
    Returns True if this call made the key.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return False
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    line = base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, target)
        created = True
    except FileExistsError:
        created = False
    finally:
        tmp.unlink(missing_ok=True)
    if created:
        fsync_dir(target.parent)
    return created


def fsync_dir(folder: Path) -> None:
    """Make a rename or link in `folder` durable (the directory entry itself)."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_private_file(path: Path, data: bytes, mode: int = 0o600,
                       prepare: Callable[[int], None] | None = None) -> None:
    """A secret (a private key, a citizen's papers) into `path`, whole or not at all:
    written under a temporary name made anew (a leftover or a planted link there is
    removed, never written through) that has `mode` before its first byte whatever the
    umask, synced, then renamed into place. `prepare` gets the open file descriptor
    before the sync (provisioning gives the file to the service user there)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            if prepare is not None:
                prepare(f.fileno())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def load_sealer(path: str | os.PathLike[str]) -> Sealer:
    return Sealer(read_key(path))


def check(sealer: Sealer, stored_check_value: str | None, where: str) -> None:
    """Refuse a key whose check value is not the one stored with the data at `where`."""
    if stored_check_value is not None and not hmac.compare_digest(
            stored_check_value, sealer.check_value):
        raise KeyProblem(
            f"the encryption key does not match the one {where} was sealed with "
            f"(key check value differs); restore the right key file, nothing was changed")


# --- a database's key ----------------------------------------------------------------


class KeyedConnection(sqlite3.Connection):
    """A SQLite connection that carries the key its sealed columns and blobs use."""

    sealer: Sealer | None = None


KEY_CHECK_TABLE = ("CREATE TABLE IF NOT EXISTS key_check (id INTEGER PRIMARY KEY "
                   "CHECK (id = 1), check_value TEXT NOT NULL, created_at REAL NOT NULL)")


def _stored_check(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT check_value FROM key_check WHERE id=1").fetchone()
    except sqlite3.OperationalError:  # not migrated yet (a reader that does not migrate)
        return None
    return str(row[0]) if row else None


def attach_key(conn: sqlite3.Connection, key_path: Path, *, may_create: bool, where: str,
               create_table: bool = False) -> Sealer:
    """Load a database's key, check it against the check value the database keeps, and
    keep that value on first use. The key is made only when `may_create` (the default
    location of the demo) and the database keeps no check value, i.e. holds nothing
    sealed yet; an existing key file or check value is never overwritten.
    `create_table` is for a database without a migration that makes key_check.
    """
    if create_table:
        conn.execute(KEY_CHECK_TABLE)
    stored = _stored_check(conn)
    try:
        try:
            sealer = load_sealer(key_path)
        except KeyProblem:
            if stored is not None or not may_create:
                raise
            # Services start together on a fresh database: whoever links the key
            # file first wins (create_key never overwrites) and all load that one.
            create_key(key_path)
            sealer = load_sealer(key_path)
    except KeyProblem as e:
        hint = (f"; {where} holds data sealed with a key (check value {stored[:12]}): "
                "restore that key file" if stored is not None
                else "; create it with `appliance keys init`")
        raise KeyProblem(f"{e}{hint}. Nothing was changed.") from e
    if stored is None:
        try:
            conn.execute("INSERT OR IGNORE INTO key_check(id, check_value, created_at) "
                         "VALUES (1, ?, ?)", (sealer.check_value, time.time()))
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e):
                raise  # a busy database is an error; an unmigrated one stores it later
        stored = _stored_check(conn)
    check(sealer, stored, where)
    return sealer


def sealer_on(conn: sqlite3.Connection) -> Sealer | None:
    return getattr(conn, "sealer", None)


# --- `appliance keys` ---------------------------------------------------------------


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    """`appliance keys init [--key-file PATH]`: make the key file if it is absent."""
    sub = parser.add_subparsers(dest="keys_command", required=True)
    init = sub.add_parser("init", help="create the encryption key file if it is absent")
    init.add_argument("--key-file", default="",
                      help="where (default: paths.key_file of the configuration, else "
                           "appliance.key in the data directory)")


def cmd_keys(args: argparse.Namespace) -> int:
    """Create the key file (0600) if absent; 0 when it exists afterwards, 2 on a bad config."""
    path = args.key_file
    if not path:
        from appliance.system.config import load

        try:
            path = str(load(getattr(args, "config", None)).paths.key_path)
        except ConfigError as e:
            print(f"appliance keys: configuration error: {e}", file=sys.stderr)
            return 2
    return init_key(path)


def init_key(path: str | os.PathLike[str]) -> int:
    """Make the key at `path` if absent and check an existing one is readable; exit code."""
    made = create_key(path)
    try:
        sealer = load_sealer(path)
    except KeyProblem as e:
        print(f"appliance keys: {e}", file=sys.stderr)
        return 2
    print(f"{'created' if made else 'kept existing'} key {path} "
          f"(check {sealer.check_value[:12]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m appliance.system.crypto init PATH`: provisioning, before the CLI exists."""
    parser = argparse.ArgumentParser(prog="appliance.system.crypto")
    parser.add_argument("--config", default=None)
    add_keys_arguments(parser)
    args = parser.parse_args(argv)
    return cmd_keys(args)


if __name__ == "__main__":
    sys.exit(main())
