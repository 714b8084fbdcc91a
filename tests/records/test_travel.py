"""What travels to the central office for a signed dossier: each paper's metadata
document (result.schema.json) and its signed PDF by sha256, inside the record body
the sync service sends byte for byte; the central receiver keeps it; and
`appliance record export` hands out the same documents and PDFs.

The record is fed to the central office's own store (appliance/central/store.py) the
way the receiver does after the wire: the PDF as chunks, then the record message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from appliance.central import store as central
from appliance.central.db import connect as central_connect
from appliance.records import corrections, dossiers, export, result, signing
from appliance.sync import wire
from tests.helpers.signed_papers import files_of, scanned_forms

OFFICER = "Nguyễn Thị Lan"


@pytest.fixture
def signed(conn, config):
    forms = scanned_forms(conn, config, ((1, 2), (3,)), submit=False)
    first = dossiers.get(conn, forms.dossier_id).papers[0]
    corrections.correct_field(conn, config, dossier_id=forms.dossier_id, paper_id=first.id,
                              field="phone", value="0912 345 678", officer="Lê Văn Bình")
    dossiers.submit(conn, forms.dossier_id)
    record_id = dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
    return forms.dossier_id, record_id


def test_each_paper_metadata_travels_in_the_record_and_agrees_with_export(
        conn, config, signed, tmp_path: Path):
    dossier_id, record_id = signed
    dossier = dossiers.get(conn, dossier_id)
    record = dossiers.record_of(conn, record_id)
    assert hashlib.sha256(record.body_json.encode()).hexdigest() == record.sha256
    body = json.loads(record.body_json)
    written = export.export_dossier(conn, files_of(conn, config), dossier.code,
                                    tmp_path / "out")
    assert {w.name for w in written} == {f"{p.result_code}.{ext}" for p in dossier.papers
                                         for ext in ("pdf", "json")} | {"record.json"}
    assert (tmp_path / "out" / "record.json").read_text("utf-8") == record.body_json
    assert len(body["papers"]) == len(dossier.papers) == 2
    for sent, paper in zip(body["papers"], dossier.papers, strict=True):
        document = sent["result"]
        result.validate(document)  # the travelled copy follows the schema itself
        exported_json = (tmp_path / "out" / f"{paper.result_code}.json").read_bytes()
        exported_pdf = (tmp_path / "out" / f"{paper.result_code}.pdf").read_bytes()
        assert json.loads(exported_json) == document
        assert hashlib.sha256(exported_json).hexdigest() == sent["result_sha256"]
        pdf_sha = hashlib.sha256(exported_pdf).hexdigest()
        assert pdf_sha == sent["file"]["sha256"] == document["file"]["sha256"] == \
            paper.pdf_sha256
        assert document["result_code"] == sent["result_code"] == paper.result_code
        assert document["page_count"] == sent["page_count"] == len(paper.pages)
    phone = body["papers"][0]["result"]["fields"]["phone"]
    assert (phone["value"], phone["source"], phone["corrected_by"]) == (
        "0912345678", "officer", "Lê Văn Bình")


def test_the_central_receiver_keeps_the_metadata_and_the_pdf(conn, config, signed,
                                                             tmp_path: Path):
    dossier_id, record_id = signed
    record = dossiers.record_of(conn, record_id)
    files = files_of(conn, config)
    db = tmp_path / "central.sqlite3"
    cconn = central_connect(db)
    device = config.device.id
    for sha, size in wire.record_files(record.body_json):
        pdf = files.read(sha, result.PDF_SUFFIX)
        assert len(pdf) == size
        central.put_chunk(cconn, device, wire.Chunk(record_id, sha, 0, 1, size, pdf))
    stored = central.put_record(cconn, device,
                                wire.RecordMessage(record_id, record.sha256, record.body_json))
    assert stored.ack, stored
    cconn.close()
    [row] = central.list_records(db)
    assert row["body_json"] == record.body_json  # kept byte for byte
    kept = json.loads(row["body_json"])
    for paper in kept["papers"]:
        document = paper["result"]
        result.validate(document)
        pdf = central.get_file(db, document["file"]["sha256"])
        assert pdf is not None and hashlib.sha256(pdf).hexdigest() == paper["file"]["sha256"]
        assert signing.result_digest(document) == paper["result_sha256"]


def test_export_refuses_a_record_whose_metadata_differs(conn, config, signed, tmp_path):
    """The record's copy and the stored document are compared, not trusted."""
    dossier_id, record_id = signed
    dossier = dossiers.get(conn, dossier_id)
    record = dossiers.record_of(conn, record_id)
    body = json.loads(record.body_json)
    body["papers"][0]["result"]["fields"]["phone"]["value"] = "0900000000"
    from appliance.store.db import aad, seal_text

    conn.execute("UPDATE records SET body_json=? WHERE record_id=?",
                 (seal_text(conn, json.dumps(body, ensure_ascii=False),
                            aad("records", "body_json", record_id)), record_id))
    with pytest.raises(export.ExportError, match="metadata in the record differs"):
        export.export_dossier(conn, files_of(conn, config), dossier.code, tmp_path / "x")
