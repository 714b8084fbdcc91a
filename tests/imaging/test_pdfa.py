"""The PDF/A-2b result: identification, output intent, embedded font, text layer in
place, pages at 100 % scale in order, and a mark band that covers none of the paper.

No PDF/A validator is packaged for Debian or PyPI (veraPDF is Java, distributed
outside the registries this project may use), so the parts of ISO 19005-2 that
matter most for an archive are checked one by one, with poppler-utils (pdffonts,
pdftotext, pdftoppm) as an independent reader and pyhanko's parser for the objects.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance.demo.synth import render_form_page
from appliance.imaging.pdfa import (
    BAND_HEIGHT,
    DocInfo,
    MarkBand,
    PdfaError,
    PdfPage,
    TextLine,
    assemble_pdfa,
)

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="poppler-utils not installed (provisioning/apt-test.txt)")

MARK = ["BẢN ĐIỆN TỬ CHUYỂN ĐỔI TỪ VĂN BẢN GIẤY",
        "Thời điểm chuyển đổi: 26/11/2026 18:05:00 (UTC+07:00)",
        "Người chuyển đổi: Nguyễn Thị Lan"]
QR = "BHXHSH|1|000.00.12.H42-261126-0001|000.00.12.H42-261126-0001.01|tk1-ts|" + "ab" * 32


def _lines(page) -> list[TextLine]:
    return [TextLine(t.text, tuple(float(v) for v in t.box)) for t in page.lines]


@pytest.fixture(scope="module")
def form():
    return render_form_page(1, dpi=100)


@pytest.fixture(scope="module")
def pdf(form) -> bytes:
    pages = [PdfPage(form.image, 100, _lines(form)),
             PdfPage(Image.new("L", (500, 700), "white"), 100),
             PdfPage(Image.new("RGB", (827, 585), "white"), 100)]
    return assemble_pdfa(pages, DocInfo("Tờ khai TK1-TS", "Nguyễn Thị Lan", "Bản điện tử"),
                         band=MarkBand(MARK, QR, ["Ký số bởi:", "Nguyễn Thị Lan"])).pdf


def _tool(*args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(args, input=stdin, capture_output=True, check=True,
                          timeout=60).stdout.decode("utf-8")


def _reader(pdf: bytes):
    from pyhanko.pdf_utils.reader import PdfFileReader

    return PdfFileReader(io.BytesIO(pdf), strict=True)


def test_pdfa_identification_and_output_intent(pdf):
    assert pdf.startswith(b"%PDF-1.7\n%") and all(b > 127 for b in pdf[10:14])
    reader = _reader(pdf)
    xmp = reader.root["/Metadata"].data.decode("utf-8")
    assert "<pdfaid:part>2</pdfaid:part>" in xmp
    assert "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    assert "/Filter" not in reader.root["/Metadata"]  # XMP readable without a PDF parser
    (intent,) = reader.root["/OutputIntents"]
    intent = intent.get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    profile = intent["/DestOutputProfile"]
    assert profile["/N"] == 3 and profile.data[36:40] == b"acsp"  # an ICC profile
    assert profile.data[16:20] == b"RGB "
    assert profile.data[8:10] in (b"\x02\x10", b"\x04\x20")  # ICC 2.1 or 4.2 (ISO 15076-1)
    from PIL import ImageCms

    ImageCms.ImageCmsProfile(io.BytesIO(profile.data))  # LittleCMS still reads it
    assert len(reader.trailer["/ID"]) == 2
    info = reader.trailer["/Info"]
    assert info["/Title"] == "Tờ khai TK1-TS" and "Tờ khai TK1-TS" in xmp
    assert "/Producer" not in info  # XMP has it; Info and XMP must never disagree


def test_the_font_is_embedded_with_a_unicode_map(pdf):
    fonts = _tool("pdffonts", "-", stdin=pdf).splitlines()[2:]
    assert fonts, "no font"
    for row in fonts:
        emb, sub, uni = row.split()[-5:-2]
        assert (emb, sub, uni) == ("yes", "yes", "yes"), row


def test_pages_in_order_at_100_percent_with_the_band_above_page_1(pdf, form):
    sizes = [(float(m.group(1)), float(m.group(2))) for m in re.finditer(
        r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", _tool("pdfinfo", "-f", "1", "-l", "9", "-"
                                                        , stdin=pdf))]
    w, h = form.image.size
    assert sizes[0] == pytest.approx((w * 72 / 100, h * 72 / 100 + BAND_HEIGHT), abs=0.01)
    assert sizes[1:] == [pytest.approx((360, 504), abs=0.01),
                         pytest.approx((595.44, 421.2), abs=0.01)]
    # A4 at 100 dpi still prints as A4 (210 mm wide), whatever dpi it was scanned at.
    assert sizes[0][0] * 25.4 / 72 == pytest.approx(210, abs=0.3)


def test_the_paper_is_not_covered(pdf, form, tmp_path):
    """Rendered at the scan's dpi, page 1 below the band is the scanned image again."""
    _tool("pdftoppm", "-r", "100", "-f", "1", "-l", "1", "-png", "-", str(tmp_path / "p"),
          stdin=pdf)
    page = np.asarray(Image.open(next(tmp_path.glob("p*.png"))).convert("L"))
    # The paper is the bottom of page 1 (PDF pages grow upwards from the paper).
    rows = min(page.shape[0], form.image.height)
    paper = page[page.shape[0] - rows:, :form.image.width]
    original = np.asarray(form.image.convert("L"))[form.image.height - rows:, :]
    assert rows >= form.image.height - 1 and paper.shape == original.shape
    diff = np.abs(paper.astype(int) - original.astype(int))
    # JPEG and a sub-pixel offset blur letter edges a little; anything drawn over the
    # paper (a mark, a box, a QR) would change whole areas by far more.
    assert float(diff.mean()) < 6.0
    assert float((diff > 128).mean()) < 0.01


