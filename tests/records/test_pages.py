"""Storing scanned pages, their text and the signed record's body, on a real store."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from appliance.demo.synth import render_form_page
from appliance.ocr.engine import PageText, TextLine
from appliance.records import dossiers, result, signing
from appliance.records import pages as page_store
from appliance.store.db import sealer_of
from appliance.store.files import FileStore


def test_store_page_measures_skew_and_flags_a_crooked_page(conn, config):
    """The skew check runs on every stored page (it used to be tested but never called):
    its measure is kept with the page and a crooked page is flagged, not altered."""
    files = FileStore(config.paths.files)
    straight = render_form_page(1).image
    crooked = straight.rotate(2.0, resample=Image.Resampling.BICUBIC, fillcolor="white")
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    first = page_store.store_page(conn, files, dossier_id, None, straight, "Tờ khai", dpi=200)
    second = page_store.store_page(conn, files, dossier_id, first.paper_id, crooked, "Tờ khai",
                                   dpi=200)
    assert second.paper_id == first.paper_id
    assert not first.check.skewed and second.check.skewed
    [paper] = dossiers.get(conn, dossier_id).papers
    a, b = paper.pages
    assert a.skew_degrees == pytest.approx(0.0, abs=0.3) and not a.skewed
    assert b.skew_degrees == pytest.approx(2.0, abs=0.3) and b.skewed
    # the master is the page as scanned: deskewing is the officer's call, not the worker's
    assert page_store.load_image(files, b.sha256).tobytes() == crooked.tobytes()
    assert files.path(b.sha256, page_store.THUMBNAIL).exists()
    assert (b.dpi, b.width, b.height) == (200, *crooked.size)


def test_a_white_page_is_kept_and_flagged_blank(conn, config):
    files = FileStore(config.paths.files)
    dossier_id = dossiers.create(conn, config, "khac")
    stored = page_store.store_page(conn, files, dossier_id, None,
                                   Image.new("RGB", (400, 560), "white"), "x", dpi=150)
    assert stored.check.blank
    [paper] = dossiers.get(conn, dossier_id).papers
    assert [p.blank for p in paper.pages] == [True]


def test_page_text_round_trips_through_its_own_json(conn, config):
    text = PageText(1.23456, (
        TextLine("Họ và tên: NGUYỄN VĂN AN", (10, 20, 300, 40), 0.91234, (0.99, 0.61234, 0.9)),
        TextLine("Trang 1", (10, 50, 80, 70), 0.8, ()),  # read before least-sure was kept
    ), rotation=180, stage_seconds={"detect": 0.5})
    back = PageText.from_json(json.loads(json.dumps(text.to_json())))
    assert [ln.text for ln in back.lines] == [ln.text for ln in text.lines]
    assert back.lines[0].least_sure == 0.6123 and back.lines[0].box == (10, 20, 300, 40)
    assert back.lines[1].char_confidences == ()
    assert (back.rotation, back.seconds, back.stage_seconds) == (180, 1.2346, {"detect": 0.5})
    # the CLI's form leaves the least sure character out, as it always has
    assert set(text.to_json(with_least_sure=False)["lines"][0]) == {"text", "box", "confidence"}

    files = FileStore(config.paths.files)
    dossier_id = dossiers.create(conn, config, "khac")
    stored = page_store.store_page(conn, files, dossier_id, None, render_form_page(2).image,
                                   "x", dpi=200)
    page_store.set_page_text(conn, stored.page_id, text)
    [row] = page_store.paper_pages(conn, stored.paper_id)
    assert row.text == back
    [page] = dossiers.get(conn, dossier_id).papers[0].pages
    assert page.ocr_text == "Họ và tên: NGUYỄN VĂN AN\nTrang 1"
    assert page.ocr_seconds == pytest.approx(1.23456)


def test_sign_off_commits_the_body_record_body_builds(conn, config):
    """One pure function builds the signed body; sign-off stores exactly its encoding."""
    files = FileStore(config.paths.files)
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    stored = page_store.store_page(conn, files, dossier_id, None, render_form_page(3).image,
                                   "Tờ khai TK1-TS", dpi=200)
    page_store.store_paper_pdf(conn, files, stored.paper_id, b"%PDF-1.7\n...", {"values": {}})
    dossiers.submit(conn, dossier_id)
    record_id = dossiers.sign_off(conn, config, dossier_id, "Nguyễn Thị Lan")
    stored_record = dossiers.record_of(conn, record_id)
    body = json.loads(stored_record.body_json)
    dossier = dossiers.get(conn, dossier_id)
    signed_at = conn.execute("SELECT signed_at FROM dossiers WHERE id=?",
                             (dossier_id,)).fetchone()[0]
    rebuilt = signing.encode(signing.record_body(
        dossier, record_id=record_id, device=config.device,
        result_codes={p.id: p.result_code or "" for p in dossier.papers},
        officer="Nguyễn Thị Lan", signed_at=signed_at, audit=body["audit"],
        documents={p.id: result.load(FileStore(config.paths.files, sealer=sealer_of(conn)),
                                     p.pdf_sha256 or "")[1] for p in dossier.papers}))
    assert rebuilt == stored_record
    assert body["papers"][0]["result"]["file"]["sha256"] == dossier.papers[0].pdf_sha256
    assert [e["action"] for e in body["audit"]] == ["scan", "sign"]
    assert body["schema"] == signing.RECORD_SCHEMA
    assert body["papers"][0]["file"]["name"] == f"{dossier.code}.01.pdf"
