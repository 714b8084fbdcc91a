"""The officer's desk (records/corrections.py), through the use cases themselves.

Dossiers are real-looking scanned TK1-TS forms stored the way the worker stores them
(tests/helpers/signed_papers.py); sign-off is the product's own, so a correction is
followed into the signed metadata document, the record body that travels and the
audit chain, which the product's verifier walks.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from appliance.records import audit, corrections, dossiers, result
from appliance.records.errors import (
    DossierSigned,
    InvalidCorrection,
    InvalidState,
    PaperNotFound,
    ReasonRequired,
    UnknownField,
    UnknownPaperType,
)
from tests.helpers.signed_papers import files_of, scanned_forms

OFFICER = "Trần Minh Đức"


def _fields(conn, paper_id: int) -> dict:
    row = conn.execute("SELECT fields_json FROM papers WHERE id=?", (paper_id,)).fetchone()
    return dossiers.paper_fields(conn, paper_id, row[0])


def _corrections(conn, dossier_id: int) -> list[audit.AuditEntry]:
    return [e for e in audit.entries(conn, dossier_id)
            if e.action == audit.AuditAction.CORRECTION]


def test_a_correction_is_validated_stored_with_the_ocr_value_and_audited(conn, config):
    forms = scanned_forms(conn, config, ((1,),), submit=False)
    paper = dossiers.get(conn, forms.dossier_id).papers[0]
    ocr_name = paper.fields["fields"]["full_name"]["value"]
    fixed = corrections.correct_field(
        conn, config, dossier_id=forms.dossier_id, paper_id=paper.id, field="full_name",
        value="  lê   kim  giang ", officer=OFFICER, reason="tên đọc sai dấu")
    # normalised the way extraction gives names: NFC, upper case, single spaces
    assert fixed.value == "LÊ KIM GIANG" and fixed.ocr_value == ocr_name
    assert fixed.corrected_by == OFFICER and fixed.previous == ocr_name
    stored = _fields(conn, paper.id)
    entry = stored["fields"]["full_name"]
    assert (entry["value"], entry["source"], entry["corrected_by"], entry["ocr_value"]) == (
        "LÊ KIM GIANG", "officer", OFFICER, ocr_name)
    assert stored["values"]["full_name"] == "LÊ KIM GIANG"
    # a second correction keeps the OCR's reading, not the first correction
    corrections.correct_field(
        conn, config, dossier_id=forms.dossier_id, paper_id=paper.id, field="full_name",
        value="LÊ KIM GIANG ANH", officer="Phạm Thu Hà")
    entry = _fields(conn, paper.id)["fields"]["full_name"]
    assert entry["ocr_value"] == ocr_name and entry["corrected_by"] == "Phạm Thu Hà"
    lines = _corrections(conn, forms.dossier_id)
    assert [e.actor for e in lines] == [OFFICER, "Phạm Thu Hà"]
    assert lines[0].detail["field"] == "full_name" and lines[0].detail["paper_id"] == paper.id
    assert corrections.correction_values(conn, lines[0]) == (ocr_name, "LÊ KIM GIANG")
    assert corrections.correction_values(conn, lines[1]) == ("LÊ KIM GIANG", "LÊ KIM GIANG ANH")
    # no personal value in clear in the audit table
    raw = " ".join(r[0] for r in conn.execute("SELECT detail_json FROM audit_log"))
    assert "GIANG" not in raw
    assert audit.verify(conn).ok


@pytest.mark.parametrize(("field", "value", "why"), [
    ("birth_date", "31/02/1991", "not a date in the calendar"),
    ("cccd", "09219151155", "12 digits"),  # 11 digits
    ("cccd", "992191511554", "province code"),
    ("bhxh_number", "92038047", "10 digits"),
    ("full_name", "LÊ K1M GIANG", "only letters"),
    ("gender", "không rõ", "neither Nam nor Nữ"),
    ("cccd", "092191511554 xem lại", "only the value"),
    ("phone", "   ", "empty"),
])
def test_an_invalid_correction_is_refused_and_nothing_changes(conn, config, field, value, why):
    forms = scanned_forms(conn, config, ((1,),), submit=False)
    paper = dossiers.get(conn, forms.dossier_id).papers[0]
    before = _fields(conn, paper.id)
    trail = len(audit.entries(conn))
    with pytest.raises(InvalidCorrection) as refused:
        corrections.correct_field(conn, config, dossier_id=forms.dossier_id,
                                  paper_id=paper.id, field=field, value=value,
                                  officer=OFFICER)
    assert why in refused.value.reason and refused.value.key == "error.invalid_correction"
    # the validator's stable codes, which the screen translates (flag.<code>)
    assert bool(refused.value.flags) == (why not in ("only the value", "empty"))
    # and without flags, the rule it broke (translated as correction.<code>)
    assert refused.value.code == {"only the value": "extra_text", "empty": "empty"}.get(
        why, "not_kind")
    assert _fields(conn, paper.id) == before
    assert len(audit.entries(conn)) == trail


def test_unknown_field_paper_or_foreign_paper_is_refused(conn, config):
    forms = scanned_forms(conn, config, ((1,),), submit=False)
    other = scanned_forms(conn, config, ((2,),), submit=False)
    paper = dossiers.get(conn, forms.dossier_id).papers[0]
    theirs = dossiers.get(conn, other.dossier_id).papers[0]
    with pytest.raises(UnknownField):
        corrections.correct_field(conn, config, dossier_id=forms.dossier_id,
                                  paper_id=paper.id, field="salary", value="1",
                                  officer=OFFICER)
    with pytest.raises(PaperNotFound):  # a paper of another dossier
        corrections.correct_field(conn, config, dossier_id=forms.dossier_id,
                                  paper_id=theirs.id, field="full_name", value="LÊ AN",
                                  officer=OFFICER)


def test_a_correction_shows_in_the_signed_record_and_its_audit(conn, config):
    forms = scanned_forms(conn, config, ((1,), (2,)))  # submitted, not signed yet
    dossier = dossiers.get(conn, forms.dossier_id)
    first = dossier.papers[0]
    ocr_birth = "16/08/1991"
    corrections.correct_field(conn, config, dossier_id=dossier.id, paper_id=first.id,
                              field="birth_date", value="16.8.1991", officer=OFFICER)
    record_id = dossiers.sign_off(conn, config, dossier.id, "Nguyễn Thị Lan")
    signed = dossiers.get(conn, dossier.id)
    pdf, document = result.load(files_of(conn, config), signed.papers[0].pdf_sha256)
    result.validate(document)
    birth = document["fields"]["birth_date"]
    assert birth["value"] == "16/08/1991" and birth["source"] == "officer"
    assert birth["corrected_by"] == OFFICER and birth["corrected_at"]
    assert "ocr_value" in birth and birth["ocr_value"] is None  # OCR had not found it
    body = json.loads(dossiers.record_of(conn, record_id).body_json)
    travelled = body["papers"][0]["fields"]["fields"]["birth_date"]
    assert (travelled["value"], travelled["corrected_by"]) == ("16/08/1991", OFFICER)
    fixes = [e for e in body["audit"] if e["action"] == "correction"]
    assert [(e["actor"], e["detail"]["field"]) for e in fixes] == [(OFFICER, "birth_date")]
    assert audit.verify(conn).ok
    assert ocr_birth  # the form's own date, which the officer typed another way
    # after signing nothing may change
    for attempt in (
        lambda: corrections.correct_field(conn, config, dossier_id=dossier.id,
                                          paper_id=first.id, field="full_name",
                                          value="LÊ AN", officer=OFFICER),
        lambda: corrections.set_paper_type(conn, config, dossier_id=dossier.id,
                                           paper_id=first.id, paper_type="other",
                                           officer=OFFICER),
        lambda: corrections.merge_papers(conn, config, dossier_id=dossier.id,
                                         paper_id=signed.papers[1].id,
                                         into_paper_id=first.id, officer=OFFICER),
    ):
        with pytest.raises(DossierSigned) as refused:
            attempt()
        assert refused.value.key == "error.dossier_signed"
    assert not corrections.review_paper(conn, config, first.id).editable


def test_a_correction_racing_sign_off_is_refused_not_lost(conn, config, monkeypatch):
    """A correction that commits while the PDFs are being built makes sign-off fail
    (what is signed must be what is stored); signing again includes it."""
    forms = scanned_forms(conn, config, ((1,),))
    paper = dossiers.get(conn, forms.dossier_id).papers[0]
    real_issue = result.issue

    def issue_then_correct(*args, **kwargs):
        issued = real_issue(*args, **kwargs)
        corrections.correct_field(conn, config, dossier_id=forms.dossier_id,
                                  paper_id=paper.id, field="phone", value="0912345678",
                                  officer=OFFICER)
        return issued

    monkeypatch.setattr(result, "issue", issue_then_correct)
    with pytest.raises(InvalidState, match="corrected while"):
        dossiers.sign_off(conn, config, forms.dossier_id, "Nguyễn Thị Lan")
    monkeypatch.setattr(result, "issue", real_issue)
    dossiers.sign_off(conn, config, forms.dossier_id, "Nguyễn Thị Lan")
    signed = dossiers.get(conn, forms.dossier_id).papers[0]
    _, document = result.load(files_of(conn, config), signed.pdf_sha256)
    assert document["fields"]["phone"]["value"] == "0912345678"


def test_paper_type_set_from_the_catalogue_fields_rederived_corrections_kept(conn, config):
    forms = scanned_forms(conn, config, ((1,),), submit=False)
    paper = dossiers.get(conn, forms.dossier_id).papers[0]
    with pytest.raises(UnknownPaperType):
        corrections.set_paper_type(conn, config, dossier_id=forms.dossier_id,
                                   paper_id=paper.id, paper_type="to-khai-la",
                                   officer=OFFICER)
    assert _fields(conn, paper.id) == paper.fields
    corrections.correct_field(conn, config, dossier_id=forms.dossier_id, paper_id=paper.id,
                              field="full_name", value="LÊ KIM GIANG", officer=OFFICER)
    title = corrections.set_paper_type(conn, config, dossier_id=forms.dossier_id,
                                       paper_id=paper.id, paper_type="tk1-ts",
                                       officer=OFFICER)
    review = corrections.review_paper(conn, config, paper.id)
    assert review.paper_type == "tk1-ts" and review.paper_type_known
    assert dossiers.get(conn, forms.dossier_id).papers[0].title == title
    by_name = {f.name: f for f in review.fields}
    # derived again from the stored OCR lines of the page: the form's own values
    assert by_name["cccd"].value == "092191511554" and by_name["cccd"].source == "ocr"
    assert by_name["birth_date"].value == "16/08/1991"
    assert by_name["cccd"].box is not None and by_name["cccd"].page == 0
    assert by_name["cccd"].page_id == paper.pages[0].id
    x0, y0, x1, y1 = by_name["cccd"].box
    assert 0 <= x0 < x1 <= paper.pages[0].width and 0 <= y0 < y1 <= paper.pages[0].height
    # the officer's correction still applies to the new type and is kept
    assert (by_name["full_name"].source, by_name["full_name"].corrected_by) == (
        "officer", OFFICER)
    # a type without that field drops it, the CCCD the new type has is read again
    corrections.set_paper_type(conn, config, dossier_id=forms.dossier_id, paper_id=paper.id,
                               paper_type="cccd-back", officer=OFFICER)
    names = {f.name for f in corrections.review_fields(conn, config, paper.id)}
    assert names == {"identifying_marks", "issue_date"}
    ops = [e.detail["op"] for e in _corrections(conn, forms.dossier_id)]
    assert ops == ["correct_field", "set_paper_type", "set_paper_type"]


def test_review_lists_every_field_of_the_type_with_status(conn, config):
    forms = scanned_forms(conn, config, ((1,),), submit=False)
    paper = dossiers.get(conn, forms.dossier_id).papers[0]
    fields = corrections.review_fields(conn, config, paper.id)
    by_name = {f.name: f for f in fields}
    # the helper stored two fields; every other field of TK1-TS is listed too
    assert by_name["full_name"].status == "valid" and by_name["full_name"].source == "ocr"
    assert by_name["bhxh_number"].source == "officer"
    assert by_name["bhxh_number"].ocr_value.endswith("O")
    assert by_name["cccd"].status in ("missing", "empty") and by_name["cccd"].value is None
    with pytest.raises(dataclasses.FrozenInstanceError):  # the screen cannot change it
        by_name["cccd"].value = "x"  # type: ignore[misc]


def _layout(conn, dossier_id: int) -> list[list[int]]:
    return [[pg.id for pg in p.pages] for p in dossiers.get(conn, dossier_id).papers]


def test_split_merge_move_and_delete_keep_pages_and_order(conn, config):
    forms = scanned_forms(conn, config, ((1, 2, 3), (4,)), submit=False)
    d = forms.dossier_id
    (a, b, c), (e,) = _layout(conn, d)
    first, last = (p.id for p in dossiers.get(conn, d).papers)
    new = corrections.split_paper(conn, config, dossier_id=d, paper_id=first, at_page_id=b,
                                  officer=OFFICER)
    assert _layout(conn, d) == [[a], [b, c], [e]]
    dossier = dossiers.get(conn, d)
    assert [p.ordinal for p in dossier.papers] == [1, 2, 3]
    assert dossier.papers[1].id == new and dossier.papers[1].pdf_sha256
    assert all([pg.ordinal for pg in p.pages] == list(range(1, len(p.pages) + 1))
               for p in dossier.papers)
    # the split-off page is a TK1-TS form of its own: its fields come from its OCR
    assert dossier.papers[1].fields["values"]["cccd"]
    corrections.merge_papers(conn, config, dossier_id=d, paper_id=new, into_paper_id=first,
                             officer=OFFICER)
    assert _layout(conn, d) == [[a, b, c], [e]]
    corrections.move_page(conn, config, dossier_id=d, page_id=e, to_paper_id=first,
                          position=2, officer=OFFICER)
    assert _layout(conn, d) == [[a, e, b, c]]  # the emptied paper went
    with pytest.raises(ReasonRequired):
        corrections.delete_page(conn, config, dossier_id=d, page_id=e, officer=OFFICER,
                                reason="  ")
    assert corrections.delete_page(conn, config, dossier_id=d, page_id=e, officer=OFFICER,
                                   reason="trang trắng quét nhầm") == first
    assert _layout(conn, d) == [[a, b, c]]
    assert [pg.ordinal for pg in dossiers.get(conn, d).papers[0].pages] == [1, 2, 3]
    lines = _corrections(conn, d)
    assert [e_.detail["op"] for e_ in lines] == [
        "split_paper", "merge_papers", "move_page", "delete_page"]
    assert all(e_.actor == OFFICER and e_.at > 0 for e_ in lines)
    assert corrections.entry_reason(conn, lines[-1]) == "trang trắng quét nhầm"
    raw = " ".join(r[0] for r in conn.execute("SELECT detail_json FROM audit_log"))
    assert "quét nhầm" not in raw  # sealed, as the other reasons an officer types
    assert audit.verify(conn).ok
    # a dossier rearranged this way still signs off, with every page in order
    dossiers.submit(conn, d)
    dossiers.sign_off(conn, config, d, "Nguyễn Thị Lan")
    signed = dossiers.get(conn, d).papers[0]
    _, document = result.load(files_of(conn, config), signed.pdf_sha256)
    assert document["page_count"] == 3
    # the hashes the scan stored (not read back from the same rows the document used)
    assert [p["sha256"] for p in document["pages"]] == forms.page_shas[0]
    assert [p["ordinal"] for p in document["pages"]] == [1, 2, 3]
    assert [p.id for p in dossiers.get(conn, d).papers] == [first]  # `last` went with e
    assert last != first


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_a_box_read_on_a_turned_page_is_shown_on_the_stored_image(rotation):
    """OCR reads a page turned `rotation` degrees counter-clockwise; the screen shows
    the stored image, so the box is turned back (a dot found in both places)."""
    from PIL import Image, ImageDraw

    stored = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(stored).rectangle((40, 150, 49, 159), fill=0)  # the dot
    turned = stored.rotate(rotation, expand=True)
    left, top, right, bottom = Image.eval(turned, lambda p: 255 - p).getbbox()
    box = corrections._stored_box([left, top, right, bottom], stored.size, rotation)
    assert box is not None
    x0, y0, x1, y1 = box
    assert abs(x0 - 40) <= 1 and abs(y0 - 150) <= 1 and abs(x1 - 50) <= 1 and abs(y1 - 160) <= 1


def test_qr_codes_follow_their_page_through_split_and_merge(conn, config):
    """A CCCD photocopy fed behind a form: its QR code (read by the worker's own
    extraction step) goes with its page into the split-off paper, checks that
    paper's fields once it is typed as a card, and comes back on merge."""
    from appliance.ocr.engine import PageText, TextLine
    from appliance.records import pages as page_store
    from appliance.worker.pipeline import extract_fields
    from tests.extraction.test_qr import GOOD, card_lines, card_page, segno_qr

    forms = scanned_forms(conn, config, ((1, 2),), submit=False)
    d = forms.dossier_id
    files = files_of(conn, config)
    paper = dossiers.get(conn, d).papers[0]
    card = page_store.store_page(conn, files, d, paper.id, card_page(segno_qr(GOOD)),
                                 paper.title, dpi=300)
    page_store.set_page_text(conn, card.page_id, PageText(0.1, tuple(
        TextLine(t, (300, 30 + 44 * n, 1000, 60 + 44 * n), 0.99, ())
        for n, t in enumerate(card_lines({"cccd": "001190012345",
                                          "full_name": "NGUYỄN THỊ MAI",
                                          "birth_date": "13/08/1990", "gender": "Nữ"})))))
    rows = page_store.paper_pages(conn, paper.id)
    fields = extract_fields([r.text for r in rows if r.text is not None],
                            [page_store.load_image(files, r.sha256) for r in rows])
    page_store.store_paper_pdf(conn, files, paper.id, b"%PDF-1.7\n", fields)
    assert [(c["kind"], c["page"]) for c in _fields(conn, paper.id)["qr"]] == [("cccd", 2)]

    new = corrections.split_paper(conn, config, dossier_id=d, paper_id=paper.id,
                                  at_page_id=card.page_id, officer=OFFICER)
    assert _fields(conn, paper.id)["qr"] == []
    assert [(c["kind"], c["page"]) for c in _fields(conn, new)["qr"]] == [("cccd", 0)]
    corrections.set_paper_type(conn, config, dossier_id=d, paper_id=new,
                               paper_type="cccd-front", officer=OFFICER)
    by_name = {f.name: f for f in corrections.review_fields(conn, config, new)}
    assert "qr.agrees" in by_name["cccd"].flags and by_name["cccd"].value == "001190012345"
    assert by_name["full_name"].value == "NGUYỄN THỊ MAI"
    corrections.merge_papers(conn, config, dossier_id=d, paper_id=new, into_paper_id=paper.id,
                             officer=OFFICER)
    assert [(c["kind"], c["page"]) for c in _fields(conn, paper.id)["qr"]] == [("cccd", 2)]


