"""Dossier lifecycle, codes and the atomic sign-off, on a real SQLite file."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime

import pytest
from PIL import Image, ImageDraw

from appliance.records import codes, dossiers
from appliance.records import pages as page_store
from appliance.records.errors import InvalidState, NothingScanned, SequenceExhausted
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.system.config import Config, with_overrides

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4


def scanned_dossier(conn: sqlite3.Connection, config: Config, pages: int = 2) -> int:
    """A dossier with one paper whose second page is blank, stored as the worker does."""
    files = FileStore(config.paths.files)
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    paper: int | None = None
    for n in range(pages):
        image = Image.new("RGB", (300, 420), "white")
        if n != 1:
            ImageDraw.Draw(image).rectangle((30, 40 + n * 10, 270, 60 + n * 10), fill="black")
        paper = page_store.store_page(conn, files, dossier_id, paper, image, "Tờ khai TK1-TS",
                                      dpi=200).paper_id
    assert paper is not None
    page_store.store_paper_pdf(conn, files, paper, PDF, {"values": {"cccd": "001"}})
    return dossier_id


def test_dossier_code_follows_circular_01_2018(conn, config):
    dossier = dossiers.get(conn, dossiers.create(conn, config, "tk1-ts"))
    today = codes.receipt_day(dossier.created_at).strftime("%y%m%d")
    assert dossier.code == f"000.00.12.H42-{today}-0001"
    second = dossiers.get(conn, dossiers.create(conn, config, "khac"))
    assert second.code.endswith("-0002")


def test_sequence_survives_reopening_and_respects_the_device_slice(tmp_path):
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path)},
                            device={"sequence_first": 5001, "sequence_last": 5002})
    first = connect(config.paths.database)
    a = dossiers.get(first, dossiers.create(first, config, "tk1-ts")).code
    first.close()
    again = connect(config.paths.database)  # a reboot: the sequence continues
    b = dossiers.get(again, dossiers.create(again, config, "tk1-ts")).code
    assert (a[-4:], b[-4:]) == ("5001", "5002")
    with pytest.raises(SequenceExhausted):
        dossiers.create(again, config, "tk1-ts")
    assert len(dossiers.list_ids(again)) == 2


def test_unknown_procedure_changes_nothing(conn, config):
    from appliance.records.errors import UnknownProcedure

    with pytest.raises(UnknownProcedure):
        dossiers.create(conn, config, "no-such")
    assert dossiers.list_ids(conn) == []
    assert conn.execute("SELECT COUNT(*) FROM code_sequences").fetchone()[0] == 0


def test_submit_requires_a_finished_paper(conn, config):
    empty = dossiers.create(conn, config, "tk1-ts")
    with pytest.raises(NothingScanned):
        dossiers.submit(conn, empty)
    assert dossiers.get(conn, empty).status == "open"


def test_sign_off_writes_codes_record_and_outbox_together(conn, config):
    dossier_id = scanned_dossier(conn, config)
    with pytest.raises(InvalidState):  # not submitted yet
        dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")
    dossiers.submit(conn, dossier_id)
    record_id = dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")
    dossier = dossiers.get(conn, dossier_id)
    assert dossier.status == "signed" and dossier.delivery == "pending"
    assert dossier.papers[0].result_code == f"{dossier.code}.01"
    body = json.loads(dossiers.record_of(conn, record_id).body_json)
    # The record names the signed PDF/A built at sign-off, not the worker's PDF.
    assert body["papers"][0]["file"]["sha256"] == dossier.papers[0].pdf_sha256
    assert dossier.papers[0].pdf_sha256 != hashlib.sha256(PDF).hexdigest()
    assert body["papers"][0]["blank_pages"] == [2]
    assert body["papers"][0]["metadata"]["PageAmount"] == 2
    assert body["signed_by"] == "Nguyễn Thị Lan"
    with pytest.raises(InvalidState):  # signing twice issues nothing new
        dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1


def test_sign_off_rolls_back_whole_when_a_step_fails(conn, config):
    dossier_id = scanned_dossier(conn, config)
    dossiers.submit(conn, dossier_id)
    # A trigger makes the outbox insert fail after codes and record were written.
    conn.execute("CREATE TEMP TRIGGER boom BEFORE INSERT ON outbox "
                 "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(sqlite3.DatabaseError):
        dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")
    dossier = dossiers.get(conn, dossier_id)
    assert dossier.status == "submitted"
    assert dossier.papers[0].result_code is None
    assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0


def test_receipt_day_is_vietnam_time():
    # 2026-11-24 18:30 UTC is already 25 November in Hà Nội.
    at = datetime.fromisoformat("2026-11-24T18:30:00+00:00").timestamp()
    assert codes.receipt_day(at).strftime("%y%m%d") == "261125"


def test_record_ids_are_uuid7_growing_with_time_and_never_repeat():
    """The central office indexes records by id: ids that grow with time append to its
    index instead of landing on a random page each (see new_record_id)."""
    import uuid as uuid_mod

    from appliance.sync import wire

    at = 1_795_000_000.0
    ids = [dossiers.new_record_id(at + i / 1000) for i in range(2000)]
    assert ids == sorted(ids)
    parsed = [uuid_mod.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {
        uuid_mod.RFC_4122}
    assert [u.int >> 80 for u in parsed[:3]] == [int(at * 1000) + k for k in range(3)]
    same_ms = {dossiers.new_record_id(at) for _ in range(10_000)}
    assert len(same_ms) == 10_000
    assert all(wire._RECORD_ID_RE.match(i) for i in ids)  # noqa: SLF001
