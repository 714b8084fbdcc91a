"""Dossiers of real-looking scanned forms, with OCR lines and fields, ready for sign-off.

Stored the way the worker stores them (pages.store_page, set_page_text,
store_paper_pdf) in the configuration's own sealed file store, so sign-off rebuilds
the signed PDF/A from exactly what a device would hold. The OCR lines are the
synthetic page's truth lines: the tests are about placing text, not reading it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from appliance.demo.synth import render_form_page
from appliance.imaging import pages as imaging
from appliance.ocr.engine import PageText, TextLine
from appliance.records import dossiers, pages
from appliance.store.db import sealer_of
from appliance.store.files import FileStore
from appliance.system.config import Config

CORRECTOR = "Lê Văn Bình"


@dataclass(frozen=True)
class ScannedForms:
    dossier_id: int
    names: list[str]  # the participant's name on each paper's first page
    page_shas: list[list[str]]  # per paper, in page order


def files_of(conn: sqlite3.Connection, config: Config) -> FileStore:
    return FileStore(config.paths.files, sealer=sealer_of(conn))


def scanned_forms(conn: sqlite3.Connection, config: Config,
                  papers: tuple[tuple[int, ...], ...] = ((1, 2),), *, dpi: int = 100,
                  submit: bool = True) -> ScannedForms:
    """One paper per tuple of seeds, one TK1-TS page per seed; the BHXH number of
    each paper carries an officer's correction, the name stays as OCR read it."""
    files = files_of(conn, config)
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    names: list[str] = []
    shas: list[list[str]] = []
    for seeds in papers:
        paper_id: int | None = None
        images = []
        forms = []
        shas.append([])
        for seed in seeds:
            form = render_form_page(seed, dpi=dpi)
            stored = pages.store_page(conn, files, dossier_id, paper_id, form.image,
                                      "Tờ khai TK1-TS", dpi=dpi)
            paper_id = stored.paper_id
            pages.set_page_text(conn, stored.page_id, PageText(0.5, tuple(
                TextLine(t.text, tuple(int(v) for v in t.box), 0.98, (0.9,))
                for t in form.lines)))
            images.append(form.image)
            forms.append(form)
            shas[-1].append(stored.sha256)
        first = forms[0].fields
        names.append(first["full_name"])
        fields = {
            "values": {"full_name": first["full_name"], "bhxh_number": first["bhxh_number"]},
            "paper_type": "tk1-ts",
            "fields": {
                "full_name": {"value": first["full_name"], "status": "valid",
                              "confidence": 0.97, "box": [100, 200, 600, 230], "page": 1},
                "bhxh_number": {"value": first["bhxh_number"], "status": "valid",
                                "confidence": 1.0, "box": [100, 300, 400, 330], "page": 1,
                                "source": "officer", "corrected_by": CORRECTOR,
                                "corrected_at": 1_790_000_000.0,
                                "ocr_value": first["bhxh_number"][:-1] + "O"},
            },
        }
        assert paper_id is not None
        pdf = imaging.assemble_pdf(images, dpi, title="Tờ khai TK1-TS", author="kiosk")
        pages.store_paper_pdf(conn, files, paper_id, pdf, fields)
    if submit:
        dossiers.submit(conn, dossier_id)
    return ScannedForms(dossier_id, names, shas)
