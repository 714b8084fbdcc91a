"""Real scans: extraction invents nothing and mislabels nothing without a flag.

Issue #10 item 2 asks, on generated and real-scan forms, that every mandatory field
come out right or flagged, none wrong and unflagged. Generated forms are held to it
by test_papers.py and measure.py; this holds the real-scan corpus
(tests/corpus/real) to it. Those pages are letters and forms of public bodies, not a
citizen's papers, so any field the extraction marks valid (no flag, not uncertain)
must at least be printed on the page: its value must be in the page's transcription
(after NFC, case-folding and whitespace/punctuation normalisation; dates compared as
dates), right after one of that field's own labels. Each page is read the way
`appliance extract IMAGE --json` reads it (the shipped int8 models through
OcrEngine, then extract_pages), once per page, and extracted with the paper type
guessed and forced to every catalogue type with mandatory fields; every mandatory
field not found must be listed as missing.

The page images are third-party files kept outside the commits; the test skips when
bench.ocr.real_pages_dir finds none. Run with -s to see the per-page figures.
"""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from collections import Counter
from datetime import date
from typing import Any

import pytest

from appliance.bench.ocr import REAL_CORPUS, real_pages_dir
from appliance.extraction.fields import VALID, extract_pages, parse_date
from appliance.records import catalogue as cat

PAGES = json.loads((REAL_CORPUS / "manifest.json").read_text(encoding="utf-8"))["pages"]
PAGES_DIR = real_pages_dir()
CATALOGUE = cat.default()
FORCED = tuple(p.code for p in CATALOGUE.papers if any(f.mandatory for f in p.fields))
KINDS = {(p.code, f.name): f.kind for p in CATALOGUE.papers for f in p.fields}
LABELS = {(p.code, f.name): f.labels for p in CATALOGUE.papers for f in p.fields}

pytestmark = pytest.mark.skipif(PAGES_DIR is None,
                                reason="real corpus page images not found "
                                       "(tests/corpus/real/README.md)")


def norm(text: str) -> str:
    """NFC, case-folded, punctuation to spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text).casefold()
    text = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in text)
    return " ".join(text.split())


def squeeze(text: str) -> str:
    return norm(text).replace(" ", "")


_NUMERIC = re.compile(r"(\d{1,2})\s*[/.\-]\s*(\d{1,2})\s*[/.\-]\s*(\d{4})")
_WORDED = re.compile(r"ngày\s*(\d{1,2})\s*tháng\s*(\d{1,2})\s*năm\s*(\d{4})", re.I)


def dates_in(text: str) -> set[date]:
    found: set[date] = set()
    text = unicodedata.normalize("NFC", text)
    for rx in (_NUMERIC, _WORDED):
        for m in rx.finditer(text):
            with contextlib.suppress(ValueError):
                found.add(date(int(m.group(3)), int(m.group(2)), int(m.group(1))))
    return found


def on_page(value: str, kind: str | None, truth: str) -> bool:
    """Whether `value` is printed in the transcription `truth`."""
    if kind == "date":
        when = parse_date(value)
        return when is not None and when in dates_in(truth)
    return norm(value) in norm(truth) or squeeze(value) in squeeze(truth)


def _starts_with(rest: str, value: str, kind: str | None) -> bool:
    if kind == "date":
        m = _NUMERIC.match(rest.strip()) or _WORDED.match(rest.strip())
        return m is not None and bool(dates_in(m.group())) and parse_date(value) in dates_in(
            m.group())
    return norm(rest).startswith(norm(value)) or squeeze(rest).startswith(squeeze(value))


def by_its_label(value: str, kind: str | None, labels: tuple[str, ...], truth: str) -> bool:
    """Whether the transcription prints `value` right after one of the field's own
    labels (only punctuation between them), or on the line under a label ending its
    line: "Mã số thuế: 0300849034" is not a value of the label "Mã số"."""
    rows = [unicodedata.normalize("NFC", r) for r in truth.splitlines()]
    for i, row in enumerate(rows):
        folded = row.casefold()
        for label in labels:
            for m in re.finditer(re.escape(label.casefold()) + r"(?!\w)", folded):
                if m.start() and folded[m.start() - 1].isalnum():
                    continue
                rest = re.sub(r"^[\s:.\-–…_]*(?:\([^)]*\))?[\s:.\-–…_]*", "", row[m.end():])
                if rest and _starts_with(rest, value, kind):
                    return True
                if not norm(rest) and i + 1 < len(rows) and _starts_with(rows[i + 1], value, kind):
                    return True
    return False


_ocr_cache: dict[str, Any] = {}


@pytest.fixture(scope="module")
def engine():
    from appliance.ocr.engine import OcrEngine
    return OcrEngine.load(None, threads=2)


def read_page(engine, page: dict[str, Any]):
    """The page's OCR lines, read once per module like `appliance extract` reads them."""
    if page["id"] not in _ocr_cache:
        from appliance.ocr.engine import open_image
        image = open_image(PAGES_DIR / page["file"].split("/", 1)[1])
        _ocr_cache[page["id"]] = engine.read(image).lines
    return _ocr_cache[page["id"]]


