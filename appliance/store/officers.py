"""Officers enrolled on this device, each opened by their own PIN.

Why: with one configured PIN (``web.officer_pin``) every sign-off reads "the counter's
officer"; an office with several officers needs to know who signed in. A technician
enrols them at provisioning (`appliance provision officer add NAME`), the keypad's PIN
then names the officer.

Why one device-wide salt rather than one per officer: the keypad sends a PIN and no
name, so a per-officer salt would cost one scrypt per enrolled officer on every
attempt (a second or more on a Pi for a busy office). With one salt the PIN's hash is
looked up directly, which also lets enrolment refuse a PIN already given to someone
else (two officers with one PIN could not be told apart). A 4-8 digit PIN is weak
whatever the hashing; what protects it is the web's lockout, and what the hash
protects is a copied database file: scrypt makes each guess cost memory and time,
and the scrypt output is then keyed with the installation key (the one that seals the
personal columns, kept in its own file): the salt lives in the same database, so
without that key a copied file would give up a 4-digit PIN in minutes. Hashes written
before the key was used ("scrypt$") still open, and are rewritten keyed at the first
sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.store.db import get_state, now, sealer_of, set_state
from appliance.store.errors import StoreError
from appliance.system.sqlite import transaction

SALT_KEY = "officers.salt"
HASH_PREFIX = "scrypt-keyed$"
LEGACY_PREFIX = "scrypt$"  # unkeyed, as the first build wrote it
# RFC 7914's interactive parameters: 16 MiB and ~50 ms here, a few hundred ms on a Pi.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
# fullmatch: "$" alone lets a trailing newline through, and "1234\n" would be enrolled
# as a PIN no keypad can type.
PIN_RE = re.compile(r"[0-9]{4,12}")
NAME_MAX = 80


class OfficerError(StoreError):
    """An enrolment the device cannot take; the text says which rule it broke."""


@dataclass(frozen=True)
class Officer:
    name: str
    created_at: float
    disabled: bool


def _salt(conn: sqlite3.Connection) -> bytes:
    found = get_state(conn, SALT_KEY)
    if found:
        return bytes.fromhex(found[0])
    salt = secrets.token_bytes(16)
    set_state(conn, SALT_KEY, salt.hex())
    return salt


def _hashes(conn: sqlite3.Connection, pin: str) -> tuple[str, str]:
    """(keyed hash, unkeyed hash of the first build) of `pin`, from one scrypt."""
    digest = hashlib.scrypt(pin.encode("utf-8"), salt=_salt(conn), n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32)
    keyed = sealer_of(conn).mac("officer-pin", digest)
    return HASH_PREFIX + keyed.hex(), LEGACY_PREFIX + digest.hex()


def pin_hash(conn: sqlite3.Connection, pin: str) -> str:
    """The stored form of `pin`: scrypt with the device's salt, keyed with its key."""
    return _hashes(conn, pin)[0]


def check_name(name: str) -> str:
    """The name as records carry it: NFC (a terminal may send decomposed marks, which
    would enrol "Nguyễn" twice and sign records with another string), spaces collapsed."""
    cleaned = " ".join(unicodedata.normalize("NFC", name).split())
    if not cleaned or len(cleaned) > NAME_MAX or any(c < " " for c in name):
        raise OfficerError(f"officer name must be 1-{NAME_MAX} printable characters")
    return cleaned


def check_pin(pin: str) -> str:
    if not PIN_RE.fullmatch(pin):
        raise OfficerError("PIN must be 4-12 digits (the keypad has digits only)")
    return pin


def enrol(conn: sqlite3.Connection, name: str, pin: str,
          reserved: Sequence[str] = ()) -> bool:
    """Enrol `name` with `pin`, or give an enrolled (or disabled) officer a new PIN.

    Returns True when something changed; enrolling the same name with the same PIN
    again is a no-op, so a provisioning step can be re-run. A PIN already held by
    another active officer is refused, and so is one of the `reserved` PINs (the
    configured shared officer and technician PINs): the keypad would open that
    role with it and name nobody, or the officer would hold the technician's key.
    """
    name, pin = check_name(name), check_pin(pin)
    if any(r and hmac.compare_digest(r.encode("utf-8"), pin.encode("utf-8"))
           for r in reserved):
        raise OfficerError("that PIN is the device's shared officer or technician PIN "
                           "(web.officer_pin, web.technician_pin); choose another")
    with transaction(conn):
        digest, legacy = _hashes(conn, pin)
        holder = conn.execute("SELECT name FROM officers WHERE pin_hash IN (?, ?)",
                              (digest, legacy)).fetchone()
        if holder is not None and holder[0] != name:
            raise OfficerError("that PIN is already used by another officer; choose another")
        row = conn.execute("SELECT pin_hash, disabled_at FROM officers WHERE name=?",
                           (name,)).fetchone()
        if row is not None and row[0] == digest and row[1] is None:
            return False
        t = now()
        if row is None:
            conn.execute("INSERT INTO officers(name, pin_hash, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?)", (name, digest, t, t))
        else:
            conn.execute("UPDATE officers SET pin_hash=?, updated_at=?, disabled_at=NULL "
                         "WHERE name=?", (digest, t, name))
    return True


def disable(conn: sqlite3.Connection, name: str) -> bool:
    """The officer's PIN stops opening the screens; the name stays for the records."""
    cur = conn.execute("UPDATE officers SET disabled_at=?, updated_at=? "
                       "WHERE name=? AND disabled_at IS NULL", (now(), now(), check_name(name)))
    return cur.rowcount > 0


def match(conn: sqlite3.Connection, pin: str) -> str | None:
    """The active officer whose PIN this is, or None (one scrypt, whatever the count)."""
    if not PIN_RE.fullmatch(pin) or not any_enrolled(conn):
        return None
    digest, legacy = _hashes(conn, pin)
    for name, stored in conn.execute(
            "SELECT name, pin_hash FROM officers WHERE disabled_at IS NULL").fetchall():
        if hmac.compare_digest(stored, digest):
            return str(name)
        if hmac.compare_digest(stored, legacy):  # the first build's unkeyed hash
            conn.execute("UPDATE officers SET pin_hash=? WHERE name=? AND pin_hash=?",
                         (digest, name, legacy))
            return str(name)
    return None


def is_active(conn: sqlite3.Connection, name: str) -> bool:
    """Whether `name` is enrolled and not disabled: a session opened with their PIN
    lasts only while this holds (`officer remove` must end it, not wait for idle)."""
    return conn.execute("SELECT 1 FROM officers WHERE name=? AND disabled_at IS NULL",
                        (name,)).fetchone() is not None


def any_enrolled(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM officers WHERE disabled_at IS NULL LIMIT 1"
                        ).fetchone() is not None


def listing(conn: sqlite3.Connection) -> list[Officer]:
    return [Officer(r[0], r[1], r[2] is not None) for r in conn.execute(
        "SELECT name, created_at, disabled_at FROM officers ORDER BY name")]
