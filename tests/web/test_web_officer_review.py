"""The officer's review screen in Debian's Chromium, against the real app (gunicorn).

A dossier is made the way the worker makes it, through the product's functions: a
page image with a form's lines drawn on it, that page's OCR (lines with their boxes)
stored, the fields extracted from them by appliance.extraction as the worker's step 4
does, the PDF built. The officer signs in on the PIN pad, taps a field and its box is
outlined on the page (its position checked against the stored box scaled to the shown
image, zoomed and turned), corrects a name with stacked tone marks on the in-page
keyboard, is refused an invalid CCCD and an impossible date with the reason in
Vietnamese (nothing stored), and signs off; the signed record carries the corrected
value beside the OCR's and the correction's audit line. A paper id of another dossier
in a correction is refused. The review screen is saved at 800x480 and 1920x1080,
checked with axe-core and for 48 px targets.
"""

from __future__ import annotations

import json
import re
import unicodedata

import pytest

from appliance.records import audit, corrections, dossiers
from appliance.store.db import connect
from tests.web.helpers import public_id, submitted_dossier
from tests.web.review_pages import NAME, OCR_NAME, review_dossier
from tests.web.test_web_browser import CHROMIUM, start_server, stop_server
from tests.web.test_web_faces import (
    LARGE,
    SMALL,
    assert_accessible,
    assert_touch_targets,
    check_screen,
    new_page,
    shot,
    wait_images,
)
from tests.web.test_web_keyboard import PIN, sign_in, type_on

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
    pytest.mark.timeout(180),
]
sync_api = pytest.importorskip("playwright.sync_api")

def expect(locator):
    return sync_api.expect(locator)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("review"), idle_seconds=120, officer_pin=PIN)
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture
def db(server):
    conn = connect(server.config.paths.database)
    yield conn
    conn.close()


def field(db, config, paper_id: int, name: str) -> corrections.ReviewField:
    return next(f for f in corrections.review_fields(db, config, paper_id) if f.name == name)


def assert_box_on_image(page, paper_id: int, name: str, box, size) -> None:
    """The outline of field `name` is the stored box scaled to the image as shown,
    turned with it by the viewer's rotation (about the image's centre)."""
    root = f"#paper-{paper_id}"
    img = page.locator(f"{root} .viewer-img").bounding_box()
    shown = page.locator(f"{root} .field-box.is-selected[data-field='{name}']").bounding_box()
    assert img is not None and shown is not None
    turn = int(page.locator(f"{root} [data-viewer]").get_attribute("data-rotation") or 0)
    w, h = size
    x0, y0, x1, y1 = box
    # turned a quarter, the shown image is the page on its side
    scale = img["width"] / w if turn in (0, 180) else img["height"] / w
    cx, cy = img["x"] + img["width"] / 2, img["y"] + img["height"] / 2
    dx, dy = ((x0 + x1) / 2 - w / 2) * scale, ((y0 + y1) / 2 - h / 2) * scale
    bw, bh = (x1 - x0) * scale, (y1 - y0) * scale
    if turn == 90:  # CSS rotate(90deg): clockwise
        dx, dy, bw, bh = -dy, dx, bh, bw
    elif turn == 180:
        dx, dy = -dx, -dy
    elif turn == 270:
        dx, dy, bw, bh = dy, -dx, bh, bw
    want = {"x": cx + dx - bw / 2, "y": cy + dy - bh / 2, "width": bw, "height": bh}
    for key in want:
        assert abs(shown[key] - want[key]) <= 2.0, (key, shown, want, turn)


def assert_every_control_48px(page) -> None:
    """Stricter than the faces' check: every visible control of the page, selects,
    summaries and every input included (a checkbox counts by its label)."""
    small = page.evaluate(
        """() => Array.from(document.querySelectorAll(
              'button, a[href], select, summary, input:not([type=hidden]):not([type=checkbox])'))
             .filter(e => e.offsetParent !== null && !e.closest('[hidden]'))
             .map(e => [e.id || e.className || e.tagName, e.getBoundingClientRect()])
             .filter(([, r]) => r.width > 0 && (r.width < 47.5 || r.height < 47.5))
             .map(([n, r]) => n + ' ' + Math.round(r.width) + 'x' + Math.round(r.height))""")
    assert small == [], small


