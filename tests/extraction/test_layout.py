"""Fields by position, from hand-written OCR lines with boxes (no OCR involved)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from appliance.extraction.fields import extract, extract_pages, guess_paper_type
from appliance.extraction.layout import to_lines
from appliance.records import catalogue as cat

CHAR_W = 18  # pixels per character at 200 dpi, near enough for stand-in boxes
LINE_H = 40


def line(text: str, x: int, y: int, conf: float = 0.99) -> dict[str, object]:
    """A stored OCR line as the worker keeps it: text, box, least sure character."""
    return {"text": text, "box": [x, y, x + CHAR_W * len(text), y + LINE_H],
            "confidence": conf, "min_char_confidence": conf}


@dataclass(frozen=True)
class FakeTextLine:
    """The OCR engine's TextLine shape: one confidence per character."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float
    char_confidences: tuple[float, ...]

    @property
    def least_sure(self) -> float:
        return min(self.char_confidences)


TK1_HEAD = [line("Mẫu TK1-TS", 1360, 88),
            line("TỜ KHAI", 733, 384),
            line("THAM GIA, ĐIỀU CHỈNH THÔNG TIN BẢO HIỂM XÃ HỘI, BẢO HIỂM Y TẾ", 187, 438),
            line("I. Áp dụng đối với người tham gia tra cứu không thấy mã số BHXH", 153, 545),
            line("do cơ quan BHXH cấp", 155, 599)]


@pytest.mark.parametrize("text", ["Họ và tên: DƯƠNG MINH PHƯỢNG   Ngày sinh: 13/08/2001",
                                  "HỌ VÀ TÊN: DƯƠNG MINH PHƯỢNG   NGÀY SINH: 13/08/2001",
                                  "Họ và tên DƯƠNG MINH PHƯỢNG   Ngày sinh 13/08/2001"])
def test_two_columns_on_one_line_split_at_the_next_label(text):
    result = extract([line(text, 150, 600)])
    assert result.values["full_name"] == "DƯƠNG MINH PHƯỢNG"
    assert result.values["birth_date"] == "13/08/2001"
    name, born = result.fields["full_name"], result.fields["birth_date"]
    assert name.status == born.status == "valid"
    # each value keeps its own part of the line's box
    assert 150 < name.box[0] < name.box[2] <= born.box[0] < born.box[2] <= 150 + 52 * CHAR_W
    assert name.page == 0 and name.confidence == pytest.approx(0.99)


def test_an_unlisted_label_still_ends_the_value_before_it():
    result = extract([line("Họ và tên: DƯƠNG MINH PHƯỢNG Bí danh: PHƯỢNG", 150, 600)])
    assert result.values["full_name"] == "DƯƠNG MINH PHƯỢNG"


def test_two_columns_as_separate_pieces_of_one_row():
    rows = [line("[02]. Giới tính:", 153, 741), line("Nữ", 520, 745),
            line("[03]. Ngày, tháng, năm sinh:", 627, 745), line("13/08/2001", 1150, 749)]
    result = extract(TK1_HEAD + rows, paper_type="tk1-ts")
    assert result.values["gender"] == "Nữ" and result.values["birth_date"] == "13/08/2001"


def test_labels_in_another_order():
    result = extract([line("Ngày sinh: 13/08/2001   Họ và tên: DƯƠNG MINH PHƯỢNG", 150, 600),
                      line("Mã số BHXH: 0123456789", 150, 660)])
    assert result.values == {"birth_date": "13/08/2001", "full_name": "DƯƠNG MINH PHƯỢNG",
                             "bhxh_number": "0123456789"}


def test_values_under_the_wrong_labels_are_problems_with_reasons():
    result = extract([line("Họ và tên: 13/08/2001", 150, 600),
                      line("Ngày sinh: DƯƠNG MINH PHƯỢNG", 150, 660)])
    assert result.values == {}
    assert set(result.problems) == {"full_name", "birth_date"}
    assert result.fields["full_name"].reason == "not a name: '13/08/2001'"
    assert result.fields["birth_date"].reason == "not a date: 'DƯƠNG MINH PHƯỢNG'"
    assert result.as_dict()["reasons"]["birth_date"]


