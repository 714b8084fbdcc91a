"""Every paper type of the catalogue, drawn with known values and read through OCR.

appliance.demo.synth draws only TK1-TS; the other papers are drawn here as plainly
as the catalogue describes them: the title, then each field's first label with its
value, after the label on the same line or (every other paper) on the line below.
The extraction must guess the type from the title and give back the values.
"""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.demo.synth import find_font
from appliance.extraction.fields import extract
from appliance.ocr.engine import OcrEngine
from appliance.records import catalogue as cat
from appliance.records.catalogue import FieldSpec, PaperType

DPI = 200
# One consistent person: a woman born 13/08/1990, so the CCCD's digits agree (0|1|90).
SAMPLES: dict[str, tuple[str, str]] = {  # kind: (as printed, as extracted)
    "name": ("NGUYỄN THỊ MAI", "NGUYỄN THỊ MAI"),
    "date": ("13/08/1990", "13/08/1990"),
    "cccd": ("001190012345", "001190012345"),
    "bhxh_number": ("0123456789", "0123456789"),
    "health_card": ("GD4797912345678", "GD4797912345678"),
    "phone": ("0912345678", "0912345678"),
    "amount": ("7.500.000 đồng", "7500000"),
    "integer": ("5", "5"),
    "sex": ("Nữ", "Nữ"),
    "email": ("mai.nguyen@gmail.com", "mai.nguyen@gmail.com"),
    "text": ("Phường Kim Mã, Quận Ba Đình", "Phường Kim Mã, Quận Ba Đình"),
}
NAMES = ("NGUYỄN THỊ MAI", "TRẦN VĂN HÙNG", "LÊ THỊ HOA", "PHẠM VĂN NAM")


def sample(paper: PaperType) -> list[tuple[FieldSpec, str, str]]:
    """(field, printed, expected) for each field the drawing shows; second and later
    names get other people's names so no two fields read alike."""
    out = []
    names = iter(NAMES)
    for spec in paper.fields:
        if spec.same_as:  # a second reading drawn elsewhere on real papers
            continue
        printed, expected = SAMPLES[spec.kind]
        if spec.kind == "name":
            printed = expected = next(names)
        out.append((spec, printed, expected))
    return out


def draw(paper: PaperType, below: bool) -> tuple[Image.Image, dict[str, str]]:
    width, height = round(8.27 * DPI), round(11.69 * DPI)
    image = Image.new("RGB", (width, height), "white")
    ink = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(find_font("serif")), round(12 / 72 * DPI))
    bold = ImageFont.truetype(str(find_font("serif-bold")), round(14 / 72 * DPI))
    ink.text((width // 2, 120), "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", font=bold, anchor="ms",
             fill="black")
    ink.text((width // 2, 230), paper.title_labels[0].upper(), font=bold, anchor="ms",
             fill="black")
    y, truth = 340, {}
    for n, (spec, printed, expected) in enumerate(sample(paper), start=1):
        label = f"{n}. {spec.labels[0]}:"
        if below:
            ink.text((150, y), label, font=font, fill="black")
            ink.text((190, y + 50), printed, font=font, fill=(25, 45, 140))
            y += 120
        else:
            ink.text((150, y), f"{label} {printed}", font=font, fill="black")
            y += 70
        truth[spec.name] = expected
    return image, truth


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine.load(threads=1)


PAPERS = [p for p in cat.default().papers if p.title_labels]


def read(engine: OcrEngine, paper: PaperType) -> tuple[object, dict[str, str]]:
    image, truth = draw(paper, below=PAPERS.index(paper) % 2 == 1)
    return extract(engine.read(image).lines), truth


def wrong_unflagged(result, truth: dict[str, str]) -> dict[str, tuple[str | None, str]]:
    return {name: (result.fields[name].value, expected) for name, expected in truth.items()
            if name in result.fields and result.fields[name].status == "valid"
            and result.fields[name].value != expected}


@pytest.mark.parametrize("paper", PAPERS, ids=lambda p: p.code)
def test_every_paper_type_drawn_and_read(engine, paper):
    result, truth = read(engine, paper)
    assert result.paper_type == paper.code and result.paper_guessed
    assert result.missing == ()
    right = sum(result.values.get(name) == expected for name, expected in truth.items())
    assert right >= len(truth) - 1, result.as_dict()["fields"]


def test_no_value_wrong_without_a_flag_on_any_paper_type(engine):
    """The goal, measured over all drawn papers (about 80 values). One known miss:
    the health card's "NGUYỄN THỊ MAI" is read "NGUYỄN THI MAI" with the "I" at
    0.83, above the 0.7 at which values are flagged; a 0.9 bar for names would catch
    it but flag 13 of 34 names read right on the TK1-TS pages (measured on seeds
    7001-7040). Any further miss fails this test."""
    misses = {}
    for paper in PAPERS:
        result, truth = read(engine, paper)
        misses.update({f"{paper.code}.{k}": v for k, v in wrong_unflagged(result, truth).items()})
    assert set(misses) <= {"health-insurance-card.full_name"}, misses


def test_a_title_misread_by_a_few_letters_still_names_the_paper():
    """Real OCR output for the drawn C65 title: G read as S, Ể as Ế."""
    from appliance.extraction.fields import guess_paper_type
    from appliance.extraction.layout import to_lines
    from appliance.records import catalogue as cat

    lines = to_lines(["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                      "SIẤY CHỨNG NHẬN NGHỈ VIỆC HƯỞNG BẢO HIẾM XÃ HỘI",
                      "1. Họ và tên: NGUYỄN THỊ MAI"])
    paper = guess_paper_type(lines, cat.default())
    assert paper is not None and paper.code == "sick-leave-c65"
    # a heading that is merely similar to nothing in the catalogue names no paper
    assert guess_paper_type(to_lines(["BÁO CÁO TÌNH HÌNH THỰC HIỆN NHIỆM VỤ NĂM"]),
                            cat.default()) is None
