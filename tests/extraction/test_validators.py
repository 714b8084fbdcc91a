"""Each kind of value against what the law and the number plans allow."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from appliance.extraction import validators as v
from appliance.records import catalogue as cat

FORMATS = v.Formats(cat.default().cccd_provinces, cat.default().mobile_prefixes,
                    cat.default().surnames)


def verdict(kind: str, text: str, **kw: bool) -> v.Verdict | None:
    return v.check(kind, text, FORMATS, **kw)


@pytest.mark.parametrize("text, value", [
    ("001191012345", "001191012345"),
    ("0 7 9 2 0 3 0 0 1 2 3 4", "079203001234"),  # digits in printed boxes
    ("|0|4|8|0|8|1|4|7|2|7|4|3|", "048081472743"),  # box rules read as bars
])
def test_cccd_valid(text, value):
    got = verdict("cccd", text)
    assert got is not None and (got.status, got.value) == ("valid", value)


@pytest.mark.parametrize("text, flag", [
    ("00119101234", "cccd.length"),  # 11 digits
    ("0011910123456", "cccd.length"),  # 13 digits
    ("003191012345", "cccd.province"),  # 003 is no province (Circular 59/2021)
    ("000191012345", "cccd.province"),
    ("099191012345", "cccd.province"),
    ("001991012345", "cccd.century"),  # 9 = the 2300s
])
def test_cccd_problems_carry_the_reason(text, flag):
    got = verdict("cccd", text)
    assert got is not None and got.status == "problem" and got.value is None
    assert got.flags == (flag,) and got.reason


def test_every_province_code_of_the_circular_is_known():
    provinces = cat.default().cccd_provinces
    assert len(provinces) == 63
    assert {"001", "079", "048", "096"} <= set(provinces) and "003" not in provinces


def test_cccd_encodes_century_year_and_sex():
    assert v.cccd_birth_year("079203001234") == 2003
    assert v.cccd_birth_year("001191012345") == 1991
    assert v.cccd_is_female("001191012345") and not v.cccd_is_female("079203001234")


def test_bhxh_number():
    assert verdict("bhxh_number", "Mã số: 7 9 0 1 2 3 4 5 6 7").value == "7901234567"
    bad = verdict("bhxh_number", "790123456")
    assert bad.status == "problem" and bad.flags == ("bhxh.length",)
    # the 10 digits at the end of a health-insurance card number are the BHXH number
    card = verdict("bhxh_number", "GD4797912345678")
    assert card.value == "7912345678" and card.status == "valid"
    # a heading that only mentions the number is no attempt at it
    assert verdict("bhxh_number", "do cơ quan BHXH cấp") is None


@pytest.mark.parametrize("text, value", [
    ("13/08/2001", "13/08/2001"), ("5-1-2024", "05/01/2024"), ("07.03.1991", "07/03/1991"),
    ("ngày 13 tháng 8 năm 2001", "13/08/2001"), ("Ngày 05 tháng 01 năm 2024", "05/01/2024"),
    ("1 3 0 8 2 0 0 1", "13/08/2001"),  # digits in boxes
    ("13 / 08 / 2001", "13/08/2001"),
])
def test_dates_day_first(text, value):
    got = verdict("date", text)
    assert (got.status, got.value) == ("valid", value)


@pytest.mark.parametrize("text, flag", [
    ("31/02/1991", "date.not_real"), ("29/02/2023", "date.not_real"),
    ("13/13/2001", "date.not_real"), ("ngày 31 tháng 4 năm 2020", "date.not_real"),
    ("08/2001", "date.format"), ("12/05/1850", "date.range"),
])
def test_impossible_dates_are_problems(text, flag):
    got = verdict("date", text)
    assert got.status == "problem" and got.value is None and flag in got.flags


def test_a_birth_date_cannot_be_in_the_future():
    tomorrow = (date.today() + timedelta(days=1)).strftime("%d/%m/%Y")
    assert verdict("date", tomorrow).status == "valid"
    assert verdict("date", tomorrow, past=True).flags == ("date.future",)
    assert v.parse_date("ngày 29-2-2024") == date(2024, 2, 29)


@pytest.mark.parametrize("text, status, value", [
    ("0912 345 678", "valid", "0912345678"), ("0912.345.678", "valid", "0912345678"),
    ("+84 912 345 678", "valid", "0912345678"), ("024 3825 1234", "valid", "02438251234"),
    ("0112345678", "uncertain", "0112345678"),  # no network uses 011
])
def test_phone_numbers(text, status, value):
    got = verdict("phone", text)
    assert (got.status, got.value) == (status, value)


def test_a_phone_number_of_the_wrong_length_is_a_problem():
    got = verdict("phone", "091234567")
    assert got.status == "problem" and got.flags == ("phone.format",)


@pytest.mark.parametrize("text, value", [
    ("7.500.000 đồng", "7500000"), ("7,500,000 VNĐ", "7500000"), ("7500000đ", "7500000"),
    ("Tổng: 12.000 đồng", "12000"), ("350 000", "350000"),
])
def test_amounts(text, value):
    got = verdict("amount", text)
    assert (got.status, got.value) == ("valid", value)


def test_amount_with_broken_grouping_is_a_problem():
    got = verdict("amount", "7.50.000 đồng")
    assert got.status == "problem" and got.flags == ("amount.format",)


def test_amount_span_covers_the_currency():
    text = "7.500.000 đồng còn lại"
    got = verdict("amount", text)
    assert text[got.span[0]:got.span[1]] == "7.500.000 đồng"


@pytest.mark.parametrize("text", ["NGUYỄN THỊ QUỲNH", "TRƯƠNG PHƯƠNG QUYÊN", "ĐỖ GIA AN",
                                  "HOÀNG THỊ THUỲ", "LÊ XUÂN HÙNG", "KHUẤT NGUYỆT"])
def test_upper_case_vietnamese_names_are_valid(text):
    got = verdict("name", text)
    assert (got.status, got.value) == ("valid", text)


def test_names_are_nfc():
    decomposed = "NGUYE\u0302\u0303N VA\u0306N AN"  # NFD, as some scanners' software writes
    got = verdict("name", decomposed)
    assert got.value == "NGUYỄN VĂN AN" and got.status == "valid"


@pytest.mark.parametrize("text, flag", [
    ("ĐỖ GIAAN", "name.syllable"),  # the misread the issue quotes
    ("Nguyễn Văn An", "name.case"),
    ("NGUYỄN", "name.single_word"),
    ("NGUYÑ VAN", "name.letters"),
    ("LỆ XUÂN HÙNG", "name.surname"),  # misreads the issue quotes: LÊ, ĐINH
    ("ĐỊNH VĂN CƯỜNG", "name.surname"),
])
def test_odd_names_are_uncertain(text, flag):
    got = verdict("name", text)
    assert got.status == "uncertain" and flag in got.flags and got.reason


def test_a_name_with_digits_is_a_problem():
    got = verdict("name", "NGUYỄN VĂN 4N")
    assert got.status == "problem" and got.flags == ("name.characters",)


def test_sex_and_email():
    assert verdict("sex", "Nữ").value == "Nữ" and verdict("sex", "Nam / Male").value == "Nam"
    assert verdict("sex", "Khác").status == "problem"
    assert verdict("email", "an.nguyen@gmail.com").value == "an.nguyen@gmail.com"
    assert verdict("email", "an.nguyen@gmail").status == "problem"


def test_health_card_numbers():
    assert verdict("health_card", "GD 4 79 7912345678").value == "GD4797912345678"
    assert verdict("health_card", "7912345678").value == "7912345678"
    assert verdict("health_card", "GD47979123456").status == "problem"
