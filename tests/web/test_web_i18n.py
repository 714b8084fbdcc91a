"""The translation tables: same keys, NFC Vietnamese, every key the code uses exists."""

from __future__ import annotations

import json
import re
import string
import unicodedata
from pathlib import Path

import pytest

from appliance.records import errors as records_errors
from appliance.web import i18n

WEB = Path(i18n.__file__).parent
TABLES = {lang: json.loads((WEB / "translations" / f"{lang}.json").read_text("utf-8"))
          for lang in i18n.LANGUAGES}
# t('key') / t("key", ...) / t_or('key' ~ ...) in templates; t("key") in Python.
LITERAL_KEY = re.compile(r"""\bt\(\s*['"]([a-z0-9_.]+)['"]""")
PREFIX_KEY = re.compile(r"""\bt(?:_or)?\(\s*['"]([a-z0-9_.]+\.)['"]\s*~""")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*WEB.rglob("*.html"), *WEB.glob("*.py")]:
        keys |= set(LITERAL_KEY.findall(path.read_text("utf-8")))
    return {k for k in keys if not k.endswith(".")}  # prefixes: test_prefixed_keys_resolve


def test_same_keys_and_placeholders():
    vi, en = TABLES["vi"], TABLES["en"]
    assert set(vi) == set(en)
    for key in vi:
        assert placeholders(vi[key]) == placeholders(en[key]), key
        assert vi[key].strip() and en[key].strip(), key


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_value_is_nfc(lang):
    for key, value in TABLES[lang].items():
        assert unicodedata.normalize("NFC", value) == value, key
    raw = (WEB / "translations" / f"{lang}.json").read_text("utf-8")
    assert unicodedata.normalize("NFC", raw) == raw


def test_vietnamese_has_its_diacritics():
    assert TABLES["vi"]["kiosk.retry"] == "Quét tiếp"
    assert TABLES["vi"]["dossier.code_label"] == "Mã hồ sơ"
    assert TABLES["vi"]["officer.sign"] == "Ký xác nhận và cấp mã kết quả số hóa"
    assert "“Quét tiếp”" in TABLES["vi"]["scanner.jammed"]


def test_every_used_key_exists():
    keys = used_keys() | set(i18n.DYNAMIC_KEYS) | i18n.message_keys()
    assert len(keys) > 100
    assert sorted(keys - set(TABLES["vi"])) == []


def test_prefixed_keys_resolve():
    """Templates build some keys (`'delivery.' ~ state`); each prefix has entries."""
    prefixes = set()
    for path in WEB.rglob("*.html"):
        prefixes |= set(PREFIX_KEY.findall(path.read_text("utf-8")))
    assert prefixes >= {"delivery.", "status.", "lang.", "field."}
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in TABLES["vi"]), prefix


def test_records_error_keys_exist():
    classes = [c for c in vars(records_errors).values()
               if isinstance(c, type) and issubclass(c, records_errors.RecordsError)]
    assert {c.key for c in classes} <= set(TABLES["vi"])


def test_every_layer_message_key_has_vietnamese_and_english_text():
    """Each layer's errors module declares its keys; every one reads in both languages."""
    keys = i18n.message_keys()
    # the layers that raise keys are all seen, and so are their newest keys
    assert {"scanner.jammed", "ocr.model_missing", "ocr.bad_image", "error.dossier_not_found",
            "error.csrf", "error.locked"} <= keys
    for lang in i18n.LANGUAGES:
        missing = sorted(k for k in keys if not TABLES[lang].get(k, "").strip())
        assert missing == [], (lang, missing)


def test_error_keys_written_as_literals_exist():
    """Keys the worker and the job store write as plain strings have a message too."""
    appliance = WEB.parent
    sources = [*appliance.glob("worker*.py"), *appliance.glob("worker/*.py"),
               appliance / "store" / "jobs.py"]
    keys: set[str] = set()
    for path in sources:
        keys |= set(re.findall(r"""['"]((?:scanner|error|ocr)\.[a-z_]+)['"]""",
                               path.read_text("utf-8")))
    keys -= {"scanner.state", "scanner.error", "ocr.state"}  # device-state names
    assert keys and keys <= set(TABLES["vi"]), sorted(keys - set(TABLES["vi"]))


def test_missing_key_falls_back_to_a_sentence():
    tr = i18n.Translations.load()
    assert tr.text("en", "no.such.key").startswith("Something went wrong")
    assert tr.text("vi", "job.scanning", pages=2) == "Đang quét… đã nhận 2 trang"
    assert tr.text("vi", "job.scanning") == TABLES["vi"]["job.scanning"]  # no crash


def test_messages_raised_without_parameters_have_no_placeholders():
    """A WebError raised with a key and a status only is shown with no parameters: a
    text with a "{…}" in it (once error.bad_json's example of a JSON body) cannot be
    filled, logs "needs parameters" and shows the raw braces."""
    bare = re.compile(r"""WebError\(\s*['"]([a-z0-9_.]+)['"]\s*,\s*\d+\s*\)""")
    keys = {k for path in WEB.rglob("*.py") for k in bare.findall(path.read_text("utf-8"))}
    assert "error.bad_json" in keys  # the search finds what it is meant to
    for key in sorted(keys):
        for lang in i18n.LANGUAGES:
            assert not list(placeholders(TABLES[lang][key])), (lang, key)
            assert "{" not in TABLES[lang][key].format(), (lang, key)
