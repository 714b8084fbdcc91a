"""Scan-time page flags (too dark, too light, cut-off edges, hand or lid) against pages
this project did not make: every page of the real-scan corpus must raise none of
them (a false alarm sends a citizen to rescan a good page), and the same pages
degraded the way a careless scan degrades them must raise the right one.

The corpus images live outside git (tests/corpus/real/README.md); without them the
corpus tests are skipped, as tests/corpus does, and the synthetic ones still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance.bench.ocr import REAL_IMAGE_EXTS, real_pages_dir
from appliance.demo.synth import render_form_page
from appliance.imaging.flags import PageFlag, format_flags, parse_flags
from appliance.imaging.pages import check_page, page_flags

NEW_FLAGS = set(PageFlag)
PAGES_DIR = real_pages_dir()
REAL_PAGES = sorted(p for p in PAGES_DIR.iterdir() if p.suffix.lower() in REAL_IMAGE_EXTS) \
    if PAGES_DIR else []
needs_corpus = pytest.mark.skipif(PAGES_DIR is None, reason="real-scan corpus not present")


def _load(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


# -- degradations, each the way a real scan goes wrong --------------------------------
# Tone curves as lookup tables (one per channel): exact, and fast on 300 dpi pages.
_DARK = [min(255, round(255 * 0.45 * (v / 255) ** 1.8)) for v in range(256)] * 3
_WASHED = [min(255, round(255 - (255 - v) * 0.35)) for v in range(256)] * 3


def darkened(img: Image.Image) -> Image.Image:
    """Underexposed: gamma 1.8 (mid-tones sink) and 45 % exposure (the paper goes grey)."""
    return img.point(_DARK)


def washed_out(img: Image.Image) -> Image.Image:
    """Overexposed: 35 % of the original contrast left, black ink becomes pale grey."""
    return img.point(_WASHED)


def _textiest(lines: np.ndarray) -> int:
    """Index of the line (row or column of a boolean ink image) in the band crossing
    the most strokes (ink/paper changes), within the middle half: a cut through text,
    not through a margin, along a table rule or a dotted writing line (one pixel high,
    so it does not win once neighbouring lines are summed)."""
    changes = np.abs(np.diff(lines.astype(np.int8), axis=1)).sum(1)
    band = max(3, len(changes) // 200)
    changes = np.convolve(changes, np.ones(band), mode="same")
    lo, hi = len(changes) // 4, 3 * len(changes) // 4
    return lo + int(np.argmax(changes[lo:hi]))


def cropped(edge: str) -> Callable[[Image.Image], Image.Image]:
    """The paper lay off the glass: the image ends through the text on `edge`."""
    def crop(img: Image.Image) -> Image.Image:
        ink = np.asarray(img.convert("L")) < 128
        w, h = img.size
        if edge == "bottom":
            return img.crop((0, 0, w, _textiest(ink) + 1))
        if edge == "top":
            return img.crop((0, _textiest(ink), w, h))
        if edge == "left":
            return img.crop((_textiest(ink.T), 0, w, h))
        return img.crop((0, 0, _textiest(ink.T) + 1, h))
    return crop


def _overlay(img: Image.Image, colour: tuple[int, int, int], spread: int,
             region: str) -> Image.Image:
    """A textured region of `colour` over half the page (a hand, a lid's underside):
    shaded across, with blotchy texture (noise made at 1/4 size and enlarged)."""
    w, h = img.size
    box = (0, h // 2, w, h) if region == "bottom" else (w // 2, 0, w, h)
    rw, rh = box[2] - box[0], box[3] - box[1]
    sw, sh = max(1, rw // 4), max(1, rh // 4)
    rng = np.random.default_rng(7)
    shade = np.linspace(0.85, 1.1, sw, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, spread, (sh, sw, 1)).astype(np.float32)
    patch = np.clip(np.array(colour, np.float32) * shade + noise, 0, 255).astype(np.uint8)
    out = img.copy()
    out.paste(Image.fromarray(patch).resize((rw, rh), Image.Resampling.BILINEAR), box[:2])
    return out


def hand(img: Image.Image) -> Image.Image:
    """A palm over the lower half (light-brown skin, shaded across, with texture)."""
    return _overlay(img, (205, 150, 118), 8, "bottom")


def lid(img: Image.Image) -> Image.Image:
    """The lid left open over a sheet half on the glass: dark, noisy room on the right."""
    return _overlay(img, (38, 36, 40), 10, "right")


DEGRADATIONS: dict[str, tuple[Callable[[Image.Image], Image.Image], PageFlag]] = {
    "darkened": (darkened, PageFlag.TOO_DARK),
    "washed_out": (washed_out, PageFlag.TOO_LIGHT),
    "cut_bottom": (cropped("bottom"), PageFlag.CUT_OFF),
    "cut_top": (cropped("top"), PageFlag.CUT_OFF),
    "cut_left": (cropped("left"), PageFlag.CUT_OFF),
    "cut_right": (cropped("right"), PageFlag.CUT_OFF),
    "hand": (hand, PageFlag.HAND_OR_LID),
    "lid": (lid, PageFlag.HAND_OR_LID),
}


# -- the real corpus ------------------------------------------------------------------
# Real pages whose flag was checked by eye and is right, with why. Anything else a
# real page raises is a false alarm.
TRUE_ON_INSPECTION = {
    # a web crop of a letter: the bottom edge shaves through the last line of text
    "vpcp-1930.png": ("cut_off",),
}


@pytest.fixture(scope="module")
def corpus_flags() -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, tuple[str, ...]]],
                            float]:
    """Each real page loaded once: its own flags, each degradation's flags, and the
    mean CPU time of page_flags on the real pages (seconds; CPU, not wall clock, so a
    busy test machine does not inflate it)."""
    real: dict[str, tuple[str, ...]] = {}
    degraded: dict[str, dict[str, tuple[str, ...]]] = {kind: {} for kind in DEGRADATIONS}
    spent = 0.0
    for path in REAL_PAGES:
        img = _load(path)
        start = time.process_time()
        real[path.name] = tuple(f.value for f in page_flags(img))
        spent += time.process_time() - start
        for kind, (degrade, _) in DEGRADATIONS.items():
            degraded[kind][path.name] = tuple(f.value for f in page_flags(degrade(img)))
    return real, degraded, spent / max(1, len(REAL_PAGES))


@needs_corpus
def test_no_real_page_raises_a_flag(corpus_flags):
    """The false-alarm count over every real page is zero (printed with the timing)."""
    real, _, seconds = corpus_flags
    alarms = {name: named for name, named in real.items()
              if named and named != TRUE_ON_INSPECTION.get(name)}
    print(f"\nfalse alarms: {len(alarms)} of {len(real)} real pages; "
          f"{1000 * seconds:.1f} ms CPU per page for page_flags")
    assert len(real) == len(REAL_PAGES)
    assert not alarms, alarms


@needs_corpus
@pytest.mark.parametrize("kind", list(DEGRADATIONS))
def test_degraded_real_pages_raise_the_right_flag(corpus_flags, kind: str):
    expected = DEGRADATIONS[kind][1].value
    results = corpus_flags[1][kind]
    missed = {name: named for name, named in results.items() if expected not in named}
    assert not missed, f"{kind}: {len(missed)} of {len(results)} missed: {missed}"


# -- synthetic pages (always run) ------------------------------------------------------
def test_synthetic_form_is_clean_and_each_degradation_is_named():
    page = render_form_page(3).image.convert("RGB")
    assert check_page(page).flags == ()
    for kind, (degrade, expected) in DEGRADATIONS.items():
        assert expected in check_page(degrade(page)).flags, kind


def test_blank_and_dark_edged_pages_raise_no_new_flag():
    """A blank page is "blank", not "too light"; a feeder's dark frame is not text cut off."""
    assert check_page(Image.new("RGB", (1654, 2339), "white")).flags == ()
    framed = render_form_page(5).image.convert("RGB")
    a = np.asarray(framed).copy()
    a[:20], a[-20:], a[:, :20], a[:, -20:] = 0, 0, 0, 0
    assert not NEW_FLAGS & set(check_page(Image.fromarray(a)).flags)


def test_flags_round_trip_in_their_stored_form():
    flags = (PageFlag.HAND_OR_LID, PageFlag.TOO_DARK)
    assert format_flags(flags) == "too_dark,hand_or_lid"
    assert parse_flags("too_dark,hand_or_lid,from_a_newer_version") == (
        PageFlag.TOO_DARK, PageFlag.HAND_OR_LID)
    assert parse_flags(None) == ()
