"""Signed records written straight into a device database, for sync and outbox tests.

The records module builds the real ones from scans; these tests only need rows of the
same shape (a dossier, a record whose body names its PDFs, the outbox row committed
in the same transaction) without a scanner or OCR.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from appliance.store import outbox
from appliance.store.db import transaction
from appliance.store.files import FileStore


@dataclass(frozen=True)
class TestRecord:
    __test__ = False  # not a pytest class

    record_id: str
    sha256: str
    body_json: str
    dossier_code: str
    file_shas: list[str]
    result_codes: list[str]


def add_record(conn: sqlite3.Connection, files_root: Path, *, device_id: str = "kiosk-01",
               pdf_sizes: tuple[int, ...] = (5000,), seq: int | None = None) -> TestRecord:
    if seq is None:
        seq = conn.execute("SELECT COUNT(*) FROM dossiers").fetchone()[0] + 1
    code = f"000.00.12.H42-261125-{seq:04d}"
    record_id = str(uuid.uuid4())
    store = FileStore(files_root)
    papers = []
    shas: list[str] = []
    for ordinal, size in enumerate(pdf_sizes, start=1):
        data = b"%PDF-1.7\n" + os.urandom(max(0, size - 9))
        sha = store.put(data, ".pdf")
        shas.append(sha)
        papers.append({
            "ordinal": ordinal, "result_code": f"{code}.{ordinal:02d}", "title": "Tờ khai",
            "page_count": 1,
            "file": {"sha256": sha, "size": len(data), "media_type": "application/pdf",
                     "name": f"{code}.{ordinal:02d}.pdf"},
            "fields": {"ho_ten": "Nguyễn Văn An"}, "metadata": {"Language": "vi"},
        })
    body = {
        "schema": "bhxh.digitization.record/1", "record_id": record_id, "device_id": device_id,
        "agency_code": "000.00.12.H42", "dossier_code": code, "procedure_code": "1.000000",
        "signed_by": "Nguyễn Thị Lan", "signed_at": "2026-11-25T00:00:00+00:00",
        "created_at": "2026-11-25T00:00:00+00:00", "papers": papers,
    }
    body_json = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    sha = hashlib.sha256(body_json.encode("utf-8")).hexdigest()
    now = time.time()
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO dossiers(code, procedure_code, status, created_at, signed_at, signed_by) "
            "VALUES (?, '1.000000', 'signed', ?, ?, 'Nguyễn Thị Lan')", (code, now, now))
        conn.execute(
            "INSERT INTO records(record_id, dossier_id, body_json, sha256, created_at) "
            "VALUES (?, ?, ?, ?, ?)", (record_id, cur.lastrowid, body_json, sha, now))
        outbox.enqueue(conn, record_id)
    return TestRecord(record_id, sha, body_json, code, shas,
                      [p["result_code"] for p in papers])
