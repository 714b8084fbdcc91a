"""Column splitting inside a detector box, and skipping blank detector bands.

A box holding a label and, far to its right, its value (or the two halves of
a letter's header) is cut at the wide gap of blank paper between them; word
spaces, even stretched by justification, are not. The page images are drawn
here with a real font, one line in one box, so the tests do not depend on what
the detector would merge.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.bench.corpus import available_fonts
from appliance.ocr.detector import DetectorConfig, TextDetector
from appliance.ocr.geometry import Quad
from appliance.ocr.manifest import default_models_dir
from appliance.ocr.recognizer import _column_pieces, crop_line, tighten_split

FONT_PX = 40


def _font() -> ImageFont.FreeTypeFont:
    fonts = available_fonts()
    if not fonts:
        pytest.skip("no test fonts installed (provisioning/apt-test.txt)")
    return ImageFont.truetype(str(fonts[0]), FONT_PX)


def _line(parts: list[tuple[int, str]], width: int = 1800) -> tuple[Image.Image, Quad]:
    """Draw each text at its x on one row; return the page and one box around the row."""
    img = Image.new("L", (width, 140), 250)
    d = ImageDraw.Draw(img)
    font = _font()
    for x, text in parts:
        d.text((x, 50), text, font=font, fill=20)
    quad = Quad(((20.0, 30.0), (width - 20.0, 30.0), (width - 20.0, 115.0), (20.0, 115.0)), 0.9)
    return img, quad


def test_label_and_value_far_apart_become_two_boxes(engine):
    img, quad = _line([(40, "Họ và tên:"), (900, "NGUYỄN VĂN AN")])
    whole, pieces = tighten_split(img, quad)
    assert len(pieces) == 2
    assert whole.bbox()[0] <= pieces[0].bbox()[0] and whole.bbox()[2] >= pieces[1].bbox()[2]
    assert pieces[0].bbox()[2] < 900 <= pieces[1].bbox()[2]
    texts = [r.text for r in engine.recognizer([crop_line(img, q) for q in pieces]).lines]
    assert texts[0].startswith("Họ và tên")
    assert texts[1] == "NGUYỄN VĂN AN"


def test_word_spaces_even_justified_keep_one_box():
    # justified text: gaps of about one letter height between words
    img, quad = _line([(40, "Căn cứ"), (230, "Luật"), (380, "Bảo hiểm"), (600, "xã hội")])
    assert len(tighten_split(img, quad)[1]) == 1


def test_split_off_by_zero_gap_gives_the_tightened_box():
    img, quad = _line([(40, "Họ và tên:"), (900, "NGUYỄN VĂN AN")])
    assert len(tighten_split(img, quad, split_gap=0.0)[1]) == 1


def test_engine_reports_label_and_value_as_two_lines(engine):
    page, _ = _line([(40, "Họ và tên:"), (900, "NGUYỄN VĂN AN")])
    big = Image.new("L", (1800, 600), 250)
    big.paste(page, (0, 200))
    texts = [ln.text for ln in engine.read(big).lines]
    assert "NGUYỄN VĂN AN" in texts, texts


def test_a_speck_far_from_the_text_is_not_a_column():
    inked = np.zeros(400, bool)
    inked[10:150] = True  # a word, 140 px at ink height 30
    inked[300:303] = True  # a speck 150 px away: too narrow to be a column of its own
    assert _column_pieces(inked, 30, 2.5) == [(10, 302)]
    inked[300:360] = True  # a real word there: two columns
    assert _column_pieces(inked, 30, 2.5) == [(10, 149), (300, 359)]


def test_blank_bands_are_skipped_without_changing_the_map(engine):
    """Text only in the middle of a tall page: the skipped bands were blank anyway."""
    page = Image.new("L", (900, 2400), 248)
    ImageDraw.Draw(page).text((60, 1150), "BẢO HIỂM XÃ HỘI VIỆT NAM", font=_font(), fill=10)
    model = engine.manifest.find("detector", "fp32").verified_path(default_models_dir())
    on = TextDetector(model, 1, DetectorConfig(skip_blank=True))
    off = TextDetector(model, 1, DetectorConfig(skip_blank=False))
    g, _, _ = on._prepare(page)
    calls = []
    run = on.session.run

    def counting(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return run(*a, **k)

    on.session.run = counting  # type: ignore[method-assign]
    p_on, p_off = on._probability(g), off._probability(g)
    bands = -(-g.shape[0] // on.config.band_rows)
    assert 0 < len(calls) < bands // 2
    assert float(np.abs(p_on - p_off).max()) < 0.05
    assert len(on(page).quads) == len(off(page).quads) >= 1


def test_bands_cover_the_map_in_inputs_the_network_takes(engine):
    """Every band the network sees is a multiple of 32 rows (a band at the page's edge
    takes its missing context from the other side), and the bands' useful rows cover
    the map exactly once, whatever the map's height."""
    model = engine.manifest.find("detector", "fp32").verified_path(default_models_dir())
    det = TextDetector(model, 1, DetectorConfig(skip_blank=False))
    cfg = det.config
    for h in (288, 320, 480, 672, 800, 1120):
        seen: list[int] = []

        def fake(_out, feed, h=h, seen=seen):  # noqa: ANN001, ANN202
            x = next(iter(feed.values()))
            seen.append(x.shape[2])
            assert x.shape[2] <= cfg.band_rows + 2 * cfg.band_overlap
            return [np.ones((1, 1, x.shape[2], x.shape[3]), np.float32) * len(seen)]

        det.session.run = fake  # type: ignore[method-assign]
        prob = det._probability(np.full((h, 64), 0.9, np.float32))
        assert all(n % 32 == 0 for n in seen), (h, seen)
        assert len(seen) == -(-h // cfg.band_rows)
        # each row written by exactly one band, in order
        rows = prob[:, 0].astype(int)
        assert rows.min() == 1 and list(np.unique(rows)) == list(range(1, len(seen) + 1))
