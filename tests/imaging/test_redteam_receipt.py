"""Red-team checks of the printed receipt (imaging/receipt.py) with tools the project
did not write: qpdf and pdfinfo on the PDF, zxing-cpp on a poppler rendering of it,
with agency names and texts the authors did not try."""

from __future__ import annotations

import io
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader

from appliance.imaging.receipt import receipt_pdf

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("qpdf", "pdfinfo", "pdftoppm")),
    reason="qpdf / poppler-utils not installed")
zxingcpp = pytest.importorskip("zxingcpp")

CODE = "000.00.12.H42-261127-0001"
AGENCIES = {
    "pdf-string-injection": "BHXH (quận) \\ Ba Đình )/JS (app.alert(1))/S /JavaScript (",
    "nfd": unicodedata.normalize("NFD", "Bảo hiểm xã hội quận Ba Đình"),
    "bidi-zero-width-emoji": "BHXH\u200b 😀 \u202eĐình\u2066",
    "long-with-spaces": "Bảo hiểm xã hội thành phố Hồ Chí Minh " * 4,
    "one-long-word": "A" * 400,
}


def _receipt(tmp: Path, agency: str, **extra) -> tuple[Path, subprocess.CompletedProcess]:
    pdf = receipt_pdf(agency=agency, title="Giấy biên nhận hồ sơ", code_label="Mã hồ sơ",
                      code=extra.pop("code", CODE),
                      lines=extra.pop("lines", ["Số giấy tờ: 2, số trang: 3"]),
                      footer="In lúc 27/11/2026 05:45")
    path = tmp / "receipt.pdf"
    path.write_bytes(pdf)
    return path, subprocess.run(["qpdf", "--check", str(path)], capture_output=True, timeout=60)


def _qr(tmp: Path, path: Path) -> list[str]:
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(path), str(tmp / "r")],
                   check=True, timeout=60)
    return [r.text for r in zxingcpp.read_barcodes(Image.open(tmp / "r.png"))]


@pytest.mark.parametrize("agency", list(AGENCIES.values()), ids=list(AGENCIES))
def test_hostile_agency_names_keep_a_valid_receipt_with_a_readable_code(tmp_path, agency):
    path, check = _receipt(tmp_path, agency)
    assert check.returncode == 0, check.stdout + check.stderr
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, timeout=60)
    assert info.returncode == 0
    text = info.stdout.decode("utf-8")
    author = next(line for line in text.splitlines() if line.startswith("Author:"))
    assert author.split(":", 1)[1].strip() == agency.strip()  # as given, still a string
    # strict: Pillow's xref head (generation 65536) is made valid (imaging.pillow_pdf)
    reader = PdfFileReader(io.BytesIO(path.read_bytes()), strict=True)
    assert not {"/OpenAction", "/AA", "/Names"} & set(reader.root.keys())
    assert str(reader.trailer["/Info"]["/Author"]) == agency
    assert _qr(tmp_path, path) == [CODE]


def test_a_long_code_and_many_lines_still_give_one_readable_qr(tmp_path):
    code = CODE + "-" + "9" * 120
    path, check = _receipt(tmp_path, "BHXH", code=code, lines=["dòng " * 200] * 5)
    assert check.returncode == 0
    assert _qr(tmp_path, path) == [code]


def test_vietnamese_code_text_in_the_qr_is_kept_exactly(tmp_path):
    """A code with Vietnamese letters (a template could make one) survives the QR."""
    code = "BHXH-Đình-Ưu-261127-0001"
    path, _ = _receipt(tmp_path, "BHXH", code=code)
    assert _qr(tmp_path, path) == [code]
