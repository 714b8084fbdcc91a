"""Hand-made record messages and `appliance central` as a real process, for the tests
of the central office's operator tools (--report, --decide) and its conflicts.

A record here is what an attacker or a test writes by hand: a minimal body (no
papers) naming a record id, a device and a dossier code, with the sha256 of those
exact bytes. Two codes under one record id make the two contents of a conflict.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from appliance.sync import wire

REPO = Path(__file__).resolve().parents[2]


def record_body(record_id: str, device_id: str, code: str) -> str:
    return json.dumps({"record_id": record_id, "device_id": device_id,
                       "dossier_code": code, "papers": []})


def record_sha(record_id: str, device_id: str, code: str) -> str:
    return hashlib.sha256(record_body(record_id, device_id, code).encode()).hexdigest()


def record_message(record_id: str, device_id: str, code: str, *,
                   claim: bool = False) -> bytes:
    """The record message of that body, as a device (or a squatter) publishes it."""
    return wire.encode_record(wire.RecordMessage(
        record_id, record_sha(record_id, device_id, code),
        record_body(record_id, device_id, code), claim))


def run_central(config_file: Path, *args: str,
                cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`appliance central --config config_file ARGS` as a real process (from `cwd`:
    another checkout runs that checkout's code, so PYTHONPATH is not passed on)."""
    return subprocess.run(
        [sys.executable, "-m", "appliance", "central", "--config", str(config_file), *args],
        cwd=cwd, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items()
             if k not in ("NOTIFY_SOCKET", "PYTHONPATH")})