def test_nothing_changes_while_a_scan_of_the_dossier_is_queued(conn, config):
    """The worker may be writing the same papers: the officer waits for the scan."""
    from appliance.records.errors import ScanInProgress
    from appliance.store import jobs

    forms = scanned_forms(conn, config, ((1, 2),), submit=False)
    paper = dossiers.get(conn, forms.dossier_id).papers[0]
    job = jobs.enqueue(conn, "scan", forms.dossier_id, {"source": "adf", "title": "x"})
    before = _fields(conn, paper.id)
    with pytest.raises(ScanInProgress):
        corrections.correct_field(conn, config, dossier_id=forms.dossier_id,
                                  paper_id=paper.id, field="full_name", value="LÊ KIM GIANG",
                                  officer=OFFICER)
    with pytest.raises(ScanInProgress):
        corrections.split_paper(conn, config, dossier_id=forms.dossier_id, paper_id=paper.id,
                                at_page_id=paper.pages[1].id, officer=OFFICER)
    assert _fields(conn, paper.id) == before and _layout(conn, forms.dossier_id) == [
        [pg.id for pg in paper.pages]]
    jobs.finish(conn, job)
    corrections.correct_field(conn, config, dossier_id=forms.dossier_id, paper_id=paper.id,
                              field="full_name", value="LÊ KIM GIANG", officer=OFFICER)


