"""Which way up a page is, decided from evidence across many of its lines.

The PP-OCR line classifier that did this before saw the six widest lines
squashed to 192x48 and turned 11 of 33 upright real pages upside down (three
blank rows under one crop were enough to flip it). Here the recognizer itself
is the judge: it reads each of up to EVIDENCE_LINES wide lines as cut and the
same pixels turned 180 degrees, and the page is turned only when the turned
readings are clearly and consistently more probable. Anything less leaves the
page as scanned: a page read upside down is lost, but one left upside down
when the evidence is weak is no worse than the scan itself.

A page lying sideways shows up earlier, in the detector's boxes: its lines
come out as tall boxes. After a quarter turn the same 0/180 evidence tells
90 from 270.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from appliance.ocr.geometry import Quad

EVIDENCE_LINES = 8
# A crop at least this many times as wide as it is high holds several letters, so its
# reading says something about orientation; shorter crops (a digit, a bullet) do not.
EVIDENCE_ASPECT = 4.0
MIN_EVIDENCE_LINES = 2
# Measured on 24 real pages (tests/corpus/real) at 0 and 180 degrees: the mean per-line
# lead of the right way up over the wrong way was 0.08-0.17 nats per frame with every
# line agreeing, except a curved phone photo whose lines disagree (-0.02..0.02). The
# margin sits well below the clear cases and well above that ambiguous one.
FLIP_MARGIN = 0.04
FLIP_AGREEMENT = 0.75  # share of evidence lines that must prefer the turned reading
# Sideways: the tall boxes' total length is this many times the wide boxes'. Weighed
# by length, not counted: on a page turned a quarter the detector also finds short
# wide fragments (digits, single letters), and how many depends on its band layout
# (dn-pa03-p1 turned 270: 35 tall and 18 wide boxes with 224-row bands, 38 and 3 with
# 128-row ones), while the lengths stay far apart (55,084 vs 3,107 page pixels; an
# upright page ~0 tall).
SIDEWAYS_RATIO = 2.0


@dataclass(frozen=True)
class FlipVote:
    """The 0/180 evidence of one page."""

    upside_down: bool
    lead: float  # mean per-line frame-score lead of the turned reading (negative: upright wins)
    agreement: float  # share of evidence lines whose turned reading scores higher
    lines: int  # evidence lines used


def is_sideways(quads: Sequence[Quad]) -> bool:
    """True when most of the detected text length runs up or down the page (tall boxes)."""
    tall = [q.height for q in quads if q.height > 1.5 * q.width]
    wide = sum(q.width for q in quads if q.width > 1.5 * q.height)
    return len(tall) >= 2 and sum(tall) > SIDEWAYS_RATIO * wide


def evidence_lines(crops: Sequence[np.ndarray], limit: int = EVIDENCE_LINES) -> list[int]:
    """Indices of the widest crops that are long enough to judge, at most `limit`."""
    wide = [i for i, c in enumerate(crops) if c.shape[1] >= EVIDENCE_ASPECT * c.shape[0]]
    return sorted(wide, key=lambda i: -crops[i].shape[1])[:limit]


def vote(upright: Sequence[float], turned: Sequence[float]) -> FlipVote:
    """Decide 0 vs 180 from per-line scores of the same crops read as cut and turned."""
    n = len(upright)
    if n < MIN_EVIDENCE_LINES:
        return FlipVote(False, 0.0, 0.0, n)
    leads = np.asarray(turned, np.float64) - np.asarray(upright, np.float64)
    lead = float(leads.mean())
    agreement = float((leads > 0).mean())
    flip = lead > FLIP_MARGIN and agreement >= FLIP_AGREEMENT
    return FlipVote(flip, round(lead, 4), round(agreement, 3), n)


def turn_quad_180(quad: Quad, width: float, height: float) -> Quad:
    """The same box on the page turned 180 degrees; corners stay TL, TR, BR, BL."""
    tl, tr, br, bl = ((width - x, height - y) for x, y in quad.points)
    return Quad((br, bl, tl, tr), quad.score)