def open_correction(page, paper_id: int, name: str):
    row = page.locator(f"#f-{paper_id}-{name}")
    row.locator("summary").click()
    field_input = row.locator("input[name=value]")
    field_input.click()
    expect(page.locator("#osk")).to_be_visible()
    shown, keys = field_input.bounding_box(), page.locator("#osk").bounding_box()
    assert shown is not None and keys is not None
    assert shown["y"] >= 0 and shown["y"] + shown["height"] <= keys["y"] + 0.5, (shown, keys)
    field_input.select_text()  # the keyboard's first key replaces the OCR's reading
    return row, field_input


@pytest.mark.parametrize("viewport", [pytest.param(SMALL, id="800x480"),
                                      pytest.param(LARGE, id="1920x1080")])
def test_review_correct_refuse_and_sign(server, browser, db, tmp_path, viewport):
    config = server.config
    dossier_id, paper_id = review_dossier(db, config)
    pid = public_id(db, dossier_id)
    size = f"{viewport['width']}x{viewport['height']}"
    name_field = field(db, config, paper_id, "full_name")
    assert name_field.status == "uncertain" and name_field.box is not None
    assert field(db, config, paper_id, "cccd").status == "problem"
    page_size = (1240, 1754)
    context, page = new_page(browser, viewport)
    try:
        sign_in(page, server.url)
        page.goto(f"{server.url}/officer/dossiers/{pid}")
        wait_images(page)
        root = page.locator(f"#paper-{paper_id}")
        # uncertain amber, invalid red with the reason in Vietnamese, OCR reading shown
        expect(root.locator(f"#f-{paper_id}-full_name")).to_have_class(re.compile("mark-warn"))
        cccd = root.locator(f"#f-{paper_id}-cccd")
        expect(cccd).to_have_class(re.compile("mark-err"))
        expect(cccd.locator(".rf-reason")).to_have_text("Số CCCD phải có đúng 12 chữ số.")
        expect(cccd.locator("[data-ocr]")).to_have_text("00120300456")
        # tap a field: its box is outlined on the page, where the stored box says
        root.locator("[data-pick='full_name']").click()
        expect(root.locator(".field-box.is-selected")).to_have_count(1)
        assert_box_on_image(page, paper_id, "full_name", name_field.box, page_size)
        check_screen(page, f"officer-review-{size}-vi", tmp_path, "[data-pick='full_name']")
        assert_every_control_48px(page)
        # zoomed and turned, the outline follows the page
        viewer = root.locator("[data-viewer]")
        viewer.locator("[data-action=zoom-in]").click()
        assert_box_on_image(page, paper_id, "full_name", name_field.box, page_size)
        viewer.locator("[data-action=rotate]").click()
        expect(viewer).to_have_attribute("data-rotation", "90")
        assert_box_on_image(page, paper_id, "full_name", name_field.box, page_size)
        shot(page, f"officer-review-turned-{size}-vi", tmp_path)
        viewer.locator("[data-action=fit]").click()
        root.locator("[data-pick='cccd']").click()
        assert_box_on_image(page, paper_id, "cccd", field(db, config, paper_id, "cccd").box,
                            page_size)

        # an invalid CCCD (11 digits) on the keyboard: refused with the reason, nothing kept
        entries_before = len(audit.entries(db, dossier_id))
        row, value = open_correction(page, paper_id, "cccd")
        type_on(page, "00120300456")
        row.locator("button[type=submit]").click()
        refusal = page.locator(f"#f-{paper_id}-cccd .rf-refusal")
        expect(refusal).to_contain_text("Số CCCD phải có đúng 12 chữ số.")
        expect(page.locator(f"#f-{paper_id}-cccd input[name=value]")).to_have_value(
            "00120300456")
        shot(page, f"officer-review-refused-{size}-vi", tmp_path)
        assert_every_control_48px(page)  # the open form and the keyboard too
        assert_accessible(page)
        after = field(db, config, paper_id, "cccd")
        assert after.status == "problem" and after.value is None and after.source == "ocr"
        # an impossible date: refused the same way
        row, value = open_correction(page, paper_id, "birth_date")
        type_on(page, "31/02/1990")
        row.locator("button[type=submit]").click()
        expect(page.locator(f"#f-{paper_id}-birth_date .rf-refusal")).to_contain_text(
            "Ngày này không có trên lịch")
        assert field(db, config, paper_id, "birth_date").value == "12/03/1985"
        assert [e for e in audit.entries(db, dossier_id)[entries_before:]
                if e.action == "correction"] == []

        # the name with stacked marks, typed on the in-page keyboard: stored NFC
        row, value = open_correction(page, paper_id, "full_name")
        type_on(page, "nguyễn thị hội")  # the field types capitals, as the paper prints
        assert value.input_value() == NAME
        row.locator("button[type=submit]").click()
        fixed = page.locator(f"#f-{paper_id}-full_name")
        expect(fixed.locator("[data-value]")).to_have_text(NAME)
        expect(fixed.locator("[data-ocr]")).to_have_text(OCR_NAME)  # the OCR's beside it
        expect(fixed).to_have_class(re.compile("is-selected"))  # picked again on return
        stored = field(db, config, paper_id, "full_name")
        assert stored.value == NAME and unicodedata.is_normalized("NFC", stored.value)
        assert stored.ocr_value == OCR_NAME and stored.source == "officer"
        assert stored.box == name_field.box  # still drawn where OCR found it

        # sign-off: the "checked" tick, the name on the keyboard, then the confirmation
        page.locator("#checked").check()
        page.locator("#officer").click()
        type_on(page, "trần văn bình")
        assert page.locator("#officer").input_value() == unicodedata.normalize(
            "NFC", "Trần Văn Bình")
        page.locator("#osk [data-key='done']").click()
        page.locator("#sign-button").click()
        expect(page.locator("#sign-confirm")).to_be_visible()
        assert dossiers.get(db, dossier_id).status == "submitted"
        page.locator("#sign-yes").click()
        expect(page.locator("#signed-result")).to_be_visible()
        expect(page.locator(f"#f-{paper_id}-full_name summary")).to_have_count(0)  # frozen
        d = dossiers.get(db, dossier_id)
        assert d.status == "signed" and d.signed_by == unicodedata.normalize(
            "NFC", "Trần Văn Bình")
        body = json.loads(dossiers.record_of(db, d.record_id).body_json)
        signed = body["papers"][0]["fields"]["fields"]["full_name"]
        assert signed["value"] == NAME and signed["ocr_value"] == OCR_NAME
        assert signed["source"] == "officer"
        ops = [e["detail"].get("op") for e in body["audit"] if e["action"] == "correction"]
        assert ops == ["correct_field"], ops
    finally:
        context.close()