def test_a_number_contradicting_the_birth_date_or_sex_is_flagged_or_refused(conn, config):
    """The CCCD number encodes century, year of birth and sex: an officer's number that
    contradicts the OCR's sex marks the OCR value for a look; two officer values that
    contradict each other are refused (nobody may sign that), nothing changed."""
    forms = scanned_forms(conn, config, ((1,),), submit=False)
    d = forms.dossier_id
    paper = dossiers.get(conn, d).papers[0]
    corrections.set_paper_type(conn, config, dossier_id=d, paper_id=paper.id,
                               paper_type="tk1-ts", officer=OFFICER)  # OCR: Nữ, 1991
    corrections.correct_field(conn, config, dossier_id=d, paper_id=paper.id, field="cccd",
                              value="092091511554", officer=OFFICER)  # a man's number
    gender = _fields(conn, paper.id)["fields"]["gender"]
    assert gender["status"] == "uncertain" and "cccd.sex" in gender["flags"]
    assert "a man's" in gender["reason"]
    corrections.correct_field(conn, config, dossier_id=d, paper_id=paper.id, field="gender",
                              value="Nam", officer=OFFICER)
    before = _fields(conn, paper.id)
    with pytest.raises(InvalidCorrection) as refused:
        corrections.correct_field(conn, config, dossier_id=d, paper_id=paper.id,
                                  field="birth_date", value="16/08/1992", officer=OFFICER)
    assert "says born in 1991" in refused.value.reason
    assert refused.value.flags == ("cccd.birth_year",)
    assert _fields(conn, paper.id)["fields"]["birth_date"] == before["fields"]["birth_date"]


