"""Pages that hold no text to read: no crash, no invented text, the usual time.

A blank sheet, a photo of something that is not a document, a page with only a
seal, and a 10000x10 strip. Lines the recognizer is unsure of as a whole
(engine.MIN_FRAME_SCORE) are dropped, so what the detector finds in a texture
is not reported as text.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from appliance.bench.corpus import render_page
from appliance.ocr.engine import OcrEngine, PageText

SEAL_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
# The usual time: a generated A4 page at 200 dpi read in the same test, times this,
# plus a second for a loaded machine's jitter.
TIME_FACTOR = 2.5


def photo(seed: int, w: int, h: int) -> Image.Image:
    """Not a document: smooth colour gradients, noise and blurred blobs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(x / 97 + seed), 128 + 100 * np.cos(y / 53),
                    128 + 80 * np.sin((x + y) / 151)], -1)
    img += rng.normal(0, 25, img.shape).astype(np.float32)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        d.ellipse([x0, y0, x0 + int(rng.integers(20, 300)), y0 + int(rng.integers(20, 300))],
                  fill=colour)
    return im.filter(ImageFilter.GaussianBlur(2))


def seal_page(w: int = 1654, h: int = 2339) -> Image.Image:
    """An A4 page at 200 dpi with only a red round seal: text around a circle, a star."""
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    cx, cy, r = w // 2, h // 2, 260
    red = (200, 30, 40)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=red, width=10)
    d.ellipse([cx - r + 40, cy - r + 40, cx + r - 40, cy + r - 40], outline=red, width=4)
    font = ImageFont.truetype(SEAL_FONT, 44)
    text = "ỦY BAN NHÂN DÂN THÀNH PHỐ ĐÀ NẴNG * "
    for i, ch in enumerate(text):
        a = math.pi + i * 2 * math.pi / len(text)
        glyph = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((10, 5), ch, font=font, fill=red)
        glyph = glyph.rotate(-math.degrees(a) - 90, resample=Image.BICUBIC)
        px, py = cx + (r - 95) * math.cos(a), cy + (r - 95) * math.sin(a)
        im.paste(glyph, (int(px - 30), int(py - 30)), glyph)
    star = [(cx + 60 * math.cos(-math.pi / 2 + k * 4 * math.pi / 5),
             cy + 60 * math.sin(-math.pi / 2 + k * 4 * math.pi / 5)) for k in range(5)]
    d.polygon(star, fill=red)
    return im


@pytest.fixture(scope="module")
def usual_seconds(engine: OcrEngine) -> float:
    page = render_page(301, dpi=200, degraded=True).image
    engine.read(page)  # warm
    t0 = time.perf_counter()
    got = engine.read(page)
    assert len(got.lines) > 10
    return time.perf_counter() - t0


def _read_nothing(engine: OcrEngine, image: Image.Image, usual: float) -> PageText:
    t0 = time.perf_counter()
    got = engine.read(image)
    took = time.perf_counter() - t0
    assert got.lines == (), [ln.text for ln in got.lines]
    assert took <= TIME_FACTOR * usual + 1.0, (took, usual)
    return got


def test_blank_page(engine, usual_seconds):
    _read_nothing(engine, Image.new("L", (1654, 2339), 255), usual_seconds)
    _read_nothing(engine, Image.new("RGB", (2480, 3508), (236, 232, 220)), usual_seconds)


@pytest.mark.parametrize("seed,size", [(1, (1600, 1200)), (7, (4000, 3000))])
def test_photo_of_something_else(engine, usual_seconds, seed, size):
    _read_nothing(engine, photo(seed, *size), usual_seconds)


def test_page_with_only_a_seal(engine, usual_seconds):
    _read_nothing(engine, seal_page(), usual_seconds)


@pytest.mark.parametrize("size", [(10000, 10), (10, 10000)])
def test_thin_strip(engine, usual_seconds, size):
    white = Image.new("L", size, 255)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, size[::-1], np.uint8))
    for image in (white, noise):
        assert _read_nothing(engine, image, usual_seconds).rotation == 0


def test_a_page_after_bad_input_still_reads(engine):
    engine.read(photo(3, 800, 600))
    page = render_page(302, dpi=200, degraded=False)
    text = " ".join(ln.text for ln in engine.read(page.image).lines)
    assert "CỘNG HÒA" in text or "Độc lập" in text
