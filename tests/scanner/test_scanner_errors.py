"""Every SANE status text maps to its typed error and message key."""

from __future__ import annotations

import _sane
import pytest

from appliance.scanner import errors as E

CASES = [
    ("Document feeder jammed", E.ScannerJammed, "scanner.jammed"),
    ("Document feeder out of documents", E.ScannerNoDocuments, "scanner.no_documents"),
    ("Scanner cover is open", E.ScannerCoverOpen, "scanner.cover_open"),
    ("Device busy", E.ScannerBusy, "scanner.busy"),
    ("Error during device I/O", E.ScannerIOError, "scanner.io_error"),
    ("Operation was cancelled", E.ScannerCancelled, "scanner.cancelled"),
    ("Operation was canceled", E.ScannerCancelled, "scanner.cancelled"),
    ("Access to resource has been denied", E.ScannerAccessDenied, "scanner.access_denied"),
    ("Out of memory", E.ScannerNoMemory, "scanner.no_memory"),
    ("Operation not supported", E.ScannerUnsupported, "scanner.unsupported"),
    ("Invalid argument", E.ScannerInvalid, "scanner.invalid"),
]


@pytest.mark.parametrize(("text", "cls", "key"), CASES)
def test_sane_text_maps_to_typed_error(text, cls, key):
    err = E.wrap_sane_error(_sane.error(text), device="test:0", pages_done=3)
    assert type(err) is cls
    assert isinstance(err, E.ScannerError)
    assert err.key == key
    assert err.pages_done == 3
    assert "test:0" in str(err) and text in str(err)


def test_unknown_text_is_an_io_error():
    assert E.error_class_for("Something new in SANE 1.5") is E.ScannerIOError


@pytest.mark.parametrize(("status", "cls"), list(E.BY_SANE_STATUS.items()))
def test_every_sane_status_name_has_a_class_whose_text_maps_back(status, cls):
    """The status names the test backend's read-return-value offers (exercised
    through libsane in test_scanner_test_backend.py) and the texts SANE gives them."""
    assert issubclass(cls, E.ScannerError)
    assert cls.key in E.ALL_KEYS


def test_new_keys_and_reopen_flags():
    assert {"scanner.gone", "scanner.timeout", "scanner.bad_page"} <= set(E.ALL_KEYS)
    assert issubclass(E.ScannerGone, E.ScannerIOError)  # callers treating I/O keep working
    assert E.ScannerGone.reopen and E.ScannerIOError.reopen and E.ScannerNotFound.reopen
    assert not E.ScannerJammed.reopen and not E.ScannerNoDocuments.reopen


def test_keys_are_unique_and_namespaced():
    classes = [c for c in vars(E).values()
               if isinstance(c, type) and issubclass(c, E.ScannerError)]
    keys = [c.key for c in classes]
    assert len(keys) == len(set(keys)) >= 12
    assert all(k.startswith("scanner.") for k in keys)
    assert E.ScannerNotFound.key in E.ALL_KEYS


def test_every_key_and_preset_label_reads_in_vietnamese_and_english():
    import json
    from pathlib import Path

    from appliance.scanner.settings import PRESETS

    folder = Path(__file__).resolve().parents[2] / "appliance" / "web" / "translations"
    for lang in ("vi", "en"):
        table = json.loads((folder / f"{lang}.json").read_text(encoding="utf-8"))
        wanted = {*E.ALL_KEYS, *(p.label_key for p in PRESETS.values())}
        assert sorted(k for k in wanted if not table.get(k, "").strip()) == [], lang
