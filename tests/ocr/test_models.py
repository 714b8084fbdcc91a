"""The manifest pins every model file; a mismatch is refused and names the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from appliance.ocr.engine import OcrEngine
from appliance.ocr.errors import ModelChecksumError, ModelMissingError
from appliance.ocr.manifest import Manifest, default_models_dir, sha256_file

MODELS = default_models_dir()


def test_manifest_lists_every_file_with_matching_sha256():
    m = Manifest.load(MODELS)
    roles = {e.role for e in m.entries}
    assert {"detector", "classifier", "recognizer"} <= roles
    for e in m.entries:
        assert e.licence and e.source
        assert sha256_file(MODELS / e.file) == e.sha256, e.file


def test_recognizer_charset_covers_vietnamese():
    import unicodedata

    m = Manifest.load(MODELS)
    cs = m.find("recognizer", "int8").charset
    assert cs == m.find("recognizer", "fp32").charset
    for word in ("NGUYỄN", "PHẠM THỊ QUỲNH", "Đắk Lắk", "Ỷ", "ửng", "0123456789", "/-.,:()"):
        for ch in unicodedata.normalize("NFC", word):
            assert ch in cs, ch


def test_model_files_fit_the_budget():
    m = Manifest.load(MODELS)
    total = sum((MODELS / e.file).stat().st_size for e in m.entries)
    assert total <= 15 * 1024 * 1024, total


def _copy_models(tmp: Path) -> Path:
    d = tmp / "models"
    d.mkdir()
    shutil.copy(MODELS / "manifest.json", d)
    for e in Manifest.load(MODELS).entries:
        (d / e.file).symlink_to(MODELS / e.file)
    return d


def test_tampered_model_is_refused_naming_the_file(tmp_path):
    d = _copy_models(tmp_path)
    rec = Manifest.load(d).find("recognizer", "int8")
    target = d / rec.file
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.unlink()
    target.write_bytes(bytes(data))
    with pytest.raises(ModelChecksumError) as e:
        OcrEngine.load(d)
    assert rec.file in str(e.value)


def test_manifest_hash_edit_is_refused(tmp_path):
    d = _copy_models(tmp_path)
    doc = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    det = next(m for m in doc["models"] if m["role"] == "detector")
    det["sha256"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ModelChecksumError, match=det["file"]):
        OcrEngine.load(d)


def test_missing_model_says_how_to_install(tmp_path):
    d = _copy_models(tmp_path)
    det = Manifest.load(d).find("detector")
    (d / det.file).unlink()
    with pytest.raises(ModelMissingError, match="install_models"):
        OcrEngine.load(d)


def test_engine_reports_models_for_status(engine):
    names = {m["name"] for m in engine.models()}
    assert "vi-rec-int8" in names
    assert all(len(m["sha256"]) == 64 for m in engine.models())
