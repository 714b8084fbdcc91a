"""OCR lines as the extraction sees them: text, a box on a page, confidences.

The extraction is fed from three places: the OCR engine's TextLine objects, the
worker's stored page JSON (dicts with "text", "box", "min_char_confidence") and,
in older callers and tests, bare strings. They are all turned into `Line`, and the
geometric questions the field finder asks (same row? to the right? the row
below?) are answered here, once, from the boxes.

Bare strings get stand-in boxes that put each line on a row of its own, one under
the other, so "the value on the line below" works for them as it did before boxes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Box = tuple[int, int, int, int]

# Stand-in geometry for lines without boxes: rows 100 units apart, 50 high.
_ROW = 100
_HEIGHT = 50
_CHAR = 20


@dataclass(frozen=True)
class Line:
    """One OCR line; `char_confidences` is empty unless there is one per character."""

    text: str
    box: Box
    confidence: float | None
    char_confidences: tuple[float, ...] = ()
    page: int = 0
    index: int = 0  # position in the caller's list, for stable reading order
    real_box: bool = True

    @property
    def height(self) -> int:
        return max(1, self.box[3] - self.box[1])

    @property
    def centre_y(self) -> float:
        return (self.box[1] + self.box[3]) / 2

    def x_at(self, char: int) -> int:
        """Where character `char` starts, assuming characters of equal width: close
        enough to box a value inside a line the detector did not split."""
        left, _, right, _ = self.box
        n = max(1, len(self.text))
        return round(left + (right - left) * min(max(char, 0), n) / n)

    def span_box(self, start: int, end: int) -> Box:
        return (self.x_at(start), self.box[1], self.x_at(end), self.box[3])

    def span_confidence(self, start: int, end: int) -> float | None:
        """The least sure character of the span when characters have their own
        confidence (a doubtful label must not flag a clear value), else the line's."""
        if self.char_confidences and end > start:
            return min(self.char_confidences[start:end], default=self.confidence)
        return self.confidence


def _bbox(raw: Any) -> Box | None:
    """(left, top, right, bottom) from a bbox, a quad of four points or an object
    with a bbox() (the OCR's Quad); None for anything else."""
    if raw is None:
        return None
    if callable(getattr(raw, "bbox", None)):
        raw = raw.bbox()
    try:
        values = list(raw)
    except TypeError:
        return None
    if len(values) == 4 and all(isinstance(v, int | float) for v in values):
        left, top, right, bottom = (int(round(float(v))) for v in values)
        return (left, top, right, bottom)
    if len(values) == 4 and all(isinstance(v, Sequence) and len(v) == 2 for v in values):
        xs = [float(p[0]) for p in values]
        ys = [float(p[1]) for p in values]
        return (int(min(xs)), int(min(ys)), int(round(max(xs))), int(round(max(ys))))
    if len(values) == 8:
        xs = [float(v) for v in values[0::2]]
        ys = [float(v) for v in values[1::2]]
        return (int(min(xs)), int(min(ys)), int(round(max(xs))), int(round(max(ys))))
    return None


def to_lines(items: Sequence[Any], confidences: Sequence[float] | None = None,
             page: int | None = None) -> list[Line]:
    """Lines from strings, TextLine-like objects or dicts; `confidences` (one per
    line) overrides whatever confidence the items carry."""
    out: list[Line] = []
    for i, item in enumerate(items):
        char_conf: tuple[float, ...] = ()
        item_page = page
        if isinstance(item, str):
            text, box, conf = item, None, None
        elif isinstance(item, Mapping):
            text = str(item.get("text", ""))
            box = _bbox(item.get("box"))
            conf = item.get("min_char_confidence", item.get("confidence"))
            if item_page is None and isinstance(item.get("page"), int):
                item_page = item["page"]
        else:
            text = str(getattr(item, "text", ""))
            box = _bbox(getattr(item, "box", None))
            char_conf = tuple(getattr(item, "char_confidences", ()) or ())
            conf = getattr(item, "least_sure", None)
            if conf is None:
                conf = getattr(item, "confidence", None)
        text = unicodedata.normalize("NFC", text)
        if len(char_conf) != len(text):  # NFC or the recognizer changed the length
            char_conf = ()
        if confidences is not None:
            conf = confidences[i] if i < len(confidences) else None
            char_conf = ()
        real = box is not None
        if box is None:
            box = (0, i * _ROW, max(1, len(text)) * _CHAR, i * _ROW + _HEIGHT)
        out.append(Line(text, box, None if conf is None else float(conf), char_conf,
                        item_page or 0, i, real))
    return out


def reading_order(lines: Sequence[Line]) -> list[Line]:
    """Page by page, top to bottom; lines whose centres share a row left to right."""
    out: list[Line] = []
    for page in sorted({ln.page for ln in lines}):
        rest = sorted((ln for ln in lines if ln.page == page), key=lambda ln: ln.box[1])
        while rest:
            first = rest[0]
            row = [ln for ln in rest if same_row(first, ln)]
            out.extend(sorted(row, key=lambda ln: ln.box[0]))
            rest = [ln for ln in rest if ln not in row]
    return out


def same_row(a: Line, b: Line) -> bool:
    """Vertical overlap of at least half the smaller line: a skew of 1.5° over half an
    A4 width still keeps a label and its value in one row."""
    if a.page != b.page:
        return False
    overlap = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    return overlap >= 0.5 * min(a.height, b.height)


def row_to_the_right(line: Line, lines: Sequence[Line]) -> list[Line]:
    """Lines in the same row that start right of `line`'s end, left to right."""
    return sorted((ln for ln in lines if ln is not line and same_row(line, ln)
                   and ln.box[0] >= line.box[2] - line.height // 2),
                  key=lambda ln: ln.box[0])


def rows_below(line: Line, lines: Sequence[Line], x_from: int, x_to: int,
               rows: int = 1) -> list[list[Line]]:
    """Up to `rows` rows under `line` where a value written under its label sits,
    nearest first, each left to right and cut where a wide gap opens (the next
    column). A row counts only if it starts between x_from and x_to; the search
    ends at the first row that covers that span but starts elsewhere, because what
    lies under it belongs to another label. Rows are looked for within 1.6 text
    heights per row, so a signature scrawl between a label and a name is passed."""
    h = line.height
    reach = line.box[3] + 1.6 * h * rows
    under = sorted((ln for ln in lines
                    if ln.page == line.page and ln is not line and not same_row(line, ln)
                    and ln.centre_y > line.box[3] - 0.2 * h and ln.box[1] < reach
                    and ln.box[0] <= x_to and ln.box[2] >= x_from),
                   key=lambda ln: ln.box[1])
    out: list[list[Line]] = []
    while under and len(out) < rows:
        nearest = under[0]
        row = sorted((ln for ln in under if same_row(nearest, ln)), key=lambda ln: ln.box[0])
        under = [ln for ln in under if ln not in row]
        if not x_from <= row[0].box[0] <= x_to:
            break
        pieces = [row[0]]
        for ln in row[1:]:
            if ln.box[0] - pieces[-1].box[2] > 2 * max(ln.height, pieces[-1].height):
                break
            pieces.append(ln)
        out.append(pieces)
    return out
