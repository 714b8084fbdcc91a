"""Signed records in a device database, for sync and outbox tests.

Made the way the product makes them: a dossier opened, a page stored, a PDF of the
wanted size kept for each paper, submitted and signed off (the record and its outbox
row in one transaction). Only the scanner, the OCR and the PDF's content are left
out: the PDF is random bytes of the size a test needs (chunking, big files).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from appliance.records import dossiers, pages
from appliance.store.files import FileStore
from appliance.system.config import Config, with_overrides

OFFICER = "Nguyễn Thị Lan"


@dataclass(frozen=True)
class TestRecord:
    __test__ = False  # not a pytest class

    record_id: str
    sha256: str
    body_json: str
    dossier_code: str
    file_shas: list[str]
    result_codes: list[str]


def _page(n: int) -> Image.Image:
    image = Image.new("RGB", (64, 90), "white")
    ImageDraw.Draw(image).rectangle((8, 8 + n % 40, 56, 20 + n % 40), fill="black")
    return image


def device_config(device_id: str = "kiosk-01") -> Config:
    return with_overrides(Config(), device={"id": device_id})


def submitted_dossier(conn: sqlite3.Connection, config: Config, files_root: Path,
                      pdf_sizes: tuple[int, ...] = (5000,)) -> int:
    """A dossier ready for sign-off: one paper, with one page and a PDF, per size."""
    files = FileStore(files_root)
    dossier_id = dossiers.create(conn, config, "khac")
    for n, size in enumerate(pdf_sizes, start=1):
        stored = pages.store_page(conn, files, dossier_id, None, _page(n), "Tờ khai", dpi=200)
        pdf = b"%PDF-1.7\n" + os.urandom(max(0, size - 9))
        pages.store_paper_pdf(conn, files, stored.paper_id, pdf,
                              {"values": {"full_name": "NGUYỄN VĂN AN"}})
    dossiers.submit(conn, dossier_id)
    return dossier_id


def add_record(conn: sqlite3.Connection, files_root: Path, *, device_id: str = "kiosk-01",
               pdf_sizes: tuple[int, ...] = (5000,), seq: int | None = None) -> TestRecord:
    """One signed record with one paper per entry of `pdf_sizes`.

    `seq` is accepted for older callers and ignored: the dossier code now comes from
    the device's real sequence, which gives each record its own code all the same.
    """
    del seq
    config = device_config(device_id)
    # sign_results=False: the stand-in PDFs keep their sizes (no PDF/A is built).
    record_id = dossiers.sign_off(conn, config,
                                  submitted_dossier(conn, config, files_root, pdf_sizes), OFFICER,
                                  sign_results=False)
    record = dossiers.record_of(conn, record_id)
    body = json.loads(record.body_json)
    return TestRecord(record_id, record.sha256, record.body_json, body["dossier_code"],
                      [p["file"]["sha256"] for p in body["papers"]],
                      [p["result_code"] for p in body["papers"]])
