"""A real scan → OCR → sign flow (eSCL emulator, SANE, the worker process, the OCR
models) leaves nothing the OCR read, nor any field, in clear anywhere on the disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.records import audit, dossiers
from appliance.store import jobs
from tests.worker.test_worker import Rig, rig  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(300)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def test_scanned_read_and_signed_dossier_is_sealed_on_disk(rig: Rig):  # noqa: F811
    rig.start_scanner("--adf-pages", "2")
    rig.procs.start("worker", "worker")
    dossier_id = dossiers.create(rig.conn, rig.config, "tk1-ts")
    job = rig.wait_job(jobs.enqueue(rig.conn, "scan", dossier_id,
                                    {"source": "adf", "title": "Tờ khai TK1-TS"}))
    assert job.state == jobs.JobState.DONE, job
    dossiers.submit(rig.conn, dossier_id)
    dossiers.sign_off(rig.conn, rig.config, dossier_id, "Nguyễn Thị Lan")
    d = dossiers.get(rig.conn, dossier_id)
    read = [ln for p in d.papers for pg in p.pages for ln in (pg.ocr_text or "").splitlines()]
    assert read, "OCR read something"
    values = [s for p in d.papers for s in _strings(p.fields.get("values", {}))]
    # Long enough to be unmistakable: each line the OCR read, each field value.
    needles = {s.strip() for s in read + values if len(s.strip()) >= 8}
    assert needles
    rig.procs.stop_all()
    rig.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    data_dir = Path(rig.config.paths.data_dir)
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        for needle in needles:
            assert needle.encode("utf-8") not in raw, f"{needle!r} in clear in {path}"
    assert [e.action for e in audit.entries(rig.conn, dossier_id)] == ["scan", "scan", "sign"]
