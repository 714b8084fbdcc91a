"""The officer desk's forms through the Flask test client: corrections, the paper's type
and the return to the citizen, each through records.corrections or web/desk.py, each
refusal in the screen's language with nothing changed. (The browser side, boxes and
keyboard, is test_web_officer_review.)"""

from __future__ import annotations

import json
import re
import subprocess
import unicodedata

from appliance.records import audit, corrections, dossiers, result
from tests.helpers.signed_papers import files_of, scanned_forms
from tests.web.forms import post_form
from tests.web.helpers import public_id, submitted_dossier
from tests.web.review_pages import OCR_NAME, review_dossier


def html(response) -> str:
    return response.get_data(as_text=True)


def value_of(conn, config, paper_id: int, name: str) -> corrections.ReviewField:
    return next(f for f in corrections.review_fields(conn, config, paper_id) if f.name == name)


def corrections_of(conn, dossier_id: int) -> list[audit.AuditEntry]:
    return [e for e in audit.entries(conn, dossier_id) if e.action == "correction"]


def test_review_marks_fields_and_their_boxes(client, conn, config):
    dossier_id, paper_id = review_dossier(conn, config)
    page = html(client.get(f"/officer/dossiers/{public_id(conn, dossier_id)}"))
    box = value_of(conn, config, paper_id, "full_name").box
    assert box is not None
    assert (f'class="field-box mark-warn" data-field="full_name" data-page="0" '
            f'data-box="{" ".join(map(str, box))}"') in page
    assert re.search(r'class="field-box mark-err" data-field="cccd"', page)
    assert 'data-field="bhxh_number" data-status="missing"' in page  # mandatory, not found
    assert "Số CCCD phải có đúng 12 chữ số." in page
    page = html(client.get(f"/officer/dossiers/{public_id(conn, dossier_id)}?lang=en"))
    assert "A CCCD number has exactly 12 digits." in page and "Citizen ID number" in page


def test_correction_needs_a_name_without_pin_then_keeps_the_ocr_value(client, conn, config):
    dossier_id, paper_id = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    url = f"{detail}/papers/{paper_id}/fields/full_name"
    name = unicodedata.normalize("NFD", "NGUYỄN THỊ HỘI")  # decomposed, as some IMEs send
    r = post_form(client, url, {"value": name}, page=detail, follow_redirects=True)
    assert "Hãy nhập họ tên cán bộ" in html(r)  # no PIN, no remembered name: who is it?
    assert value_of(conn, config, paper_id, "full_name").value == OCR_NAME
    r = post_form(client, url, {"value": name, "officer": "Lê Văn Tâm"}, page=detail,
                  follow_redirects=True)
    page = html(r)
    fixed = value_of(conn, config, paper_id, "full_name")
    assert fixed.value == unicodedata.normalize("NFC", name) and fixed.ocr_value == OCR_NAME
    assert fixed.corrected_by == "Lê Văn Tâm"
    assert "Đã lưu giá trị sửa" in page and f'data-ocr>{OCR_NAME}</span>' in page
    [entry] = corrections_of(conn, dossier_id)
    assert entry.actor == "Lê Văn Tâm" and entry.detail["field"] == "full_name"


def test_refused_correction_is_shown_beside_its_field_and_changes_nothing(client, conn,
                                                                          config):
    dossier_id, paper_id = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    cases = [("cccd", "00120300456", "Số CCCD phải có đúng 12 chữ số."),
             ("birth_date", "31/02/1990", "Ngày này không có trên lịch"),
             ("birth_date", "  ", "Chưa nhập giá trị"),
             ("cccd", "001203004567 abc", "Chỉ nhập giá trị"),
             ("cccd", "không rõ", "Giá trị này không phải là số CCCD")]
    for name, value, reason in cases:
        before = value_of(conn, config, paper_id, name)
        r = post_form(client, f"{detail}/papers/{paper_id}/fields/{name}",
                      {"value": value, "officer": "Lê Văn Tâm"}, page=detail)
        assert r.status_code == 422, (name, value)
        page = html(r)
        refusal = re.search(rf'id="refusal-{paper_id}-{name}">([^<]*)<', page)
        assert refusal and reason in refusal.group(1), (name, value, page[-2000:])
        assert f'value="{value}"' in page  # what was typed stays to be fixed
        assert value_of(conn, config, paper_id, name) == before
    assert corrections_of(conn, dossier_id) == []
    r = post_form(client, f"{detail}/papers/{paper_id}/fields/cccd?lang=en",
                  {"value": "00120300456", "officer": "A"}, page=detail)
    assert "A CCCD number has exactly 12 digits." in html(r)


