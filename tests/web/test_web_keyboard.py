"""The one in-page keyboard (static/keyboard.js) in Debian's Chromium, on the real app.

The PIN pad, the kiosk's code pad and the officer's Vietnamese text keyboard are the
same script: each is driven here by taps only (no `fill`), and what lands in the input
is compared with the NFC text a person meant, so a tone put on the wrong vowel, a
decomposed character or a key under 48 px fails.
"""

from __future__ import annotations

import re
import unicodedata

import pytest

from tests.web.test_web_browser import CHROMIUM, start_server, stop_server
from tests.web.test_web_faces import (
    SMALL,
    assert_accessible,
    assert_touch_targets,
    new_page,
    shot,
)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
    pytest.mark.timeout(120),
]
sync_api = pytest.importorskip("playwright.sync_api")

PIN = "2468"
TONE_KEYS = {"\u0301": "acute", "\u0300": "grave", "\u0309": "hook", "\u0303": "tilde",
             "\u0323": "dot"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("keyboard"), idle_seconds=120, officer_pin=PIN)
    try:
        yield s
    finally:
        stop_server(s)


def sign_in(page, url: str) -> None:
    """To the officer desk through the PIN pad (taps, as at the counter)."""
    page.goto(f"{url}/officer")
    page.wait_for_url(re.compile(r"/staff/login"))
    for key in PIN:
        page.locator(f"#keypad [data-key='{key}']").click()
    page.locator("#pin-submit").click()
    page.wait_for_url(re.compile(r"/officer$"))


def keystrokes(text: str) -> list[tuple[str, str]]:
    """The taps that type `text` on the keyboard: the base letter (ă â đ ê ô ơ ư keys
    included), then the tone key once the syllable's letters are in; (kind, key)."""
    taps: list[tuple[str, str]] = []
    pending: str | None = None
    for ch in text:
        if ch == " ":
            if pending:
                taps.append(("tone", pending))
                pending = None
            taps.append(("key", "space"))
            continue
        parts = unicodedata.normalize("NFD", ch.lower())
        tone = next((TONE_KEYS[c] for c in parts if c in TONE_KEYS), None)
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in TONE_KEYS))
        taps.append(("key", base))
        if tone:
            pending = tone
    if pending:
        taps.append(("tone", pending))
    return taps


def type_on(page, text: str, root: str = "#osk") -> None:
    for kind, key in keystrokes(text):
        attr = "data-tone" if kind == "tone" else "data-key"
        page.locator(f"{root} [{attr}='{key}']").click()


def test_tone_placement(server, browser):
    """The tone goes where Vietnamese puts it, whatever the order it was tapped in."""
    context, page = new_page(browser, SMALL)
    try:
        sign_in(page, server.url)
        cases = [("hoa", "grave", "hòa"), ("thuy", "hook", "thủy"), ("nguoi", "grave", None),
                 ("ngươi", "grave", "người"), ("quy", "acute", "quý"), ("giưa", "tilde", "giữa"),
                 ("toan", "acute", "toán"), ("NGUYÊN", "tilde", "NGUYỄN"), ("HÔI", "dot", "HỘI"),
                 ("gi", "grave", "gì"), ("khuyên", "hook", "khuyển"), ("mua", "grave", "mùa"),
                 ("hòa", "acute", "hóa"), ("hòa", "grave", "hoa"), ("xyz", "acute", "xýz"),
                 ("123", "acute", None), ("", "acute", None)]
        for word, tone, want in cases:
            got = page.evaluate(
                "([w, t]) => { const r = window.applianceKeyboard.applyTone(w, w.length, t);"
                " return r ? r[0] : null; }", [unicodedata.normalize("NFC", word), tone])
            if word == "nguoi":  # no hatted vowel: middle of three
                assert got == "nguòi", got
                continue
            assert got == want, (word, tone, got)
            if got is not None:
                assert unicodedata.is_normalized("NFC", got)
    finally:
        context.close()