def test_a_merge_carries_the_officer_corrections_of_the_paper_that_goes(conn, config):
    """One form scanned as two papers: what the officer corrected on the paper merged
    away is kept on the merged paper where its type has the field and the value holds;
    what cannot be kept is named in the merge's audit line, its value sealed."""
    from appliance.store.db import aad, open_text

    forms = scanned_forms(conn, config, ((1,), (2,)), submit=False)
    d = forms.dossier_id
    kept, gone = dossiers.get(conn, d).papers
    kept_bhxh = kept.fields["fields"]["bhxh_number"]["value"]  # officer-corrected on both
    gone_bhxh = gone.fields["fields"]["bhxh_number"]["value"]
    assert kept_bhxh != gone_bhxh
    # the kept paper is a sick-leave certificate: it has a name, no phone number
    corrections.set_paper_type(conn, config, dossier_id=d, paper_id=kept.id,
                               paper_type="sick-leave-c65", officer=OFFICER)
    name = corrections.correct_field(conn, config, dossier_id=d, paper_id=gone.id,
                                     field="full_name", value="LÊ KIM GIANG", officer=OFFICER)
    corrections.correct_field(conn, config, dossier_id=d, paper_id=gone.id, field="phone",
                              value="0912345678", officer="Phạm Thu Hà")
    gone_page = _fields(conn, gone.id)["fields"]["full_name"].get("page")

    corrections.merge_papers(conn, config, dossier_id=d, paper_id=gone.id,
                             into_paper_id=kept.id, officer=OFFICER)
    fields = _fields(conn, kept.id)
    assert fields["paper_type"] == "sick-leave-c65"
    carried = fields["fields"]["full_name"]
    assert (carried["value"], carried["source"], carried["corrected_by"]) == (
        "LÊ KIM GIANG", "officer", OFFICER)
    assert carried["ocr_value"] == name.ocr_value  # the OCR's reading still beside it
    if isinstance(gone_page, int):
        assert carried["page"] == gone_page + 1  # its page follows the kept paper's one
    assert fields["values"]["full_name"] == "LÊ KIM GIANG"
    assert fields["fields"]["bhxh_number"]["value"] == kept_bhxh  # the kept paper's own
    assert "phone" not in fields["fields"]

    line = _corrections(conn, d)[-1]
    assert line.detail["op"] == "merge_papers"
    assert line.detail["corrections_carried"] == ["full_name"]
    dropped = {x["field"]: x for x in line.detail["corrections_dropped"]}
    assert {k: x["why"] for k, x in dropped.items()} == {
        "bhxh_number": corrections.DROPPED_KEPT_PAPER_CORRECTED,
        "phone": corrections.DROPPED_NOT_IN_TYPE}
    assert dropped["phone"]["corrected_by"] == "Phạm Thu Hà"
    for field, value in (("phone", "0912345678"), ("bhxh_number", gone_bhxh)):
        x = dropped[field]
        assert open_text(conn, x["value"], aad("audit_log", "value", x["sealed_as"])) == value
    raw = " ".join(r[0] for r in conn.execute("SELECT detail_json FROM audit_log"))
    assert "0912345678" not in raw and gone_bhxh not in raw  # sealed, not in clear
    assert audit.verify(conn).ok

    # the carried correction is what gets signed
    dossiers.submit(conn, d)
    dossiers.sign_off(conn, config, d, "Nguyễn Thị Lan")
    [signed] = dossiers.get(conn, d).papers
    _, document = result.load(files_of(conn, config), signed.pdf_sha256)
    assert document["fields"]["full_name"]["value"] == "LÊ KIM GIANG"
    assert document["fields"]["full_name"]["corrected_by"] == OFFICER