def test_forged_paper_of_another_dossier_is_refused(server, browser, db, tmp_path):
    """A correction form pointed at another dossier's paper changes nothing anywhere."""
    config = server.config
    mine, my_paper = review_dossier(db, config)
    other, other_paper = review_dossier(db, config)
    context, page = new_page(browser, SMALL)
    try:
        sign_in(page, server.url)
        page.goto(f"{server.url}/officer/dossiers/{public_id(db, mine)}")
        form = page.locator(f"#f-{my_paper}-full_name form")
        action = form.get_attribute("action")
        assert action is not None and f"/papers/{my_paper}/" in action
        form.evaluate("(f, a) => f.setAttribute('action', a)",
                      action.replace(f"/papers/{my_paper}/", f"/papers/{other_paper}/"))
        page.locator(f"#f-{my_paper}-full_name summary").click()
        page.locator(f"#f-{my_paper}-full_name input[name=value]").fill("TRẦN THỊ LAN")
        form.locator("button[type=submit]").click()
        expect(page.locator(".notice-error")).to_contain_text("Không tìm thấy giấy tờ này")
        assert page.url.split("#")[0].endswith(f"/officer/dossiers/{public_id(db, mine)}")
        for paper in (my_paper, other_paper):
            assert field(db, config, paper, "full_name").value == OCR_NAME
        # the other dossier's public id with my paper: refused too
        page.goto(f"{server.url}/officer/dossiers/{public_id(db, mine)}")
        form = page.locator(f"#f-{my_paper}-full_name form")
        form.evaluate("(f, a) => f.setAttribute('action', a)", action.replace(
            public_id(db, mine), public_id(db, other)))
        page.locator(f"#f-{my_paper}-full_name summary").click()
        page.locator(f"#f-{my_paper}-full_name input[name=value]").fill("TRẦN THỊ LAN")
        form.locator("button[type=submit]").click()
        expect(page.locator(".notice-error")).to_contain_text("Không tìm thấy giấy tờ này")
        for paper in (my_paper, other_paper):
            assert field(db, config, paper, "full_name").value == OCR_NAME
        assert [e for e in audit.entries(db) if e.action == "correction"
                and e.dossier_id in (mine, other)] == []
    finally:
        context.close()


