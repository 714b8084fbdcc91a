"""QR codes on a paper's pages (extraction/qr.py): the CCCD chip card's QR parsed and
cross-checked against the OCR fields.

The codes are made by encoders this project does not use to read them: `qrencode`
(libqrencode, Debian) and segno, and pasted at the top right of a drawn card scan, as
on the front of a chip-based CCCD. One real scan from the corpus (two QR codes of
short URLs, tests/corpus/real) is read too. The people are invented: names from
tests/extraction/test_papers.py, numbers consistent with their birth and sex.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from appliance.bench.ocr import real_pages_dir
from appliance.demo.synth import find_font
from appliance.extraction import qr
from appliance.extraction.fields import extract

# A woman born 13/08/1990 in Hà Nội (001), so century/sex digit 1 and year 90.
PERSON = {"cccd": "001190012345", "full_name": "NGUYỄN THỊ MAI", "birth_date": "13/08/1990",
          "gender": "Nữ", "address": "Số 12 phố Kim Mã, Phường Kim Mã, Quận Ba Đình, Hà Nội",
          "issue_date": "10/05/2021"}
GOOD = ("001190012345|012345678|Nguyễn Thị Mai|13081990|Nữ|"
        "Số 12 phố Kim Mã, Phường Kim Mã, Quận Ba Đình, Hà Nội|10052021")

needs_qrencode = pytest.mark.skipif(shutil.which("qrencode") is None,
                                    reason="qrencode not installed (provisioning/apt-test.txt)")


def qrencode(text: str) -> Image.Image:
    """The QR code as libqrencode draws it (8-bit mode, so UTF-8 passes unchanged)."""
    png = subprocess.run(["qrencode", "-8", "-l", "M", "-s", "4", "-m", "2", "-t", "PNG",
                          "-o", "-", text], capture_output=True, check=True).stdout
    code = Image.open(io.BytesIO(png)).convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", code.size, "white"), code).convert("RGB")


def segno_qr(text: str) -> Image.Image:
    import segno

    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=4, border=2)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def card_lines(person: dict[str, str]) -> list[str]:
    """The front of a chip CCCD, line by line as it is printed (and as OCR reads it)."""
    return [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "CĂN CƯỚC CÔNG DÂN",
        f"Số / No.: {person['cccd']}",
        "Họ và tên / Full name:",
        person["full_name"],
        f"Ngày sinh / Date of birth: {person['birth_date']}",
        f"Giới tính / Sex: {person['gender']}    Quốc tịch / Nationality: Việt Nam",
        "Quê quán / Place of origin: Kim Mã, Ba Đình, Hà Nội",
        "Nơi thường trú / Place of residence:",
        "Số 12 phố Kim Mã, Phường Kim Mã, Ba Đình, Hà Nội",
    ]


def card_page(code: Image.Image, person: dict[str, str] = PERSON) -> Image.Image:
    """A card scanned at 300 dpi on a grey scanner bed: the printed lines, a photo
    box, the QR code at the top right; slightly blurred and JPEG-compressed."""
    dpi = 300
    card_w, card_h = round(85.6 / 25.4 * dpi), round(54 / 25.4 * dpi)
    bed = Image.new("RGB", (card_w + 240, card_h + 240), (214, 214, 210))
    card = Image.new("RGB", (card_w, card_h), (236, 242, 234))
    ink = ImageDraw.Draw(card)
    small = ImageFont.truetype(str(find_font("serif")), 22)
    bold = ImageFont.truetype(str(find_font("serif-bold")), 30)
    ink.rectangle((40, 250, 250, 520), outline=(90, 90, 90), width=3, fill=(200, 205, 210))
    lines = card_lines(person)
    y = 30
    for n, text in enumerate(lines):
        font = bold if n == 2 else small
        x = 280 if n > 2 else 260
        ink.text((x, y), text, font=font, fill=(20, 20, 60))
        y += 44 if n != 2 else 56
    qr_size = 190
    card.paste(code.resize((qr_size, qr_size), Image.Resampling.NEAREST),
               (card_w - qr_size - 30, 30))
    bed.paste(card, (120, 120))
    bed = bed.filter(ImageFilter.GaussianBlur(0.6))
    out = io.BytesIO()
    bed.save(out, "JPEG", quality=85)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


ENCODERS = [pytest.param(qrencode, marks=needs_qrencode, id="qrencode"),
            pytest.param(segno_qr, id="segno")]


def ocr_fields(person: dict[str, str] = PERSON, **override: str):
    """What OCR gives for the card's printed lines (the text path is tested with the
    recognizer elsewhere; here the lines are exact, so only the QR varies)."""
    return extract(card_lines({**person, **override}), paper_type="cccd-front")


# -- decoding and parsing ---------------------------------------------------------------
@pytest.mark.parametrize("encode", ENCODERS)
def test_a_cccd_qr_on_a_card_scan_is_found_and_parsed(encode):
    readings = qr.read_pages([card_page(encode(GOOD))])
    assert len(readings) == 1
    card = readings[0]
    assert card.kind == "cccd" and card.layout == "cccd-7" and card.flags == ()
    assert card.format == "QRCode" and card.page == 0
    assert card.valid_values == {**PERSON, "old_id": "012345678"}
    x0, y0, x1, y1 = card.box  # top right of the card, in the page's pixels
    assert x0 > 700 and y1 < 400 and 150 < x1 - x0 < 260


@pytest.mark.parametrize(("text", "layout", "extra"), [
    (GOOD.replace("|012345678|", "||"), "cccd-7", ()),  # no old CMND number
    (GOOD.replace("|012345678|", "|"), "cccd-6", ()),  # layout without the field
    (GOOD + "|01/01/2040|ABC", "cccd-7", ("01/01/2040", "ABC")),  # newer, trailing fields
    (GOOD.replace("Nguyễn Thị Mai", "NGUYỄN  THỊ   MAI"), "cccd-7", ()),
])
def test_known_layouts(text, layout, extra):
    parsed = qr.parse_cccd(text)
    assert parsed is not None
    got_layout, fields, got_extra = parsed
    assert (got_layout, got_extra) == (layout, extra)
    assert {n: f.value for n, f in fields.items() if n != "old_id"} == PERSON


@pytest.mark.parametrize("encode", ENCODERS)
def test_a_qr_that_is_not_a_cccd_is_kept_unparsed_and_flagged(encode):
    text = "https://baohiemxahoi.gov.vn/tra-cuu?ma=0123456789"
    readings = qr.read_pages([card_page(encode(text))])
    assert [(r.kind, r.text, r.flags, r.reason) for r in readings] == [
        ("other", text, ("qr.not_cccd",), "not a CCCD QR")]
    before = ocr_fields()
    after = qr.cross_check(before, readings)
    assert after.fields == before.fields and after.qr == readings


def test_the_qr_codes_of_a_real_scan_are_read_and_not_taken_for_a_cccd():
    """A real 200 dpi HP scan (corpus page epu-2164-p10-qr): two QR codes of short URLs
    in the right column of a ruled table. The corpus images live outside the commits
    (tests/corpus/real/README.md): skipped where this checkout has no copy."""
    pages = real_pages_dir()
    if pages is None or not (pages / "epu-2164-p10-qr.jpg").is_file():
        pytest.skip("real-corpus page images not present (tests/corpus/real/README.md)")
    page = Image.open(pages / "epu-2164-p10-qr.jpg")
    readings = qr.read_pages([page])
    assert len(readings) == 2
    assert all(r.kind == "other" and r.flags == ("qr.not_cccd",) for r in readings)
    assert all(r.text.startswith("https://") for r in readings)
    assert all(r.box[0] > page.width * 0.6 for r in readings)
    assert readings[0].box[1] < readings[1].box[1]  # top to bottom


@pytest.mark.parametrize("encode", ENCODERS)
def test_a_cccd_qr_with_31_february_keeps_the_date_as_a_problem(encode):
    text = GOOD.replace("|13081990|", "|31021990|")
    card = qr.read_pages([card_page(encode(text))])[0]
    assert card.kind == "cccd" and "qr.invalid_field" in card.flags
    birth = card.fields["birth_date"]
    assert birth.status == "problem" and birth.value is None and birth.raw == "31021990"
    assert "not a date in the calendar" in (birth.reason or "")
    # the bad date is used for nothing: OCR's missing date is not filled with it...
    missing = extract([ln for ln in card_lines(PERSON) if "Date of birth" not in ln],
                      paper_type="cccd-front")
    assert missing.fields["birth_date"].status == "missing"
    checked = qr.cross_check(missing, [card])
    assert checked.fields["birth_date"].status == "missing"
    # ...while the QR's good values still confirm the others
    assert "qr.agrees" in checked.fields["full_name"].flags


def test_an_11_digit_cccd_in_a_qr_is_a_problem_never_a_value():
    card = qr.interpret(qr.Code("QRCode", GOOD.replace("001190012345", "00119001234"),
                                (0, 0, 10, 10)), 0)
    assert card.kind == "cccd"
    number = card.fields["cccd"]
    assert number.status == "problem" and number.value is None
    assert "12 digits" in (number.reason or "")
    without = ocr_fields(cccd="0011900")  # OCR read too few digits: a problem
    assert without.fields["cccd"].status == "problem"
    assert qr.cross_check(without, [card]).fields["cccd"].status == "problem"


def test_a_qr_contradicting_itself_confirms_nothing():
    """A man's century digit (0) with the QR's own sex Nữ: the number is a problem."""
    card = qr.interpret(qr.Code("QRCode", GOOD.replace("001190012345", "001090012345"),
                                (0, 0, 10, 10)), 0)
    assert card.fields["cccd"].status == "problem" and "cccd.sex" in card.fields["cccd"].flags


# -- cross-check with OCR ------------------------------------------------------------------
@pytest.mark.parametrize("encode", ENCODERS)
def test_agreement_raises_confidence(encode):
    readings = qr.read_pages([card_page(encode(GOOD))])
    checked = qr.cross_check(ocr_fields(), readings)
    for name in ("cccd", "full_name", "birth_date", "gender"):
        field = checked.fields[name]
        assert field.value == PERSON[name] and field.status == "valid", name
        assert "qr.agrees" in field.flags and field.confidence >= qr.AGREED_CONFIDENCE
        assert field.source == "ocr"
    out = checked.as_dict()
    assert out["qr"][0]["kind"] == "cccd" and out["qr"][0]["fields"]["cccd"]["value"]


def test_an_unsure_ocr_reading_the_qr_agrees_with_becomes_valid():
    lines = card_lines(PERSON)
    sure = [0.4 if ln == PERSON["full_name"] else 0.99 for ln in lines]
    unsure = extract(lines, sure, paper_type="cccd-front")
    assert unsure.fields["full_name"].status == "uncertain"
    card = qr.interpret(qr.Code("QRCode", GOOD, (0, 0, 10, 10)), 0)
    field = qr.cross_check(unsure, [card]).fields["full_name"]
    assert field.status == "valid" and field.reason is None and "qr.agrees" in field.flags


@pytest.mark.parametrize("encode", ENCODERS)
def test_a_qr_disagreeing_with_the_ocr_name_flags_it_and_keeps_the_ocr_value(encode):
    readings = qr.read_pages([card_page(encode(GOOD))])
    misread = ocr_fields(full_name="NGUYỄN THI MAI")
    assert misread.fields["full_name"].status == "valid"
    field = qr.cross_check(misread, readings).fields["full_name"]
    assert field.value == "NGUYỄN THI MAI" and field.source == "ocr"  # never overridden
    assert field.status == "uncertain" and "qr.mismatch" in field.flags
    assert "NGUYỄN THỊ MAI" in (field.reason or "")


def test_names_are_compared_after_nfc_case_and_spaces():
    decomposed = "NGUYE\u0302\u0303N  thị mai"  # NFD, lower case, two spaces
    card = qr.interpret(qr.Code("QRCode", GOOD.replace("Nguyễn Thị Mai", decomposed),
                                (0, 0, 10, 10)), 0)
    assert "qr.agrees" in qr.cross_check(ocr_fields(), [card]).fields["full_name"].flags


def test_the_qr_fills_a_missing_or_invalid_ocr_value_with_source_qr():
    card = qr.interpret(qr.Code("QRCode", GOOD, (900, 40, 1090, 230)), 0)
    broken = ocr_fields(birth_date="31/02/1990")  # OCR: a problem
    assert broken.fields["birth_date"].status == "problem"
    field = qr.cross_check(broken, [card]).fields["birth_date"]
    assert (field.value, field.status, field.source) == ("13/08/1990", "valid", "qr")
    assert field.raw == "31/02/1990" and "qr.filled" in field.flags
    assert field.box == (900, 40, 1090, 230) and field.page == 0
    gone = extract([ln for ln in card_lines(PERSON) if not ln.startswith("Số /")],
                   paper_type="cccd-front")
    assert gone.fields["cccd"].status == "missing"
    filled = qr.cross_check(gone, [card])
    assert filled.fields["cccd"].value == PERSON["cccd"] and "cccd" not in filled.missing
    assert filled.as_dict()["fields"]["cccd"]["source"] == "qr"


def test_only_fields_the_paper_type_has_are_touched():
    """A CCCD photocopy's QR on a TK1-TS: no issue_date or residence field appears."""
    card = qr.interpret(qr.Code("QRCode", GOOD, (0, 0, 10, 10)), 0)
    form = extract(card_lines(PERSON), paper_type="tk1-ts")
    checked = qr.cross_check(form, [card])
    assert "issue_date" not in checked.fields and "residence" not in checked.fields
    assert checked.qr == (card,)


