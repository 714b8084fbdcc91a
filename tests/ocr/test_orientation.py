"""Orientation: no upright page is ever turned, and turned pages are read upright.

The decision (appliance/ocr/orientation.py) compares the recognizer's own
readings of each wide line as cut and turned 180 degrees; these tests hold it to
every page of the real-scan corpus in all four orientations and to generated
pages, plus the known failure of the classifier it replaced (a crop flipped by
three blank rows at its bottom edge).
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from appliance.bench.corpus import render_page
from appliance.bench.metrics import score_lines_aligned
from appliance.bench.ocr import REAL_CORPUS, real_pages_dir, upright_turn
from appliance.ocr.geometry import Quad
from appliance.ocr.orientation import FLIP_MARGIN, is_sideways, turn_quad_180, vote

TURNS = (0, 90, 180, 270)
REAL_PAGES = json.loads((REAL_CORPUS / "manifest.json").read_text(encoding="utf-8"))["pages"]
PAGES_DIR = real_pages_dir()
# A page read the wrong way up scores over 50 % line CER; read the right way up, the
# four orientations of one page score within a few points of each other.
MAX_CER_SPREAD = 10.0


def _box(w: float, h: float) -> Quad:
    return Quad(((0, 0), (w, 0), (w, h), (0, h)), 1.0)


def test_vote_needs_a_clear_margin_and_agreement():
    up = [-0.03] * 8
    assert vote(up, [-0.15] * 8).upside_down is False
    assert vote([-0.15] * 8, up).upside_down is True
    # turned readings a little better on average but not clearly: left as scanned
    assert vote(up, [u + FLIP_MARGIN / 2 for u in up]).upside_down is False
    # a large mean lead carried by two lines while six disagree: left as scanned
    assert vote(up, [0.9, 0.9] + [-0.05] * 6).upside_down is False
    # one line is no evidence
    assert vote([-0.5], [-0.01]).upside_down is False
    assert vote([], []).upside_down is False


def test_sideways_from_box_shapes():
    assert is_sideways([_box(20, 300)] * 10 + [_box(300, 20)]) is True
    assert is_sideways([_box(300, 20)] * 10) is False
    assert is_sideways([_box(20, 300)]) is False  # one tall box (a rule, a margin note)
    assert is_sideways([]) is False


def test_turning_a_box_twice_gives_it_back():
    q = Quad(((10.0, 20.0), (110.0, 22.0), (109.0, 52.0), (9.0, 50.0)), 0.9)
    t = turn_quad_180(q, 400, 300)
    assert t.points[0] == (400 - 109.0, 300 - 52.0)  # new top-left is the old bottom-right
    assert t.width == pytest.approx(q.width) and t.height == pytest.approx(q.height)
    assert turn_quad_180(t, 400, 300).points == q.points


@pytest.mark.parametrize("seed,dpi", [(201, 200), (202, 300), (203, 150)])
def test_generated_page_read_upright_in_every_orientation(engine, seed, dpi):
    page = render_page(seed, dpi=dpi, degraded=True)
    truth = [f.text for f in page.lines]
    for turn in TURNS:
        got = engine.read(page.image.rotate(turn, expand=True))
        assert got.rotation == (360 - turn) % 360, (seed, turn, got.rotation)
        s = score_lines_aligned(truth, [ln.text for ln in got.lines])
        assert 100.0 * s.errors / s.length <= 5.0, (seed, turn)


def test_blank_rows_under_a_crop_do_not_flip_it(engine):
    """The classifier this replaced turned a crop upside down because three blank rows
    had been added at its bottom edge; the page-level evidence must not care."""
    page = render_page(204, dpi=200, degraded=False).image.convert("L")
    w, h = page.size
    for top, bottom in ((0, h // 5), (h // 3, h // 2)):
        crop = page.crop((0, top, w, bottom))
        grown = Image.new("L", (w, crop.height + 3), 255)
        grown.paste(crop, (0, 0))
        for image in (crop, grown):
            assert engine.read(image).rotation == 0


@pytest.mark.skipif(PAGES_DIR is None, reason="real corpus page images not present")
@pytest.mark.parametrize("page", REAL_PAGES, ids=[p["id"] for p in REAL_PAGES])
def test_real_page_read_upright_in_every_orientation(engine, page):
    """Every corpus page, as stored and turned a further 90/180/270 degrees: the page
    that is upright is never turned, and every turned one is turned upright."""
    assert PAGES_DIR is not None
    from appliance.ocr.engine import open_image

    stored = open_image(PAGES_DIR / page["file"].split("/", 1)[1])
    truth = (REAL_CORPUS / page["truth"]).read_text(encoding="utf-8").splitlines()
    cers = []
    for turn in TURNS:
        got = engine.read(stored.rotate(turn, expand=True) if turn else stored)
        need = upright_turn(int(page["rotation"]), turn)
        assert got.rotation == need, (page["id"], turn, got.rotation, need)
        s = score_lines_aligned(truth, [ln.text for ln in got.lines])
        cers.append(100.0 * s.errors / s.length)
    assert max(cers) - min(cers) <= MAX_CER_SPREAD, (page["id"], cers)
