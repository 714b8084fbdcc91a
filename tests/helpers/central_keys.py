"""Central ack keys as OpenSSL's command line makes them, and the technician's
`appliance provision central-key` step, for the tests of the key change.

Keys come from `openssl`, not from this project's code, and a key's id is worked out
here from OpenSSL's own DER output (the raw key is its last 32 bytes), so the
device's reading of its key file is checked against an independent maker.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
from pathlib import Path

from appliance.cli import _resolve, build_parser


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
