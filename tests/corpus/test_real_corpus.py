"""Checks of the real-scan corpus in tests/corpus/real (manifest, truth, page images).

The page images are third-party scans; where they are not present (a fresh clone
without the shared corpus) the image checks are skipped and the manifest/truth
checks still run.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parent / "real"
REPO = REAL.parents[2]
MANIFEST = json.loads((REAL / "manifest.json").read_text(encoding="utf-8"))
PAGES = MANIFEST["pages"]
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


def _pages_dir() -> Path | None:
    """The folder holding the page images, or None when no copy is present."""
    candidates = []
    if os.environ.get("REAL_CORPUS_PAGES"):
        candidates.append(Path(os.environ["REAL_CORPUS_PAGES"]))
    candidates += [
        REAL / "pages",
        REPO.parent / "shared" / "corpus" / "real" / "pages",
        REPO / "shared" / "corpus" / "real" / "pages",
    ]
    for c in candidates:
        if c.is_dir() and any(p.suffix.lower() in IMAGE_EXTS for p in c.iterdir()):
            return c
    return None


PAGES_DIR = _pages_dir()
needs_images = pytest.mark.skipif(
    PAGES_DIR is None, reason="page images not present (see tests/corpus/real/README.md)"
)


def _truth(page: dict) -> str:
    return (REAL / page["truth"]).read_text(encoding="utf-8")


def _lines(page: dict) -> list[str]:
    return [line for line in _truth(page).splitlines() if line.strip()]


def test_ids_unique_and_files_named_after_ids():
    ids = [p["id"] for p in PAGES]
    assert len(ids) == len(set(ids))
    for p in PAGES:
        assert p["file"].startswith("pages/")
        assert Path(p["file"]).stem == p["id"]
        assert p["truth"] == f"truth/{p['id']}.txt"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p["id"])
def test_every_page_has_source_and_licence(page):
    assert page["source_url"].startswith("https://github.com/")
    assert "/blob/" in page["source_url"]
    assert page["licence"].strip()
    assert page["licence_evidence"].strip()
    assert page["kind"] in {"admin", "form", "photo", "table", "other"}
    assert page["colour"] in {"colour", "grey", "bilevel"}
    assert isinstance(page["dpi"], int) and 50 <= page["dpi"] <= 600
    assert isinstance(page["dpi_estimated"], bool)
    assert page["rotation"] in {0, 90, 180, 270}
    assert len(page["sha256"]) == 64


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p["id"])
def test_derived_pages_name_their_source(page):
    by_id = {p["id"]: p for p in PAGES}
    if page["derived_from"] is None:
        assert page["derivation"] is None
        return
    src = by_id[page["derived_from"]]
    assert src["derived_from"] is None
    assert page["derivation"].strip()
    # a derived page shows the same text as its source
    assert _truth(page) == _truth(src)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p["id"])
def test_truth_is_nfc_and_not_empty(page):
    text = _truth(page)
    assert text == unicodedata.normalize("NFC", text)
    lines = _lines(page)
    assert lines, page["id"]
    assert page["lines"] == len(lines)
    for line in lines:
        assert line == line.strip(), repr(line)
        assert "  " not in line, repr(line)


def test_totals():
    originals = [p for p in PAGES if p["derived_from"] is None]
    assert len(PAGES) >= 20
    assert sum(len(_lines(p)) for p in originals) >= 680
    assert sum(p["real_scan"] for p in originals) >= 26


def test_kinds_and_colours_are_present():
    originals = [p for p in PAGES if p["derived_from"] is None]
    assert {"admin", "form", "table", "photo"} <= {p["kind"] for p in originals}
    assert {"colour", "grey", "bilevel"} <= {p["colour"] for p in PAGES}
    assert {150, 200, 300} <= {p["dpi"] for p in originals if not p["dpi_estimated"]}


def test_each_rotation_is_present():
    rotations = {p["rotation"] for p in PAGES}
    assert {0, 90, 180, 270} <= rotations


def test_no_stray_truth_files():
    listed = {p["truth"] for p in PAGES}
    on_disk = {f"truth/{f.name}" for f in (REAL / "truth").iterdir()}
    assert on_disk == listed


@needs_images
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p["id"])
def test_page_file_exists_and_sha256_matches(page):
    f = PAGES_DIR / Path(page["file"]).name
    assert f.is_file(), f
    assert hashlib.sha256(f.read_bytes()).hexdigest() == page["sha256"]


@needs_images
def test_no_page_missing_from_manifest():
    listed = {Path(p["file"]).name for p in PAGES}
    present = {f.name for f in PAGES_DIR.iterdir() if not f.name.startswith(".")}
    assert present <= listed, sorted(present - listed)


@needs_images
def test_bilevel_pages_are_one_bit():
    from PIL import Image

    for p in PAGES:
        if p["colour"] == "bilevel":
            with Image.open(PAGES_DIR / Path(p["file"]).name) as im:
                assert im.mode == "1", p["id"]