def test_a_paper_of_another_dossier_or_an_unknown_field_is_refused(client, conn, config):
    mine, my_paper = review_dossier(conn, config)
    other, other_paper = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, mine)}"
    for url in (f"{detail}/papers/{other_paper}/fields/full_name",
                f"/officer/dossiers/{public_id(conn, other)}/papers/{my_paper}/fields/full_name",
                f"{detail}/papers/{other_paper}/type"):
        r = post_form(client, url, {"value": "TRẦN THỊ LAN", "officer": "A",
                                    "paper_type": "cccd-front"}, page=detail,
                      follow_redirects=True)
        assert "Không tìm thấy giấy tờ này trong hồ sơ." in html(r), url
    r = post_form(client, f"{detail}/papers/{my_paper}/fields/no_such_field",
                  {"value": "1", "officer": "A"}, page=detail, follow_redirects=True)
    assert "Loại giấy tờ này không có trường thông tin đó." in html(r)
    for dossier_id, paper_id in ((mine, my_paper), (other, other_paper)):
        assert value_of(conn, config, paper_id, "full_name").value == OCR_NAME
        assert dossiers.get(conn, dossier_id).papers[0].title.startswith("Tờ khai")
        assert corrections_of(conn, dossier_id) == []


def test_paper_type_change_reads_the_fields_again(client, conn, config):
    dossier_id, paper_id = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    r = post_form(client, f"{detail}/papers/{paper_id}/type", {"paper_type": "nonsense",
                                                               "officer": "A"},
                  page=detail, follow_redirects=True)
    assert "Danh mục không có loại giấy tờ này" in html(r)
    r = post_form(client, f"{detail}/papers/{paper_id}/type",
                  {"paper_type": "cccd-front", "officer": "Lê Văn Tâm"}, page=detail,
                  follow_redirects=True)
    page = html(r)
    assert "Đã đổi loại giấy tờ" in page
    assert '<option value="cccd-front" selected>' in page
    assert dossiers.get(conn, dossier_id).papers[0].title == "Căn cước công dân (mặt trước)"
    names = {f.name for f in corrections.review_fields(conn, config, paper_id)}
    assert "expiry_date" in names and "bhxh_number" not in names  # the card's fields now
    [entry] = corrections_of(conn, dossier_id)
    assert entry.detail["op"] == "set_paper_type" and entry.detail["to"] == "cccd-front"


def test_signed_dossier_takes_no_correction(client, conn, config):
    dossier_id, paper_id = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    post_form(client, f"{detail}/sign", {"officer": "A", "checked": "yes"}, page=detail)
    assert dossiers.get(conn, dossier_id).status == "signed"
    page = html(client.get(detail))
    assert "correct-form" not in page and 'id="return"' not in page
    r = post_form(client, f"{detail}/papers/{paper_id}/fields/full_name",
                  {"value": "TRẦN THỊ LAN", "officer": "A"}, page=detail,
                  follow_redirects=True)
    assert "không thể sửa đổi nữa" in html(r)
    assert value_of(conn, config, paper_id, "full_name").value == OCR_NAME


def test_return_needs_a_reason_and_the_confirmation(client, conn, config):
    dossier_id, _ = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    r = post_form(client, f"{detail}/return", {"reason": "  ", "officer": "A",
                                                "confirm": "yes"}, page=detail,
                  follow_redirects=True)
    assert "Hãy ghi lý do trả lại hồ sơ" in html(r)
    post_form(client, f"{detail}/return", {"reason": "thiếu trang 2", "officer": "A"},
              page=detail)
    assert dossiers.get(conn, dossier_id).status == "submitted"
    r = post_form(client, f"{detail}/return", {"reason": "thiếu trang 2", "officer": "A",
                                                "confirm": "yes"}, page=detail,
                  follow_redirects=True)
    assert "Đã trả lại hồ sơ cho công dân." in html(r)
    assert dossiers.get(conn, dossier_id).status == "cancelled"
    assert "thiếu trang 2" in html(client.get(detail))
    r = post_form(client, f"{detail}/return", {"reason": "again", "officer": "A",
                                                "confirm": "yes"}, page=detail,
                  follow_redirects=True)
    assert dossiers.get(conn, dossier_id).status == "cancelled"
    assert len([e for e in corrections_of(conn, dossier_id)
                if e.detail.get("op") == "returned_to_citizen"]) == 1


