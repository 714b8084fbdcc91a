"""Blank and skew checks, PNG, thumbnails and PDF assembly."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.demo.synth import find_font, render_form_page
from appliance.imaging.pages import (
    assemble_pdf,
    check_page,
    encode_png,
    estimate_skew,
    ink_coverage,
    is_blank,
    thumbnail_jpeg,
)

A4_200 = (1654, 2339)


def _noisy_blank(paper=(236, 232, 222)):
    rng = np.random.default_rng(5)
    pixels = np.clip(np.array(paper)[None, None, :] + rng.integers(-10, 11, (*A4_200[::-1], 1)),
                     0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def test_blank_pages_are_detected():
    assert is_blank(Image.new("RGB", A4_200, "white"))
    assert is_blank(_noisy_blank())  # recycled paper plus sensor noise
    framed = Image.new("RGB", A4_200, "white")
    ImageDraw.Draw(framed).rectangle((0, 0, A4_200[0] - 1, A4_200[1] - 1), outline="black",
                                     width=30)  # a feeder's dark edge is not content
    assert is_blank(framed)
    dusty = _noisy_blank()
    specks = np.random.default_rng(9).uniform(100, 1500, (3000, 2))
    ImageDraw.Draw(dusty).point([(int(x), int(y)) for x, y in specks], fill=(0, 0, 0))
    assert is_blank(dusty)


def test_pages_with_content_are_not_blank():
    assert not is_blank(render_form_page(1).image)
    assert not is_blank(render_form_page(2, degrade=True).image)
    one_line = _noisy_blank()
    font = ImageFont.truetype(str(find_font("serif")), 34)
    ImageDraw.Draw(one_line).text((200, 1100), "Ghi chú: đã đối chiếu bản gốc", font=font,
                                  fill=(30, 30, 120))
    assert ink_coverage(one_line) > 0
    assert not is_blank(one_line)


def test_skew_estimate_follows_the_page():
    for seed in (2, 4, 6):
        page = render_form_page(seed, degrade=True)
        assert estimate_skew(page.image) == pytest.approx(page.skew_degrees, abs=0.35)
    assert estimate_skew(Image.new("RGB", A4_200, "white")) == 0.0
    check = check_page(render_form_page(1).image)
    assert not check.blank and abs(check.skew_degrees) < 0.3
    assert (check.width, check.height) == A4_200


def test_png_is_lossless_and_keeps_dpi():
    image = render_form_page(3, dpi=100).image
    data = encode_png(image, compress_level=1)
    back = Image.open(io.BytesIO(data))
    assert back.format == "PNG"
    assert back.tobytes() == image.tobytes()
    assert round(back.info["dpi"][0]) == 100


def test_thumbnail_fits_and_keeps_aspect():
    data = thumbnail_jpeg(render_form_page(3).image)
    thumb = Image.open(io.BytesIO(data))
    assert thumb.format == "JPEG"
    assert max(thumb.size) == 320
    assert thumb.size == (226, 320)
    small = Image.open(io.BytesIO(thumbnail_jpeg(Image.new("L", (100, 50)), max_px=64)))
    assert small.size == (64, 32)


def _pdf_pages(pdf: bytes) -> list[tuple[float, float]]:
    """MediaBox sizes in the order of the page tree (a flat /Kids array)."""
    kids = re.search(rb"/Kids \[([^\]]*)\]", pdf)
    assert kids, "no page tree"
    refs = re.findall(rb"(\d+) 0 R", kids.group(1))
    sizes = []
    for ref in refs:
        obj = re.search(rb"\n" + ref + rb" 0 obj(.*?)endobj", pdf, re.S)
        assert obj and b"/Type /Page" in obj.group(1)
        box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", obj.group(1))
        sizes.append((float(box.group(1)), float(box.group(2))))
    return sizes


def test_pdf_pages_in_order_at_scan_size():
    # Three pages of different sizes, so the order is visible in the MediaBoxes.
    images = [render_form_page(1).image, Image.new("RGB", (1000, 1400), "white"),
              Image.new("L", (1654, 1169), "white")]
    pdf = assemble_pdf(images, dpi=200, title="Hồ sơ 000.00.12.H42-230512-0005",
                       author="Nguyễn Văn An")
    assert pdf.startswith(b"%PDF-1.")
    assert int(pdf[7:8]) >= 4
    sizes = _pdf_pages(pdf)
    assert len(sizes) == 3
    expected = [(w * 72 / 200, h * 72 / 200) for w, h in
                [A4_200, (1000, 1400), (1654, 1169)]]
    for got, want in zip(sizes, expected, strict=True):
        assert got == pytest.approx(want, abs=0.01)
    # A4 at 200 dpi prints as A4: 210 x 297 mm within a pixel.
    assert sizes[0][0] * 25.4 / 72 == pytest.approx(210, abs=0.2)
    assert sizes[0][1] * 25.4 / 72 == pytest.approx(297, abs=0.2)
    assert pdf.count(b"/DeviceRGB") == 3  # colour, even for a grey input page
    assert b"/Title" in pdf and b"/Author" in pdf


def test_pdf_is_reproducible_with_a_fixed_date():
    images = [render_form_page(5, dpi=100).image]
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = assemble_pdf(images, 100, "t", "a", created=when)
    assert first == assemble_pdf(images, 100, "t", "a", created=when)
    with pytest.raises(ValueError):
        assemble_pdf([], 200, "t", "a")


def test_a_crooked_page_is_flagged_a_straight_one_is_not():
    straight = render_form_page(1).image
    crooked = straight.rotate(-1.8, resample=Image.Resampling.BICUBIC, fillcolor="white")
    assert not check_page(straight).skewed
    check = check_page(crooked)
    assert check.skewed and check.skew_degrees == pytest.approx(-1.8, abs=0.3)
    assert not check_page(Image.new("RGB", A4_200, "white")).skewed  # nothing to measure


def test_pages_of_two_resolutions_each_print_at_their_own_size(tmp_path):
    """An ID card scanned at 300 dpi and a form at 200 dpi in one paper: each page of
    the working PDF has its paper's physical size (read back by poppler's pdfinfo)."""
    import re
    import shutil
    import subprocess

    if shutil.which("pdfinfo") is None:
        pytest.skip("poppler-utils is not installed")
    card = Image.new("RGB", (1011, 638), "white")  # 85.6 x 54 mm at 300 dpi
    form = Image.new("RGB", (1654, 2339), "white")  # A4 at 200 dpi
    pdf = assemble_pdf([card, form], [300, 200], title="t", author="a")
    (tmp_path / "p.pdf").write_bytes(pdf)
    out = subprocess.run(["pdfinfo", "-f", "1", "-l", "2", str(tmp_path / "p.pdf")],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    sizes = [(float(w), float(h)) for w, h in
             re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", out)]
    expected = [(1011 * 72 / 300, 638 * 72 / 300), (1654 * 72 / 200, 2339 * 72 / 200)]
    assert len(sizes) == 2
    for (w, h), (ew, eh) in zip(sizes, expected, strict=True):
        assert abs(w - ew) < 1.0 and abs(h - eh) < 1.0, (sizes, expected)