def test_text_keyboard_types_a_vietnamese_name(server, browser, tmp_path):
    """Officer search at 800x480: the keyboard opens under the focused field, the field
    stays in view, every key is >= 48 px, and stacked marks come out NFC."""
    context, page = new_page(browser, SMALL)
    try:
        sign_in(page, server.url)
        osk = page.locator("#osk")
        sync_api.expect(osk).to_be_hidden()
        page.locator("#q").click()
        sync_api.expect(osk).to_be_visible()
        assert page.evaluate("() => document.activeElement.id") == "q"
        page.locator("#osk [data-key='back']").click()  # on an empty field: nothing
        type_on(page, "nguyễn thị hội")
        value = page.locator("#q").input_value()
        assert value == unicodedata.normalize("NFC", "NGUYỄN THỊ HỘI"), value  # data-case=upper
        assert unicodedata.is_normalized("NFC", value)
        assert page.evaluate("() => document.activeElement.id") == "q"  # keys keep focus
        q = page.locator("#q").bounding_box()
        top = osk.bounding_box()
        assert q is not None and top is not None and q["y"] + q["height"] <= top["y"] + 0.5
        assert top["y"] >= 150, top  # the keyboard leaves room for the page above it
        assert_touch_targets(page)
        keys = page.evaluate("""() => Array.from(document.querySelectorAll('#osk button'))
            .map(b => b.getBoundingClientRect()).filter(r => r.width < 47.5 || r.height < 47.5)
            .length""")
        assert keys == 0
        assert_accessible(page)
        shot(page, "keyboard-officer-search-800x480-vi", tmp_path)
        # backspace removes one character (the whole "I", not a mark of it)
        page.locator("#osk [data-key='back']").click()
        assert page.locator("#q").input_value() == unicodedata.normalize("NFC", "NGUYỄN THỊ HỘ")
        # shift toggles the case; digits and punctuation type as they are
        page.locator("#osk [data-key='shift']").click()
        sync_api.expect(page.locator("#osk [data-key='shift']")).to_have_attribute(
            "aria-pressed", "false")
        page.locator("#osk [data-key='a']").click()
        page.locator("#osk [data-key='7']").click()
        assert page.locator("#q").input_value().endswith("Ộa7")
        # Done closes it; a tap elsewhere closes it too
        page.locator("#osk [data-key='done']").click()
        sync_api.expect(osk).to_be_hidden()
        page.locator("#q").click()
        sync_api.expect(osk).to_be_visible()
        page.locator("h1").first.click()
        sync_api.expect(osk).to_be_hidden()
    finally:
        context.close()


def test_pin_pad_and_code_pad_are_the_same_script(server, browser, tmp_path):
    """The PIN pad is the digits-only layout of the same keyboard; the kiosk code pad too."""
    context, page = new_page(browser, SMALL)
    try:
        scripts = []
        page.on("request", lambda r: scripts.append(r.url) if r.url.endswith(".js") else None)
        page.goto(f"{server.url}/staff/login?next=/officer")
        assert not any("keypad.js" in s for s in scripts)
        for key in "2468":
            page.locator(f"#keypad [data-key='{key}']").click()
        assert page.locator("#pin").input_value() == "2468"
        page.locator("#keypad [data-key='clear']").click()
        assert page.locator("#pin").input_value() == ""
        assert page.locator("#keypad [data-key='a']").count() == 0  # digits only
        page.goto(f"{server.url}/kiosk/lookup")
        for key in "2026-0042":
            page.locator(f"#code-keypad [data-key='{key}']").click()
        page.locator("#code-keypad [data-key='back']").click()
        assert page.locator("#code").input_value() == "2026-004"
        assert_touch_targets(page)
        assert any(re.search(r"/static/keyboard\.js", s) for s in scripts)
    finally:
        context.close()