def test_search_by_code_or_by_the_citizen_s_name(client, conn, config):
    """Names are sealed in the papers' fields: the desk opens them to search, folded."""
    dossier_id, paper_id = review_dossier(conn, config)
    other, _ = review_dossier(conn, config)
    code = dossiers.get(conn, dossier_id).code
    corrections.correct_field(conn, config, dossier_id=dossier_id, paper_id=paper_id,
                              field="full_name", value="TRẦN THỊ LAN", officer="A")

    def listed(term: str) -> set[str]:
        page = html(client.get("/officer", query_string={"q": term}))
        waiting = page.split('id="waiting"', 1)[1].split("</table>", 1)[0] if (
            'id="waiting"' in page) else ""
        return set(re.findall(r'<td class="mono">([^<]+)</td>', waiting))

    assert listed(code[-4:]) == {code}  # by code, as before
    assert listed("tran thi") == {code}  # no marks, no case
    assert listed(unicodedata.normalize("NFC", "Lan")) == {code}
    assert listed("NGUYEN THI") == {dossiers.get(conn, other).code}
    assert listed("zzz") == set()
    assert "Không có hồ sơ nào có mã hoặc họ tên như vậy." in html(
        client.get("/officer", query_string={"q": "zzz"}))


def test_page_edits_delete_with_a_reason_split_and_merge(client, conn, config):
    dossier_id = submitted_dossier(conn, config, pages=3, blank=(3,))
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    d = dossiers.get(conn, dossier_id)
    [paper] = d.papers
    first, second, blank = paper.pages
    # a reason is required; a page of another dossier is not found
    r = post_form(client, f"{detail}/pages/delete", {"page_id": blank.id, "reason": " ",
                                                     "officer": "A"}, page=detail,
                  follow_redirects=True)
    assert "Hãy ghi lý do xóa trang." in html(r)
    other = submitted_dossier(conn, config)
    foreign = dossiers.get(conn, other).papers[0].pages[0].id
    for page_id in (foreign, "x", "0", "²", "١"):  # digits str.isdigit takes, int() not all
        r = post_form(client, f"{detail}/pages/delete", {"page_id": page_id,
                                                         "reason": "trắng", "officer": "A"},
                      page=detail, follow_redirects=True)
        assert "Không tìm thấy trang này" in html(r), page_id
    assert len(dossiers.get(conn, other).papers[0].pages) == 2
    r = post_form(client, f"{detail}/pages/delete", {"page_id": blank.id,
                                                     "reason": "trang trắng", "officer": "A"},
                  page=detail, follow_redirects=True)
    assert "Đã xóa trang" in html(r)
    assert [p.id for p in dossiers.get(conn, dossier_id).papers[0].pages] == [first.id,
                                                                              second.id]
    # split before the second page: two papers; merged back: one paper of two pages
    r = post_form(client, f"{detail}/papers/{paper.id}/split", {"page_id": second.id,
                                                                "officer": "A"},
                  page=detail, follow_redirects=True)
    assert "Đã tách thành giấy tờ mới." in html(r)
    papers = dossiers.get(conn, dossier_id).papers
    assert [[pg.id for pg in p.pages] for p in papers] == [[first.id], [second.id]]
    r = post_form(client, f"{detail}/papers/{papers[0].id}/merge", {"officer": "A"},
                  page=detail, follow_redirects=True)
    assert "Không tìm thấy giấy tờ này" in html(r)  # the first paper has none before it
    r = post_form(client, f"{detail}/papers/{papers[1].id}/merge", {"officer": "A"},
                  page=detail, follow_redirects=True)
    assert "Đã gộp vào giấy tờ trước." in html(r)
    [back] = dossiers.get(conn, dossier_id).papers
    assert [pg.id for pg in back.pages] == [first.id, second.id]
    ops = [e.detail["op"] for e in corrections_of(conn, dossier_id)]
    assert ops == ["delete_page", "split_paper", "merge_papers"]