def test_return_to_citizen_with_a_reason(server, browser, db, tmp_path):
    """Returned with a reason typed on the keyboard, after a confirmation: the dossier
    leaves the waiting list cancelled and its screen says why."""
    dossier_id, _ = review_dossier(db, server.config)
    code = dossiers.get(db, dossier_id).code
    context, page = new_page(browser, SMALL)
    try:
        sign_in(page, server.url)
        page.goto(f"{server.url}/officer/dossiers/{public_id(db, dossier_id)}")
        page.locator("#return summary").click()
        page.locator("#return-reason").click()
        type_on(page, "thiếu tờ khai")
        page.locator("#osk [data-key='done']").click()
        page.locator("#return-button").click()
        expect(page.locator("#return-confirm")).to_be_visible()
        assert_touch_targets(page)
        assert_accessible(page)
        assert dossiers.get(db, dossier_id).status == "submitted"
        page.locator("#return-yes").click()
        page.wait_for_url(re.compile(r"/officer$"))
        expect(page.locator(".notice-info")).to_contain_text("Đã trả lại hồ sơ")
        assert code not in page.locator("#waiting").inner_text() if page.locator(
            "#waiting").count() else True
        assert dossiers.get(db, dossier_id).status == "cancelled"
        page.goto(f"{server.url}/officer/dossiers/{public_id(db, dossier_id)}")
        expect(page.locator("#returned-reason")).to_have_text(
            unicodedata.normalize("NFC", "thiếu tờ khai"))
        # the reason is in the audit trail, sealed (no clear text in the table)
        raw = db.execute("SELECT detail_json FROM audit_log WHERE dossier_id=? "
                         "AND action='correction'", (dossier_id,)).fetchone()
        assert raw is not None and "thiếu" not in raw[0]
    finally:
        context.close()


def test_page_edits_act_on_the_page_in_view(server, browser, db, tmp_path):
    """The viewer's page edits follow the page tab: a paper splits before the page in
    view (never before its first page)."""
    dossier_id = submitted_dossier(db, server.config, pages=2)
    [paper] = dossiers.get(db, dossier_id).papers
    context, page = new_page(browser, SMALL)
    try:
        sign_in(page, server.url)
        page.goto(f"{server.url}/officer/dossiers/{public_id(db, dossier_id)}")
        edit = page.locator(f"#page-edit-{paper.id}")
        edit.locator("summary").click()
        split = edit.locator("[data-split]")
        expect(split).to_be_disabled()
        page.locator(f"#paper-{paper.id} .page-tab").nth(1).click()
        expect(split).to_be_enabled()
        expect(edit.locator("[data-current-label]")).to_have_text("2")
        assert edit.locator(f"#split-{paper.id} [data-current-page]").input_value() == str(
            paper.pages[1].id)
        check_screen(page, "officer-page-edit-800x480-vi", tmp_path)
        split.click()
        expect(page.locator(".notice-info")).to_contain_text("Đã tách")
        papers = dossiers.get(db, dossier_id).papers
        assert [[pg.id for pg in p.pages] for p in papers] == [[paper.pages[0].id],
                                                               [paper.pages[1].id]]
    finally:
        context.close()


def test_a_field_on_another_page_brings_its_page(server, browser, db, tmp_path):
    """Tapping a field read on page 2 shows page 2 (its own size) with the box on it."""
    dossier_id, paper_id = review_dossier(db, server.config, two_pages=True)
    cccd = field(db, server.config, paper_id, "cccd")
    assert cccd.page == 1 and cccd.box is not None
    [paper] = dossiers.get(db, dossier_id).papers
    context, page = new_page(browser, SMALL)
    try:
        sign_in(page, server.url)
        page.goto(f"{server.url}/officer/dossiers/{public_id(db, dossier_id)}")
        wait_images(page)
        root = page.locator(f"#paper-{paper_id}")
        root.locator("[data-pick='full_name']").click()
        expect(root.locator(".page-tab").nth(0)).to_have_attribute("aria-pressed", "true")
        root.locator("[data-pick='cccd']").click()
        expect(root.locator(".page-tab").nth(1)).to_have_attribute("aria-pressed", "true")
        expect(root.locator(".viewer-img")).to_have_attribute(
            "src", re.compile(paper.pages[1].sha256))
        wait_images(page)
        assert_box_on_image(page, paper_id, "cccd", cccd.box, (1000, 1400))
        expect(root.locator(".field-box.on-page")).to_have_count(1)  # page 1's are hidden
    finally:
        context.close()