def test_a_merge_drops_a_correction_that_contradicts_the_kept_paper(conn, config):
    """Both checked by officers, on different papers: a CCCD number saying born in
    1990 cannot join a date of birth in 1985. The kept paper's value stays, the other
    is named as dropped; nobody could sign the two together."""
    forms = scanned_forms(conn, config, ((1,), (2,)), submit=False)
    d = forms.dossier_id
    kept, gone = dossiers.get(conn, d).papers
    corrections.correct_field(conn, config, dossier_id=d, paper_id=kept.id,
                              field="birth_date", value="13/08/1985", officer=OFFICER)
    corrections.correct_field(conn, config, dossier_id=d, paper_id=gone.id, field="cccd",
                              value="001190012345", officer=OFFICER)
    corrections.merge_papers(conn, config, dossier_id=d, paper_id=gone.id,
                             into_paper_id=kept.id, officer=OFFICER)
    fields = _fields(conn, kept.id)["fields"]
    assert fields["birth_date"]["value"] == "13/08/1985"
    assert fields.get("cccd", {}).get("value") != "001190012345"
    line = _corrections(conn, d)[-1]
    assert {x["field"]: x["why"] for x in line.detail["corrections_dropped"]} == {
        "cccd": corrections.DROPPED_CONTRADICTS,
        "bhxh_number": corrections.DROPPED_KEPT_PAPER_CORRECTED}
    assert "cccd" not in line.detail["corrections_carried"]