def test_row_ids_beyond_sqlite_are_not_found_not_a_crash(client, conn, config):
    """Paper ids in the URL past SQLite's range match no route (the app's int
    converter); a page id in the form is checked by the view."""
    dossier_id, _ = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    huge = 2**70
    for url in (f"{detail}/papers/{huge}/fields/full_name", f"{detail}/papers/{huge}/type",
                f"{detail}/papers/{huge}/split", f"{detail}/papers/{huge}/merge"):
        r = post_form(client, url, {"value": "A", "officer": "A", "page_id": "1"},
                      page=detail)
        assert r.status_code == 404, (url, r.status_code)
    r = post_form(client, f"{detail}/pages/delete", {"page_id": str(huge), "reason": "x",
                                                     "officer": "A"}, page=detail)
    assert r.status_code == 302
    assert "Không tìm thấy trang này" in html(client.get(detail))


def test_return_whose_audit_line_fails_leaves_the_dossier_submitted(client, conn, config):
    """The return's cancellation and its audit line are one transaction: the audit
    insert refused by SQLite (a trigger on the app's own database file) answers a
    error page, and the dossier stays on the list instead of cancelled without a reason."""
    dossier_id, _ = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    conn.execute("CREATE TRIGGER refuse_return BEFORE INSERT ON audit_log "
                 "WHEN NEW.detail_json LIKE '%returned_to_citizen%' "
                 "BEGIN SELECT RAISE(ABORT, 'audit write failed'); END")
    try:
        r = post_form(client, f"{detail}/return", {"reason": "thiếu trang 2",
                                                    "officer": "A", "confirm": "yes"},
                      page=detail)
    finally:
        conn.execute("DROP TRIGGER refuse_return")
    assert r.status_code == 500 and "audit write failed" not in html(r)  # the error page
    assert dossiers.get(conn, dossier_id).status == "submitted"
    assert corrections.returned_reason(conn, dossier_id) is None


def _pdf_pages(pdf: bytes) -> int:
    """Pages of a PDF as poppler counts them (not as the appliance wrote them)."""
    out = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True,
                         timeout=60).stdout.decode()
    return int(re.search(r"^Pages:\s+(\d+)", out, re.M).group(1))


def test_page_edits_on_the_review_screen_are_what_is_signed(client, conn, config):
    """Delete, split and merge through the review screen's forms, then sign: each paper's
    signed PDF, its metadata document and the record body hold exactly the pages left,
    in the order the officer left them, by the sha256 the scan stored; the deleted
    page's hash is named only by the audit line that took it out."""
    forms = scanned_forms(conn, config, ((1, 2, 3), (4,)))
    (s1, s2, s3), (s4,) = forms.page_shas
    d = dossiers.get(conn, forms.dossier_id)
    detail = f"/officer/dossiers/{public_id(conn, d.id)}"
    first, last = d.papers
    ids = {pg.sha256: pg.id for p in d.papers for pg in p.pages}

    def post(url: str, data: dict) -> None:
        r = post_form(client, f"{detail}{url}", {"officer": "Lê Văn Tâm", **data},
                      page=detail)
        assert r.status_code == 302 and "error" not in r.headers["Location"], url

    post("/pages/delete", {"page_id": ids[s2], "reason": "trang quét hai lần"})
    post(f"/papers/{first.id}/split", {"page_id": ids[s3]})
    middle = dossiers.get(conn, d.id).papers[1].id
    post(f"/papers/{last.id}/merge", {})  # the last paper joins the split-off one
    post("/sign", {"checked": "yes"})
    signed = dossiers.get(conn, d.id)
    assert signed.status == "signed"
    assert [p.id for p in signed.papers] == [first.id, middle]
    expected = [[s1], [s3, s4]]
    [record_id] = [r_[0] for r_ in conn.execute("SELECT record_id FROM outbox")]
    body_json = dossiers.record_of(conn, record_id).body_json
    body = json.loads(body_json)
    files = files_of(conn, config)
    assert len(body["papers"]) == 2
    for sent, paper, shas in zip(body["papers"], signed.papers, expected, strict=True):
        pdf, document = result.load(files, paper.pdf_sha256)
        assert [p["sha256"] for p in document["pages"]] == shas
        assert [p["ordinal"] for p in document["pages"]] == list(range(1, len(shas) + 1))
        assert document["page_count"] == sent["page_count"] == _pdf_pages(pdf) == len(shas)
        assert sent["result"] == document and sent["file"]["sha256"] == paper.pdf_sha256
    assert s2 not in json.dumps(body["papers"])  # only the audit trail names it
    [deleted] = [e for e in body["audit"] if e["detail"].get("op") == "delete_page"]
    assert deleted["detail"]["sha256"] == s2
    ops = [e.detail["op"] for e in corrections_of(conn, d.id)]
    assert ops == ["delete_page", "split_paper", "merge_papers"]


