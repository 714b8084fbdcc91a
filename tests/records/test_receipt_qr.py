"""The receipt's QR payload (records/receipt.py), read back by zxing-cpp from the
printed page, with values the authors did not choose: a '|' and decomposed letters in
the agency's name, a BHXH number where no CCCD was read, nothing read at all."""

from __future__ import annotations

import io
import unicodedata
from types import SimpleNamespace

import pytest
from PIL import Image

from appliance.imaging.receipt import receipt_pdf
from appliance.records.receipt import RECEIPT_QR_PREFIX, applicant_id, receipt_qr_payload
from appliance.system.config import Config, with_overrides

zxingcpp = pytest.importorskip("zxingcpp")


def _dossier(*values: dict[str, str]) -> SimpleNamespace:
    papers = tuple(SimpleNamespace(fields={"values": v}) for v in values)
    return SimpleNamespace(code="000.00.12.H42-261127-0007", procedure_code="tk1-ts",
                           papers=papers)


def test_the_applicant_is_the_cccd_read_else_the_bhxh_number_else_nothing():
    assert applicant_id(_dossier({"bhxh_number": "0123456789"},
                                 {"cccd": "001203004567"})) == "001203004567"
    assert applicant_id(_dossier({"bhxh_number": "0123456789"})) == "0123456789"
    assert applicant_id(_dossier({"cccd": "００１"}, {"full_name": "AN"})) == ""
    assert applicant_id(_dossier()) == ""


def test_the_payload_keeps_its_fields_apart_whatever_the_names_hold():
    agency = unicodedata.normalize("NFD", "BHXH quận | Ba Đình\n")
    config = with_overrides(Config(), device={"agency_name": agency})
    payload = receipt_qr_payload(config, _dossier({"cccd": "001203004567"}),
                                 "Phiếu | biên nhận", 1_795_700_000.0)
    fields = payload.split("|")
    assert "|".join(fields[:2]) == RECEIPT_QR_PREFIX and len(fields) == 9
    assert fields[2:5] == ["000.00.12.H42-261127-0007", "tk1-ts", "001203004567"]
    assert fields[5] == "Phiếu / biên nhận"
    assert fields[6] == "BHXH quận / Ba Đình (000.00.12.H42), kiosk-01"
    assert fields[7] == "2026-11-26T20:33:20+07:00" and fields[8] == ""
    assert unicodedata.is_normalized("NFC", payload)


def test_the_printed_qr_is_at_the_top_left_and_reads_back_whole(tmp_path):
    import subprocess

    payload = receipt_qr_payload(Config(), _dossier({"cccd": "001203004567"}),
                                 "Phiếu biên nhận hồ sơ số hóa", 1_795_700_000.0)
    pdf = receipt_pdf(agency="Bảo hiểm xã hội quận Ba Đình",
                      title="Phiếu biên nhận hồ sơ số hóa", code_label="Mã hồ sơ",
                      code="000.00.12.H42-261127-0007", lines=["Hồ sơ gồm 2 giấy tờ."],
                      qr=payload)
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(tmp_path / "r.pdf"),
                    str(tmp_path / "r")], check=True, timeout=60)
    page = Image.open(tmp_path / "r.png")
    [qr] = zxingcpp.read_barcodes(page)
    assert qr.text == payload
    assert qr.position.top_left.x < page.width / 3 and qr.position.top_left.y < page.height / 4
    # A strict reader takes the file (Pillow's own xref head was refused before).
    from pyhanko.pdf_utils.reader import PdfFileReader

    assert PdfFileReader(io.BytesIO(pdf), strict=True).root["/Type"] == "/Catalog"
