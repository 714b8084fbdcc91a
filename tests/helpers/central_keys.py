"""Central ack keys as OpenSSL's command line makes them, and the technician's
`appliance provision central-key` step, for the tests of the key change.

Keys come from `openssl`, not from this project's code, and a key's id is worked out
here from OpenSSL's own DER output (the raw key is its last 32 bytes), so the
device's reading of its key file is checked against an independent maker.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import subprocess
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.cli import _resolve, build_parser
from appliance.store.db import connect, get_state
from appliance.system import central_key
from appliance.system.config import Config


def openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], check=True, capture_output=True,
                          timeout=30).stdout


def ed25519(folder: Path, name: str) -> tuple[Path, Path, str]:
    """An Ed25519 key made by OpenSSL (README step 1: genpkey, then pkey -pubout), its
    public PEM, and its key id computed from OpenSSL's DER SubjectPublicKeyInfo."""
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    openssl("genpkey", "-algorithm", "ed25519", "-out", str(private))
    openssl("pkey", "-in", str(private), "-pubout", "-out", str(public))
    der = openssl("pkey", "-in", str(private), "-pubout", "-outform", "DER")
    assert len(der) == 44
    return private, public, hashlib.sha256(der[-32:]).hexdigest()[:16]


def provision(config_file: Path, folder: Path, *argv: str) -> tuple[int, str]:
    """`appliance provision central-key ARGV` on this configuration file, as typed."""
    out = io.StringIO()
    args = build_parser().parse_args(["--config", str(config_file), "provision",
                                      "central-key", "--dir", str(folder), *argv])
    with contextlib.redirect_stdout(out):
        rc = _resolve(args.command.run)(args)
    return rc, out.getvalue()


def hand_built_batch_ack(private_pem: Path, device_id: str, records: list[tuple[str, str]],
                         **extra: object) -> bytes:
    """An "acks" message built by hand, not by this project's encoder: the signed bytes
    as the wire format documents them (label, device, repr of the time, flat items),
    signed with this PEM key; `extra` fields added as given (a "kid", say)."""
    key = serialization.load_pem_private_key(private_pem.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey), private_pem
    at = time.time()
    flat = [v for record_id, sha in records for v in (record_id, sha, "stored")]
    signed = json.dumps(["appliance-acks/1", device_id, repr(at), flat],
                        separators=(",", ":")).encode()
    message = {"v": 1, "type": "acks", "device_id": device_id, "received_at": at,
               "items": flat, "sig": base64.b64encode(key.sign(signed)).decode()}
    message.update(extra)
    return json.dumps(message).encode()


def refused_ack_keys(config: Config) -> dict[str, tuple[int, float]]:
    """The key ids the device's sync counted refused acks naming, with (count, last)."""
    conn = connect(config.paths.database)
    try:
        found = get_state(conn, central_key.REFUSED_ACKS_STATE_KEY)
    finally:
        conn.close()
    counted = central_key.refused_acks(found[0]) if found else None
    return counted.keys if counted else {}