def test_readings_round_trip_through_the_stored_json():
    card = qr.interpret(qr.Code("QRCode", GOOD.replace("|13081990|", "|31021990|"),
                                (1, 2, 3, 4)), 1)
    stored = json.loads(json.dumps({"qr": [card.as_dict()]}, ensure_ascii=False))
    assert qr.readings_of(stored) == (card,)


@pytest.mark.parametrize("encode", ENCODERS)
def test_the_worker_stores_the_readings_with_the_fields(encode):
    from appliance.ocr.engine import PageText, TextLine
    from appliance.worker.pipeline import extract_fields

    lines = tuple(TextLine(t, (0, 40 * n, 600, 40 * n + 30), 0.99, ())
                  for n, t in enumerate(card_lines(PERSON)))
    stored = extract_fields([PageText(0.1, lines)], [card_page(encode(GOOD))])
    stored = json.loads(json.dumps(stored, ensure_ascii=False))  # as the column holds it
    assert stored["qr"][0]["kind"] == "cccd"
    assert stored["qr"][0]["fields"]["full_name"]["value"] == PERSON["full_name"]
    assert "qr.agrees" in stored["fields"]["cccd"]["flags"]


@needs_qrencode
def test_appliance_extract_json_lists_the_codes_and_cross_checks(tmp_path, capsys):
    """`appliance extract CARD --json` with the real recognizer: the QR is listed, and
    every field it carries is either confirmed, flagged or filled by it; none is
    valid and wrong."""
    import argparse

    from appliance.extraction.commands import add_extract_arguments, cmd_extract

    path = tmp_path / "card.png"
    card_page(qrencode(GOOD)).save(path)
    parser = argparse.ArgumentParser()
    add_extract_arguments(parser)
    code = cmd_extract(parser.parse_args([str(path), "--json", "--threads", "1",
                                          "--paper", "cccd-front"]))
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and len(doc["qr"]) == 1 and doc["qr"][0]["kind"] == "cccd"
    assert doc["qr"][0]["fields"]["cccd"]["value"] == PERSON["cccd"]
    for name in ("cccd", "full_name", "birth_date", "gender"):
        field = doc["fields"][name]
        assert {"qr.agrees", "qr.mismatch", "qr.filled"} & set(field["flags"]), (name, field)
        if field["status"] == "valid":
            assert field["value"] == PERSON[name], (name, field)


@pytest.mark.parametrize("encode", ENCODERS)
@pytest.mark.parametrize("dpi", [100, 200])
def test_a_card_photocopy_on_an_a4_page_is_read_down_to_100_dpi(encode, dpi):
    """A 15 mm card QR on an A4 photocopy: under 2 pixels a module at 100 dpi, found
    there only by the enlarged second pass."""
    side = round(15 / 25.4 * dpi)
    page = Image.new("RGB", (round(8.27 * dpi), round(11.69 * dpi)), "white")
    page.paste(encode(GOOD).resize((side, side), Image.Resampling.BILINEAR),
               (page.width // 2, page.height // 3))
    [card] = qr.read_pages([page])
    assert card.kind == "cccd" and card.valid_values["cccd"] == PERSON["cccd"]
    x0, y0, x1, y1 = card.box  # the symbol, inside the pasted square and its margin
    left, top = page.width // 2, page.height // 3
    assert left <= x0 and x1 <= left + side + 1 and top <= y0 and y1 <= top + side + 1
    assert x1 - x0 >= 0.8 * side and y1 - y0 >= 0.8 * side
