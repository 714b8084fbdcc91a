"""A seal or signature boxed as a "line" is not reported as text; lines of print are.

Geometry only: the boxes are made here, the rule is engine.not_text_blobs. That the
rule keeps the generated pages' text and drops their seals is test_accuracy's part.
"""

from __future__ import annotations

from appliance.ocr.engine import not_text_blobs
from appliance.ocr.geometry import Quad
from appliance.ocr.recognizer import LineReading


def box(x: float, y: float, w: float, h: float) -> Quad:
    return Quad(((x, y), (x + w, y), (x + w, y + h), (x, y + h)), 0.9)


def reading(text: str) -> LineReading:
    return LineReading(text, 0.6, tuple(0.6 for _ in text))


def page_with(extra: list[tuple[Quad, LineReading]]) -> list[tuple[Quad, LineReading]]:
    text = reading("Bảo hiểm xã hội Việt Nam")
    return [(box(100, 100 + 40 * i, 900, 30), text) for i in range(9)] + extra


def test_a_seal_sized_blob_read_as_a_few_characters_is_dropped() -> None:
    pairs = page_with([(box(600, 800, 340, 285), reading("Na7")),
                       (box(200, 800, 300, 250), reading("C"))])
    assert not_text_blobs(pairs) == {9, 10}


def test_lines_of_print_are_kept_even_when_large() -> None:
    pairs = page_with([
        (box(100, 20, 1200, 90), reading("QUYẾT ĐỊNH")),       # a heading: tall but wide
        (box(100, 500, 120, 110), reading("CỘNG HÒA XÃ HỘI")),  # square box, many characters
        (box(100, 700, 60, 32), reading("1.")),                 # a short item at line height
    ])
    assert not_text_blobs(pairs) == set()


def test_no_lines_no_blobs() -> None:
    assert not_text_blobs([]) == set()
