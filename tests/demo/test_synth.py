"""Synthetic TK1-TS pages: deterministic, Vietnamese NFC text, consistent fields."""

from __future__ import annotations

import re
import time
import unicodedata

import pytest

from appliance.demo.synth import find_font, render_form_page


@pytest.fixture(scope="module")
def page():
    return render_form_page(7)


def test_same_seed_same_page(page):
    again = render_form_page(7)
    assert again.image.tobytes() == page.image.tobytes()
    assert again.lines == page.lines
    assert again.fields == page.fields
    other = render_form_page(8)
    assert other.fields != page.fields
    assert other.image.tobytes() != page.image.tobytes()


@pytest.mark.parametrize(("dpi", "size"), [(200, (1654, 2339)), (300, (2480, 3508))])
def test_a4_rgb_at_dpi(dpi, size):
    p = render_form_page(3, dpi=dpi)
    assert p.image.mode == "RGB"
    assert p.image.size == size
    assert p.image.info["dpi"] == (dpi, dpi)


def test_text_is_nfc_vietnamese(page):
    texts = [line.text for line in page.lines]
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in texts
    assert "Độc lập - Tự do - Hạnh phúc" in texts
    assert any("THAM GIA, ĐIỀU CHỈNH THÔNG TIN BẢO HIỂM XÃ HỘI" in t for t in texts)
    assert any(t.startswith("[01]. Họ và tên") for t in texts)
    for text in [*texts, *page.fields.values()]:
        assert unicodedata.is_normalized("NFC", text), text
    assert page.fields["full_name"] in texts
    assert page.fields["full_name"] == page.fields["full_name"].upper()


def test_fields_are_well_formed():
    for seed in range(30):
        f = render_form_page(seed, dpi=50).fields
        assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", f["birth_date"])
        assert re.fullmatch(r"\d{12}", f["cccd"])
        assert re.fullmatch(r"\d{10}", f["bhxh_number"])
        assert re.fullmatch(r"0\d{9}", f["phone"])
        assert f["gender"] in ("Nam", "Nữ")
        # CCCD digit 4 encodes century and sex, digits 5-6 the birth year.
        year = int(f["birth_date"][-4:])
        century_sex = (0 if year < 2000 else 2) + (1 if f["gender"] == "Nữ" else 0)
        assert f["cccd"][3] == str(century_sex)
        assert f["cccd"][4:6] == f"{year % 100:02d}"
        assert f["address"].endswith(f["province"])


def test_boxes_lie_on_the_page_and_hold_ink(page):
    width, height = page.image.size
    gray = page.image.convert("L")
    for line in page.lines:
        left, top, right, bottom = line.box
        assert 0 <= left < right <= width and 0 <= top < bottom <= height, line
        assert gray.crop(line.box).getextrema()[0] < 128, line  # something dark inside


def test_degraded_page_is_skewed_and_boxes_follow():
    p = render_form_page(11, degrade=True)
    assert 0 < abs(p.skew_degrees) <= 1.5
    width, height = p.image.size
    assert all(0 <= ln.box[0] < ln.box[2] <= width and 0 <= ln.box[1] < ln.box[3] <= height
               for ln in p.lines)
    assert render_form_page(11, degrade=True).image.tobytes() == p.image.tobytes()


def test_fonts_found():
    for role in ("serif", "serif-bold", "serif-italic", "sans"):
        assert find_font(role).is_file()


def test_rendering_is_fast():
    render_form_page(1)  # warm the font cache
    start = time.perf_counter()
    for seed in range(3):
        render_form_page(seed)
    # Budget is 0.3 s per page; the CI machine shares its CPU, hence the slack.
    assert (time.perf_counter() - start) / 3 < 0.6