def test_values_on_the_line_below_their_labels_on_a_cccd():
    lines = [line("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 300, 40),
             line("CĂN CƯỚC CÔNG DÂN", 420, 90),
             line("Số / No.: 001301012345", 380, 160),
             line("Họ và tên / Full name:", 300, 220),
             line("DƯƠNG MINH PHƯỢNG", 300, 265),
             line("Ngày sinh / Date of birth: 13/08/2001", 300, 320),
             line("Giới tính / Sex: Nữ", 300, 370),
             line("Quốc tịch / Nationality: Việt Nam", 700, 370),
             line("Quê quán / Place of origin:", 300, 420),
             line("Phường Kim Mã, Ba Đình, Hà Nội", 300, 465)]
    result = extract(lines)
    assert result.paper_type == "cccd-front" and result.paper_guessed
    assert result.values == {"cccd": "001301012345", "full_name": "DƯƠNG MINH PHƯỢNG",
                             "birth_date": "13/08/2001", "gender": "Nữ",
                             "nationality": "Việt Nam",
                             "hometown": "Phường Kim Mã, Ba Đình, Hà Nội"}
    assert result.problems == () and result.missing == ()
    assert result.fields["full_name"].box[1] == 265  # the box is the value's, below


def test_a_cccd_that_contradicts_the_date_of_birth_is_flagged_on_both_sides():
    result = extract([line("Họ và tên: DƯƠNG MINH PHƯỢNG", 150, 600),
                      line("Ngày sinh: 13/08/1991", 150, 660),
                      line("Số CCCD: 001301012345", 150, 720)])  # 3|01: a woman born 2001
    assert result.fields["cccd"].status == "problem"
    assert "cccd.birth_year" in result.fields["cccd"].flags
    assert "2001" in result.fields["cccd"].reason and "1991" in result.fields["cccd"].reason
    assert result.fields["birth_date"].status == "uncertain"
    assert "cccd" not in result.values


def test_a_cccd_that_contradicts_the_sex_is_a_problem():
    result = extract(TK1_HEAD + [line("[02]. Giới tính: Nam", 153, 741),
                                 line("[03]. Ngày, tháng, năm sinh: 13/08/2001", 627, 745),
                                 line("[06]. Số CCCD/ĐDCN/Hộ chiếu: 001301012345", 153, 881)])
    assert result.fields["cccd"].flags == ("cccd.sex",)


def test_digits_in_boxes_split_into_pieces_along_the_row():
    rows = [line("[06]. Số CCCD/ĐDCN/Hộ chiếu:", 153, 881), line("0 4 8", 718, 883),
            line("0 8 1 4 7 2 7 4 3", 830, 883)]
    result = extract(TK1_HEAD + rows)
    assert result.values["cccd"] == "048081472743"
    assert result.fields["cccd"].box[0] == 718


def test_a_heading_that_mentions_the_bhxh_number_raises_no_alarm():
    rows = [line("II. Áp dụng đối với người tham gia đã được cấp mã số BHXH", 145, 1769),
            line("[01]. Mã số BHXH:", 148, 1842), line("4897431644", 539, 1837)]
    result = extract(TK1_HEAD + rows)
    assert result.values["bhxh_number"] == "4897431644"
    assert result.problems == ()


def test_a_problem_is_cleared_by_a_valid_value_found_later():
    result = extract([line("Mã số BHXH: 12345", 150, 100),
                      line("Mã số BHXH: 0123456789", 150, 700)])
    assert result.values == {"bhxh_number": "0123456789"} and result.problems == ()
    # and the other way round: only the bad one stays a problem
    result = extract([line("Mã số BHXH: 12345", 150, 100)])
    assert result.problems == ("bhxh_number",)


def test_two_different_valid_readings_of_one_field_are_not_trusted():
    result = extract([line("Mã số BHXH: 0123456789", 150, 100),
                      line("Mã số BHXH: 0123456780", 150, 700)])
    assert result.fields["bhxh_number"].status == "uncertain"
    assert "conflict" in result.fields["bhxh_number"].flags


def test_missing_mandatory_fields_are_listed():
    result = extract(TK1_HEAD + [line("[01]. Họ và tên (viết chữ in hoa): LÊ VĂN AN", 150, 663)])
    assert result.paper_type == "tk1-ts"
    assert set(result.missing) == {"birth_date", "cccd", "bhxh_number"}
    assert result.as_dict()["missing"] == list(result.missing)
    assert result.fields["cccd"].reason == "mandatory field not found on the paper"


def test_hospital_discharge_paper():
    lines = [line("BỆNH VIỆN BẠCH MAI", 100, 60),
             line("GIẤY RA VIỆN", 600, 160),
             line("Họ tên người bệnh: LÊ VĂN AN   Tuổi: 45   Nam/Nữ: Nam", 100, 260),
             line("Mã số BHXH/Thẻ BHYT số: GD4797912345678", 100, 320),
             line("Vào viện lúc: 8 giờ 30 phút, ngày 05 tháng 03 năm 2024", 100, 380),
             line("Ra viện lúc: 9 giờ 00 phút, ngày 12 tháng 3 năm 2024", 100, 440),
             line("Chẩn đoán: Viêm phổi", 100, 500)]
    result = extract(lines)
    assert result.paper_type == "hospital-discharge"
    assert result.values == {"full_name": "LÊ VĂN AN", "gender": "Nam",
                             "bhxh_number": "7912345678", "admission_date": "05/03/2024",
                             "discharge_date": "12/03/2024", "diagnosis": "Viêm phổi"}
    assert result.missing == ()


def test_medical_bill_amounts():
    lines = [line("BẢNG KÊ CHI PHÍ KHÁM BỆNH, CHỮA BỆNH", 300, 100),
             line("Họ tên người bệnh: TRẦN THỊ MAI", 100, 200),
             line("Tổng chi phí lần khám bệnh/cả đợt điều trị: 7.500.000 đồng", 100, 260),
             line("Người bệnh trả: 1.500.000 đồng", 100, 320)]
    result = extract(lines)
    assert result.paper_type == "medical-bill-01kbcb"
    assert result.values["total_cost"] == "7500000"
    assert result.values["patient_paid"] == "1500000"


@pytest.mark.parametrize("paper", [p for p in cat.default().papers if p.title_labels],
                         ids=lambda p: p.code)
def test_every_paper_type_is_guessed_from_each_of_its_titles(paper):
    for title in paper.title_labels:
        lines = to_lines([line("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 300, 40),
                          line(title.upper(), 300, 100)])
        guessed = guess_paper_type(lines, cat.default())
        assert guessed is not None and guessed.code == paper.code, title


def test_a_title_word_inside_a_field_line_does_not_name_the_paper():
    lines = to_lines([line("[01]. Mã số BHXH: 0123456789", 150, 100)])
    assert guess_paper_type(lines, cat.default()) is None  # not "Sổ BHXH"


def test_an_unknown_paper_type_is_flagged_and_nothing_passes_as_valid():
    result = extract([line("Họ và tên: DƯƠNG MINH PHƯỢNG", 150, 600)],
                     paper_type="giay-phep-lai-xe")
    assert result.paper_type is None and "giay-phep-lai-xe" in result.paper_problem
    assert result.fields["full_name"].status == "uncertain"
    assert "paper.unknown" in result.fields["full_name"].flags
    assert result.as_dict()["paper_problem"] == result.paper_problem


def test_a_doubtful_label_does_not_flag_a_clear_value():
    text = "Họ và tên: LÊ VĂN AN"
    sure = tuple(0.3 if i < 3 else 0.99 for i in range(len(text)))  # "Họ " badly read
    doubtful_value = tuple(0.99 if i < 12 else 0.4 for i in range(len(text)))
    box = (100, 100, 500, 140)
    assert extract([FakeTextLine(text, box, 0.9, sure)]).fields["full_name"].status == "valid"
    unsure = extract([FakeTextLine(text, box, 0.9, doubtful_value)]).fields["full_name"]
    assert unsure.status == "uncertain" and unsure.flags == ("low_confidence",)
    assert unsure.confidence == pytest.approx(0.4)


def test_fields_keep_the_page_they_were_found_on():
    result = extract_pages([[line("Họ và tên: LÊ VĂN AN", 150, 600)],
                            [line("Mã số BHXH: 0123456789", 150, 100)]])
    assert result.fields["full_name"].page == 0 and result.fields["bhxh_number"].page == 1


def test_the_worker_call_keeps_its_shape():
    """extract(lines, least_sure) with strings, as appliance/worker.py calls it: the
    keys the officer's page reads are still there, boxes are absent (not invented)."""
    out = extract(["[01]. Họ và tên: LÊ VĂN AN", "Mã số BHXH: 0123456789"], [0.9, 0.5]).as_dict()
    assert out["values"] == {"full_name": "LÊ VĂN AN", "bhxh_number": "0123456789"}
    assert out["problems"] == [] and out["uncertain"] == ["bhxh_number"]
    assert out["fields"]["full_name"]["box"] is None


def test_boxes_in_every_shape_the_callers_have():
    quad = [[150, 600], [650, 600], [650, 640], [150, 640]]
    for box in (quad, [150, 600, 650, 640], [150, 600, 650, 600, 650, 640, 150, 640]):
        result = extract([{"text": "Họ và tên: LÊ VĂN AN", "box": box}])
        assert result.fields["full_name"].box is not None
        assert 150 < result.fields["full_name"].box[0] < 650