def judge(page: dict[str, Any], lines: Any, paper_type: str | None) -> tuple[Counter, list, list]:
    """(status counts, wrong-and-unflagged fields, mandatory fields not listed)."""
    truth = (REAL_CORPUS / page["truth"]).read_text(encoding="utf-8")
    result = extract_pages([lines], paper_type=paper_type, catalogue=CATALOGUE)
    counts: Counter = Counter(f.status for f in result.fields.values())
    wrong = [(result.paper_type, n, f.value, f.raw) for n, f in result.fields.items()
             if f.status == VALID and f.value is not None
             and not (on_page(f.value, KINDS.get((result.paper_type, n)), truth)
                      and by_its_label(f.value, KINDS.get((result.paper_type, n)),
                                       LABELS.get((result.paper_type, n), ()), truth))]
    unlisted: list = []
    paper = CATALOGUE.paper(result.paper_type) if result.paper_type else None
    if paper is not None and not result.paper_guessed:
        unlisted = [(paper.code, f.name) for f in paper.fields
                    if f.mandatory and f.name not in result.fields]
    return counts, wrong, unlisted


def _line(pid: str, label: str, counts: Counter, wrong: list) -> str:
    return (f"{pid:26s} {label:20s} valid {counts['valid']:2d}  uncertain "
            f"{counts['uncertain']:2d}  problem {counts['problem']:2d}  missing "
            f"{counts['missing']:2d}  wrong-unflagged {len(wrong)}"
            + (f"  {wrong}" if wrong else ""))


def test_helpers_tell_printed_from_invented():
    truth = "Mã số thuế: 0300849034\nĐà Nẵng, ngày 25 tháng 02 năm 2020\nTừ ngày 29/9/2021"
    assert on_page("0300849034", "bhxh_number", truth)
    assert not on_page("0300849035", "bhxh_number", truth)
    assert on_page("25/02/2020", "date", truth) and on_page("29/09/2021", "date", truth)
    assert not on_page("13/08/1990", "date", truth)
    assert on_page("ĐÀ NẴNG", "text", truth) and not on_page("NGUYỄN THỊ MAI", "name", truth)
    assert not by_its_label("0300849034", "bhxh_number", ("Mã số", "Số"), truth)
    assert by_its_label("0300849034", "text", ("Mã số thuế",), truth)
    assert by_its_label("29/09/2021", "date", ("Từ ngày",), truth)
    assert not by_its_label("29/09/2021", "date", ("Đến ngày",), truth)


def test_guessed_type_invents_nothing(engine):
    bad: list[str] = []
    totals: Counter = Counter()
    for page in PAGES:
        counts, wrong, _ = judge(page, read_page(engine, page), None)
        totals.update(counts)
        print(_line(page["id"], "guessed", counts, wrong))
        bad += [f"{page['id']}: {w}" for w in wrong]
    print(f"all pages, guessed type: {dict(totals)}, wrong and unflagged {len(bad)}")
    assert not bad, "valid values not printed on the page:\n" + "\n".join(bad)


def test_every_type_invents_nothing_and_lists_missing(engine):
    bad: list[str] = []
    unlisted: list[str] = []
    totals: Counter = Counter()
    for page in PAGES:
        lines = read_page(engine, page)
        per_page: Counter = Counter()
        page_wrong: list = []
        for code in FORCED:
            counts, wrong, missing = judge(page, lines, code)
            per_page.update(counts)
            page_wrong += wrong
            unlisted += [f"{page['id']}: {m}" for m in missing]
        totals.update(per_page)
        print(_line(page["id"], f"all {len(FORCED)} types", per_page, page_wrong))
        bad += [f"{page['id']}: {w}" for w in page_wrong]
    print(f"all pages x {len(FORCED)} types: {dict(totals)}, wrong and unflagged {len(bad)}")
    assert not unlisted, "mandatory fields neither found nor listed missing:\n" + "\n".join(
        unlisted)
    assert not bad, "valid values not printed on the page:\n" + "\n".join(bad)
