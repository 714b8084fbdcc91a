"""The central receiver seals what it stores with its own key (central.key_file): record
bodies, files and chunks hold no personal data in clear, and a wrong or missing key is
refused at open with nothing written. Keys are made at test time."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from appliance.central import store
from appliance.central.db import connect
from appliance.central.errors import CentralStoreError
from appliance.sync import wire
from appliance.system import crypto
from appliance.system.crypto import KeyProblem

CCCD = "001203009876"
NAME = "NGUYỄN VĂN THƯỜNG"


def _message(pdf: bytes) -> wire.RecordMessage:
    body = json.dumps({"record_id": "r-1", "device_id": "kiosk-01", "dossier_code": "D-1",
                       "papers": [{"result_code": "D-1.01",
                                   "fields": {"values": {"cccd": CCCD, "full_name": NAME}},
                                   "file": {"sha256": hashlib.sha256(pdf).hexdigest(),
                                            "size": len(pdf)}}]},
                      ensure_ascii=False)
    return wire.RecordMessage("r-1", hashlib.sha256(body.encode()).hexdigest(), body, False)


def test_bodies_files_and_chunks_are_sealed_and_read_back_clear(tmp_path: Path):
    path = tmp_path / "central.sqlite3"
    conn = connect(path)
    pdf = f"%PDF-1.7 {NAME} {CCCD} ".encode() * 50
    sha = hashlib.sha256(pdf).hexdigest()
    half = len(pdf) // 2
    store.put_chunk(conn, "kiosk-01", wire.Chunk("r-1", sha, 0, 2, len(pdf), pdf[:half]))
    raw = b"".join(Path(p).read_bytes() for p in tmp_path.glob("central.sqlite3*"))
    assert CCCD.encode() not in raw, "a chunk in clear"
    store.put_chunk(conn, "kiosk-01", wire.Chunk("r-1", sha, 1, 2, len(pdf), pdf[half:]))
    msg = _message(pdf)
    assert store.put_record(conn, "kiosk-01", msg).ack
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    conn.close()
    [row] = store.list_records(path)
    assert row["body_json"] == msg.body_json and row["files"] == [sha]
    assert store.get_file(path, sha) == pdf
    raw = b"".join(Path(p).read_bytes() for p in tmp_path.glob("central.sqlite3*"))
    for needle in (CCCD, NAME, "%PDF"):
        assert needle.encode() not in raw, f"{needle} in clear in the central database"


def test_a_swapped_file_does_not_open(tmp_path: Path):
    path = tmp_path / "central.sqlite3"
    conn = connect(path)
    for data in (b"A" * 100, b"B" * 100):
        sha = hashlib.sha256(data).hexdigest()
        store.put_chunk(conn, "kiosk-01", wire.Chunk("r", sha, 0, 1, len(data), data))
    a, b = (hashlib.sha256(x * 100).hexdigest() for x in (b"A", b"B"))
    conn.execute("UPDATE files SET data=(SELECT data FROM files WHERE sha256=?) WHERE sha256=?",
                 (b, a))
    conn.close()
    with pytest.raises(CentralStoreError, match="does not open"):
        store.get_file(path, a)


def test_wrong_or_missing_central_key_is_refused(tmp_path: Path):
    path = tmp_path / "central.sqlite3"
    connect(path).close()
    key = Path(f"{path}.key")
    assert key.exists()
    key.unlink()
    with pytest.raises(KeyProblem, match="restore that key file"):
        connect(path)
    assert not key.exists()
    crypto.create_key(key)
    with pytest.raises(KeyProblem, match="does not match"):
        connect(path)


def test_a_named_central_key_must_exist(tmp_path: Path):
    key = tmp_path / "etc" / "central.key"
    with pytest.raises(KeyProblem):
        connect(tmp_path / "central.sqlite3", key_file=key)
    crypto.create_key(key)
    connect(tmp_path / "central.sqlite3", key_file=key).close()