def test_qr_decodes_from_a_rendering(pdf, tmp_path):
    zxingcpp = pytest.importorskip("zxingcpp")
    _tool("pdftoppm", "-r", "150", "-f", "1", "-l", "1", "-png", "-", str(tmp_path / "q"),
          stdin=pdf)
    image = Image.open(next(tmp_path.glob("q*.png")))
    found = [r.text for r in zxingcpp.read_barcodes(image)]
    assert QR in found


def test_the_text_layer_is_found_in_place(pdf, form):
    text = _tool("pdftotext", "-f", "1", "-l", "1", "-", "-", stdin=pdf)
    assert "BẢN ĐIỆN TỬ CHUYỂN ĐỔI TỪ VĂN BẢN GIẤY" in text  # the mark, visible
    name = form.fields["full_name"]
    assert name in text
    # Word boxes: the first word of the name sits on the OCR box of its line.
    html = _tool("pdftotext", "-bbox", "-f", "1", "-l", "1", "-", "-", stdin=pdf)
    line = next(t for t in form.lines if name in t.text)
    first = name.split()[0]
    words = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" '
                       r'yMax="([\d.]+)">([^<]*)</word>', html)
    boxes = [tuple(float(v) for v in w[:4]) for w in words if w[4] == first]
    scale = 72 / 100
    x0, y0, x1, y1 = (v * scale for v in line.box)
    y0, y1 = y0 + BAND_HEIGHT, y1 + BAND_HEIGHT
    assert any(x0 - 2 <= bx0 <= x1 and y0 - 4 <= by0 <= y1 and y0 <= by1 <= y1 + 4
               for bx0, by0, _bx1, by1 in boxes), (line, boxes)


def test_text_read_on_a_turned_page_is_turned_back(form):
    upside_down = form.image.rotate(180)
    w, h = form.image.size
    # OCR turned the stored (upside-down) page by 180 degrees and read it upright.
    pdf = assemble_pdfa([PdfPage(upside_down, 100, _lines(form), text_rotation=180)],
                        DocInfo("t", "a")).pdf
    text = _tool("pdftotext", "-", "-", stdin=pdf)
    assert form.fields["full_name"] in text
    assert (w, h) == upside_down.size


def test_characters_the_font_lacks_are_left_out_not_drawn_as_notdef():
    pdf = assemble_pdfa([PdfPage(Image.new("RGB", (400, 200), "white"), 200,
                                 [TextLine("ABC \u6f22 XYZ", (10, 10, 300, 40))])],
                        DocInfo("t", "a")).pdf
    text = _tool("pdftotext", "-", "-", stdin=pdf)
    assert "ABC" in text and "XYZ" in text and "\u6f22" not in text


def test_same_input_same_bytes_and_bad_input_refused(form):
    from datetime import UTC, datetime

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    pages = [PdfPage(form.image, 100, _lines(form))]
    one = assemble_pdfa(pages, DocInfo("t", "a", created=when)).pdf
    assert one == assemble_pdfa(pages, DocInfo("t", "a", created=when)).pdf
    with pytest.raises(PdfaError):
        assemble_pdfa([], DocInfo("t", "a"))
    with pytest.raises(PdfaError):
        assemble_pdfa([PdfPage(form.image, 0)], DocInfo("t", "a"))


def test_a_narrow_paper_gets_a_wider_first_page_not_a_smaller_image(tmp_path: Path):
    result = assemble_pdfa([PdfPage(Image.new("RGB", (64, 90), "white"), 200)],
                           DocInfo("t", "a"), band=MarkBand(MARK, QR))
    (w, h), = result.page_sizes
    assert w >= 420 and h == pytest.approx(90 * 72 / 200 + BAND_HEIGHT)
    x0, y0, x1, y1 = result.signature_box
    assert x0 < 20 and y0 >= 90 * 72 / 200 and y1 <= h  # top left, above the paper


def test_the_mark_stays_between_the_signature_box_and_the_qr_code(pdf):
    """Every word of the mark ends before the QR code's box begins (its quiet zone
    must stay white for a phone to read it)."""
    html = _tool("pdftotext", "-bbox", "-f", "1", "-l", "1", "-", "-", stdin=pdf)
    words = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" '
                       r'yMax="([\d.]+)">', html)
    qr_left = 595.44 - 6.0 - (BAND_HEIGHT - 12.0)
    band = [(float(x0), float(x1)) for x0, y0, x1, y1 in words if float(y1) <= BAND_HEIGHT]
    assert len(band) > 10
    assert all(x1 <= qr_left for _x0, x1 in band)