def test_a_value_refused_for_contradicting_another_says_so(client, conn, config):
    """A date of birth that contradicts the CCCD number an officer set is refused by
    records (nobody may sign both); the screen says why, not the validator's verdict on
    the date alone (valid, which used to show as "only the value, please")."""
    dossier_id, paper_id = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    r = post_form(client, f"{detail}/papers/{paper_id}/fields/cccd",
                  {"value": "001203004567", "officer": "Lê Văn Tâm"}, page=detail)
    assert r.status_code == 302  # a man born in 2003
    before = value_of(conn, config, paper_id, "birth_date")
    r = post_form(client, f"{detail}/papers/{paper_id}/fields/birth_date",
                  {"value": "16/08/1991", "officer": "Lê Văn Tâm"}, page=detail)
    assert r.status_code == 422
    refusal = re.search(rf'id="refusal-{paper_id}-birth_date">([^<]*)<', html(r))
    assert refusal is not None
    assert "Năm sinh trong số CCCD không khớp với ngày sinh." in refusal.group(1)
    assert "Chỉ nhập giá trị" not in refusal.group(1)
    assert value_of(conn, config, paper_id, "birth_date") == before


def test_the_typed_signer_is_signed_in_nfc_without_control_characters(client, conn,
                                                                      config):
    """A name from a keyboard that sends decomposed marks, with a stray control
    character, is what the signed record and its audit line carry only once cleaned:
    the same officer must be the same string in every record."""
    dossier_id, _ = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    typed = unicodedata.normalize("NFD", " Lê  Văn\x07 Tâm\n")
    r = post_form(client, f"{detail}/sign", {"checked": "yes", "officer": typed},
                  page=detail)
    assert r.status_code == 302
    [record_id] = [row[0] for row in conn.execute("SELECT record_id FROM outbox")]
    body = json.loads(dossiers.record_of(conn, record_id).body_json)
    assert body["signed_by"] == "Lê Văn Tâm" == unicodedata.normalize("NFC", "Lê Văn Tâm")
    [sign] = [e for e in audit.entries(conn, dossier_id) if e.action == "sign"]
    assert sign.actor == "Lê Văn Tâm"


def test_a_value_too_long_is_refused_never_cut(client, conn, config):
    """A value longer than a field may hold is refused with its reason; cutting it to
    fit would sign a name or address the paper does not carry."""
    dossier_id, paper_id = review_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    before = value_of(conn, config, paper_id, "full_name")
    long_name = " ".join(["NGUYỄN"] * 40)  # 279 characters of a valid-looking name
    assert len(long_name) > corrections.MAX_VALUE
    r = post_form(client, f"{detail}/papers/{paper_id}/fields/full_name",
                  {"value": long_name, "officer": "Lê Văn Tâm"}, page=detail)
    assert r.status_code == 422
    refusal = re.search(rf'id="refusal-{paper_id}-full_name">([^<]*)<', html(r))
    assert refusal and f"tối đa {corrections.MAX_VALUE} ký tự" in refusal.group(1)
    assert value_of(conn, config, paper_id, "full_name") == before
