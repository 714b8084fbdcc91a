from appliance.extraction.fields import extract, parse_date, valid_cccd


def test_fields_from_tk1_ts_lines():
    lines = [
        "TỜ KHAI THAM GIA, ĐIỀU CHỈNH THÔNG TIN BẢO HIỂM XÃ HỘI, BẢO HIỂM Y TẾ",
        "[01]. Họ và tên (viết chữ in hoa): NGUYỄN THỊ QUỲNH",
        "[03]. Ngày sinh: 07/03/1991",
        "[06]. Số CCCD/ĐDCN/Hộ chiếu: 001191012345",
        "[07]. Điện thoại: 0912 345 678",
        "Mã số BHXH: 0123456789",
    ]
    result = extract(lines)
    assert result.values == {
        "full_name": "NGUYỄN THỊ QUỲNH", "birth_date": "07/03/1991",
        "cccd": "001191012345", "phone": "0912345678", "bhxh_number": "0123456789",
    }
    assert result.problems == ()


def test_bad_values_are_problems_not_guesses():
    result = extract(["[03]. Ngày sinh: 31/02/1991", "[06]. Số CCCD: 99919101234"])
    assert "birth_date" not in result.values and "cccd" not in result.values
    assert set(result.problems) == {"birth_date", "cccd"}


def test_validators():
    assert valid_cccd("079203001234")
    assert not valid_cccd("000203001234")  # province 000 does not exist
    assert parse_date("ngày 5-1-2024").isoformat() == "2024-01-05"  # day first, always


def test_boxed_numbers_on_the_line_below_their_label():
    result = extract(["[06]. Số CCCD/ĐDCN/Hộ chiếu:", "0 7 9 2 0 3 0 0 1 2 3 4",
                      "[01]. Mã số BHXH:", "7 9 0 1 2 3 4 5 6 7"])
    assert result.values == {"cccd": "079203001234", "bhxh_number": "7901234567"}
    assert result.problems == ()


def test_a_short_boxed_number_stays_a_problem():
    result = extract(["[06]. Số CCCD:", "0 9 2 1915 115 5 4 8"])  # 13 digits: misread
    assert "cccd" not in result.values and result.problems == ("cccd",)


def test_values_from_doubtful_lines_are_kept_but_flagged():
    lines = ["[01]. Họ và tên: TRƯƠNG PHƯƠNG QUYÊN", "[06]. Số CCCD:", "048192098695",
             "[07]. Điện thoại: 0582378927"]
    result = extract(lines, confidences=[0.95, 0.97, 0.52, 0.91])
    assert result.values["cccd"] == "048192098695"
    assert result.uncertain == ("cccd",)  # the number came from the unsure line below
    assert extract(lines, confidences=[0.62, 0.97, 0.99, 0.91]).uncertain == ("full_name",)
    assert extract(lines).uncertain == ()  # no confidences, no claim either way
    assert result.as_dict()["uncertain"] == ["cccd"]


def test_a_value_comes_from_its_own_label():
    # Found on real letters (tests/extraction/test_real_scans.py): a tax code after
    # "Mã số thuế:" is no BHXH number of "Mã số", and the "TU" of a document number
    # "45-CTr/TU ngày 25/02/2020" is no "Từ ngày" opening a sick leave.
    book = extract(["Mã số thuế: 0300849034"], paper_type="bhxh-book")
    assert "bhxh_number" not in book.values and book.missing == ("bhxh_number", "full_name",
                                                                  "birth_date")
    leave = extract(["NQ/TW và Chương trình số 45-CTr/TU ngày 25/02/2020 thực hiện"],
                    paper_type="sick-leave-c65")
    assert "leave_from" in leave.missing
    assert extract(["Từ ngày 25/02/2020"], paper_type="sick-leave-c65").values[
        "leave_from"] == "25/02/2020"
    assert extract(["Mã số: 0300849034"], paper_type="bhxh-book").values[
        "bhxh_number"] == "0300849034"