def test_return_to_citizen_is_one_transaction(conn, config):
    """The dossier's cancellation and the audit line with its reason commit together:
    an audit insert that fails (here a real SQLite abort, as a full disk or a crash
    would) leaves the dossier submitted, never cancelled without the reason."""
    forms = scanned_forms(conn, config, ((1,),))
    conn.execute("CREATE TEMP TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                 "BEGIN SELECT RAISE(ABORT, 'audit write failed'); END")
    trail = len(audit.entries(conn, forms.dossier_id))
    with pytest.raises(Exception, match="audit write failed"):
        corrections.return_to_citizen(conn, dossier_id=forms.dossier_id, officer=OFFICER,
                                      reason="thiếu trang 2")
    assert dossiers.get(conn, forms.dossier_id).status == "submitted"
    assert len(audit.entries(conn, forms.dossier_id)) == trail
    conn.execute("DROP TRIGGER refuse_audit")
    corrections.return_to_citizen(conn, dossier_id=forms.dossier_id, officer=OFFICER,
                                  reason="  thiếu trang 2 ")
    assert dossiers.get(conn, forms.dossier_id).status == "cancelled"
    assert corrections.returned_reason(conn, forms.dossier_id) == "thiếu trang 2"
    raw = " ".join(r[0] for r in conn.execute("SELECT detail_json FROM audit_log"))
    assert "thiếu" not in raw  # sealed, as every free text an officer types
    with pytest.raises(InvalidState):  # already cancelled: no second line
        corrections.return_to_citizen(conn, dossier_id=forms.dossier_id, officer=OFFICER,
                                      reason="again")
    assert [e.detail["op"] for e in _corrections(conn, forms.dossier_id)] == [
        corrections.RETURN_OP]
    assert audit.verify(conn).ok


def test_return_to_citizen_needs_a_reason_and_a_submitted_dossier(conn, config):
    forms = scanned_forms(conn, config, ((1,),), submit=False)
    with pytest.raises(ReasonRequired):
        corrections.return_to_citizen(conn, dossier_id=forms.dossier_id, officer=OFFICER,
                                      reason="  ")
    with pytest.raises(InvalidState):  # still open: the citizen cancels it at the kiosk
        corrections.return_to_citizen(conn, dossier_id=forms.dossier_id, officer=OFFICER,
                                      reason="thiếu trang")
    assert dossiers.get(conn, forms.dossier_id).status == "open"
    assert _corrections(conn, forms.dossier_id) == []
