"""Generated TK1-TS pages with known values: from their drawn lines, and through OCR.

Seeds 9001-9012 are held out for `python -m tests.extraction.measure`; none is used
here, so the figures it reports were not tuned on these tests.
"""

from __future__ import annotations

import pytest

from appliance.bench.corpus import render_page
from appliance.demo.synth import render_form_page
from appliance.extraction.fields import extract
from appliance.ocr.engine import OcrEngine
from tests.extraction.measure import MANDATORY, score

TK1_FIELDS = ("full_name", "gender", "birth_date", "nationality", "ethnicity", "cccd", "phone",
              "email", "birth_place", "house", "ward", "district", "province", "bhxh_number")


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine.load(threads=1)


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15, 16, 17, 18])
def test_drawn_lines_give_exactly_the_values(seed):
    """The lines as drawn (text and box, no OCR error): every field exact and valid."""
    page = render_form_page(seed, dpi=200)
    result = extract(page.lines)
    assert result.paper_type == "tk1-ts" and result.paper_guessed
    assert {name: result.values.get(name) for name in TK1_FIELDS} == {
        name: page.fields[name] for name in TK1_FIELDS}
    assert result.problems == () and result.uncertain == () and result.missing == ()
    for name in TK1_FIELDS:  # each value's box lies inside the line it was drawn in
        box = result.fields[name].box
        assert box is not None and any(
            t.box[0] - 2 <= box[0] < box[2] <= t.box[2] + 2 and t.box[1] <= box[1]
            for t in page.lines), name


@pytest.mark.parametrize("seed", [21, 22, 23, 24, 25, 26])
def test_another_layout_label_and_value_columns(seed):
    """The benchmark corpus lays values out in a column of their own (or in one run
    with the label) and draws random digits for IDs: names, dates and the BHXH
    number come out exact; a CCCD is exact or, when its random province code does
    not exist, a problem saying so, never a wrong value."""
    page = render_page(seed, degraded=False)
    result = extract([{"text": f.text, "box": list(f.box)} for f in page.lines])
    assert result.paper_type == "tk1-ts"
    names = [f.text for f in page.values if f.kind == "name"]
    dates = [f.text for f in page.values if f.kind == "date"]
    ids = [f.text for f in page.values if f.kind == "id"]
    assert result.values["full_name"] == names[0]
    assert result.values["birth_date"] == dates[0]
    assert result.values["bhxh_number"] == ids[1]
    assert result.values.get("guardian_name") == names[1]
    cccd = result.fields["cccd"]
    if cccd.status == "valid":
        assert cccd.value == ids[0]
    else:
        assert cccd.status == "problem" and cccd.value is None
        assert set(cccd.flags) & {"cccd.province", "cccd.century", "cccd.birth_year", "cccd.sex"}


@pytest.mark.parametrize("seed, dpi", [(301, 200), (302, 300), (303, 200), (304, 300)])
def test_ocr_read_pages_none_wrong_without_a_flag(engine, seed, dpi):
    """Through OCR: every mandatory value right or flagged for a look, and no red
    alarm for a value that was read right (the heading that mentions "mã số BHXH")."""
    page = render_form_page(seed, dpi=dpi, degrade=True)
    result = extract(engine.read(page.image).lines)
    assert result.paper_type == "tk1-ts"
    flagged = set(result.problems) | set(result.uncertain) | set(result.missing)
    verdicts = score(result.values, flagged, page.fields)
    assert "wrong" not in verdicts.values() and "silent" not in verdicts.values(), verdicts
    assert "bhxh_number" not in result.problems
    for name in MANDATORY:
        if verdicts[name] == "right":
            assert result.fields[name].status == "valid"
            assert result.fields[name].confidence is not None


def test_ocr_read_pages_mostly_valid(engine):
    """Flags are for doubtful readings, not a blanket: most values pass untouched."""
    right = 0
    for seed in (305, 306, 307):
        page = render_form_page(seed, dpi=200, degrade=True)
        result = extract(engine.read(page.image).lines)
        verdicts = score(result.values, set(result.problems) | set(result.uncertain),
                         page.fields)
        right += sum(v == "right" for v in verdicts.values())
    assert right >= 10  # of 12; measured 12
