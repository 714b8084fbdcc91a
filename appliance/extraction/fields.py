"""Structured fields from a paper's OCR lines (bóc tách dữ liệu), driven by its type.

Pure: lines in, a frozen result out. The catalogue (appliance/records/catalogue.json)
says which fields a paper type yields and by which printed labels they are found;
the page layout says where each value is: after its label on the same line (up to
the next label, so two columns on one row do not run together), in the next piece
of the same row, or on the row below. Every value then goes through its kind's
validator (validators.py) and comes out

- valid: passed, and the recognizer was sure of its characters;
- uncertain: passed, but read with low confidence or looking odd: kept, shown for
  a look against the paper;
- a problem: failed, with the reason; never guessed, because a wrong ID number is
  worse than an empty one. A valid value found elsewhere on the paper for the same
  field clears it (a heading that merely mentions "mã số BHXH" must not leave a red
  alarm beside the real number);
- missing: a mandatory field of the paper type that was not found at all.

`extract(lines, confidences)` keeps the worker's call and the `as_dict()` keys the
screens read ("values", "problems", "uncertain") and adds "missing", "reasons",
"paper_type" and per-field detail ("fields": value, status, confidence, box, flags).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.extraction import validators as v
from appliance.extraction.layout import Box, Line, reading_order, row_to_the_right, rows_below
from appliance.extraction.layout import to_lines as _to_lines
from appliance.extraction.text import (
    edit_distance,
    find_label,
    find_words,
    fold,
    fold_with_map,
    label_tolerance,
)
from appliance.records import catalogue as cat
from appliance.records.catalogue import Catalogue, FieldSpec, PaperType

# A value read from characters whose least sure one is below this is shown to
# the officer as "check against the paper". On 12 demo-scanner pages
# (`appliance bench ocr --renderer forms`) it flags 83 % of the lines the int8
# recognizer misread and 6.5 % of the lines it read right.
UNSURE_BELOW = 0.7

# How many lines from the top of the first page may carry the paper's title.
TITLE_LINES = 15
# Title labels at least this long (folded) are specific enough to count inside a line.
TITLE_ANYWHERE = 20

VALID, UNCERTAIN, PROBLEM, MISSING = v.VALID, v.UNCERTAIN, v.PROBLEM, "missing"
_RANK = {VALID: 0, UNCERTAIN: 1, PROBLEM: 2, MISSING: 3}

parse_date = v.parse_date


@dataclass(frozen=True)
class FieldValue:
    """One field of a paper as extracted, with where it was found and how sure we are.

    `value` is None for a problem or a missing field; `raw` keeps what OCR read
    there, so the officer sees it and a correction can keep the OCR value beside it.
    """

    name: str
    status: str
    value: str | None = None
    raw: str = ""
    confidence: float | None = None
    box: Box | None = None
    page: int | None = None
    flags: tuple[str, ...] = ()
    reason: str | None = None
    source: str = "ocr"  # "qr" when the CCCD QR filled a value OCR did not find (qr.py)

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "status": self.status,
                "confidence": None if self.confidence is None else round(self.confidence, 4),
                "box": list(self.box) if self.box is not None else None, "page": self.page,
                "flags": list(self.flags), "reason": self.reason, "raw": self.raw,
                "source": self.source}


@dataclass(frozen=True)
class ExtractedFields:
    """Every field of one paper; properties give the views older callers use."""

    fields: dict[str, FieldValue] = field(default_factory=dict)
    paper_type: str | None = None
    paper_guessed: bool = False
    # set when the caller named a paper type the catalogue does not know
    paper_problem: str | None = None
    # QR codes and barcodes on the pages (qr.QrReading), once qr.cross_check ran
    qr: tuple[Any, ...] = ()

    @property
    def values(self) -> dict[str, str]:
        """Valid and uncertain values: what the officer is shown as read."""
        return {n: f.value for n, f in self.fields.items()
                if f.status in (VALID, UNCERTAIN) and f.value is not None}

    def _named(self, status: str) -> tuple[str, ...]:
        return tuple(n for n, f in self.fields.items() if f.status == status)

    @property
    def problems(self) -> tuple[str, ...]:
        return self._named(PROBLEM)

    @property
    def uncertain(self) -> tuple[str, ...]:
        return self._named(UNCERTAIN)

    @property
    def missing(self) -> tuple[str, ...]:
        return self._named(MISSING)

    def as_dict(self) -> dict[str, object]:
        return {
            "values": self.values, "problems": list(self.problems),
            "uncertain": list(self.uncertain), "missing": list(self.missing),
            "reasons": {n: f.reason for n, f in self.fields.items() if f.reason},
            "paper_type": self.paper_type, "paper_guessed": self.paper_guessed,
            "paper_problem": self.paper_problem,
            "fields": {n: f.as_dict() for n, f in self.fields.items()},
            "qr": [r.as_dict() for r in self.qr],
        }


# The richer name; ExtractedFields stays for the callers that import it.
Extraction = ExtractedFields


def valid_cccd(number: str, catalogue: Catalogue | None = None) -> bool:
    """12 digits, a province code that exists, a century digit not in the future."""
    formats = _formats(catalogue or cat.default())
    verdict = v.check_cccd(number, formats) if re.fullmatch(r"\d{12}", number) else None
    return verdict is not None and verdict.status == VALID


def _formats(catalogue: Catalogue) -> v.Formats:
    return v.Formats(catalogue.cccd_provinces, catalogue.mobile_prefixes, catalogue.surnames)


# --- paper type -----------------------------------------------------------------------


def guess_paper_type(lines: Sequence[Line], catalogue: Catalogue) -> PaperType | None:
    """The paper type whose longest title label appears near the top of the first
    page; the longest match wins so "Giấy chứng nhận nghỉ việc hưởng BHXH" beats a
    bare "BHXH"-something. A long title also counts when misread by a few letters
    ("SIẤY CHỨNG NHẬN ... HIẾM"), below every exact match. None when no title matches."""
    if not lines:
        return None
    first_page = min(ln.page for ln in lines)
    top = [ln for ln in reading_order(lines) if ln.page == first_page][:TITLE_LINES]
    folded = [fold(ln.text) for ln in top]
    best: tuple[bool, int, int] | None = None
    chosen: PaperType | None = None
    for paper in catalogue.papers:
        for label in paper.title_labels:
            needle = fold(label)
            for row, text in enumerate(folded):
                # A short label ("Sổ BHXH") names the paper only where it opens a line,
                # not inside "Mã số BHXH: ..."; a long one is specific anywhere.
                at = find_words(text, needle)
                exact = bool(at) and (len(needle) >= TITLE_ANYWHERE or at[0] == 0)
                near = not exact and len(needle) >= TITLE_ANYWHERE and _near_words(
                    text, needle, label_tolerance(len(needle)))
                if exact or near:
                    score = (exact, len(needle), -row)
                    if best is None or score > best:
                        best, chosen = score, paper
    return chosen


def _near_words(text: str, needle: str, limit: int) -> bool:
    """Whether some run of whole words of `text` is within `limit` edits of `needle`."""
    words = text.split()
    n = len(needle.split())
    for k in (n - 1, n, n + 1):
        for i in range(max(0, len(words) - k + 1)):
            if k > 0 and edit_distance(" ".join(words[i:i + k]), needle, limit) <= limit:
                return True
    return False


# --- labels on a line -----------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    """A label (or any other label-like text that ends a value) found in a line."""

    line: Line
    start: int
    end: int
    spec: FieldSpec | None


_AFTER_LABEL = re.compile(r"^\s*(?:\([^)]*\)\s*)?(?:/[^:]{0,40})?\s*:")
# Item numbers that open a field's line: "[01].", "II. ", "3. ", "4)".
_MARKER = re.compile(r"\[\s*\d{1,2}\s*\]\s*\.?|^\s*[IVX]{1,4}\.\s|^\s*\d{1,2}\s?[.)](?!\d)")
_LEAD = re.compile(r"^\s*(?:\([^)]*\)\s*)?(?:/\s*[A-Za-z][A-Za-z .,]*?\s*(?=:))?[\s:.\-–…_]*")


# A label glued to the token before it ("TB/TU" of a document number) is no label.
_INSIDE_TOKEN = re.compile(r"\S[/\-]$")
# A label followed by more lower-case words and a colon is the head of another,
# longer label the catalogue does not give this field ("Mã số thuế:", "Số điện thoại:").
_LONGER_LABEL = re.compile(r"^ +([^\W\d_]+)(?: +[^\W\d_]+){0,3} *:")


def _longer_label(after: str) -> bool:
    m = _LONGER_LABEL.match(after)
    return m is not None and not m.group(1).isupper()


def _generic_labels(text: str) -> list[tuple[int, int]]:
    """Spans of label-looking text before a colon ("Ngày sinh:", "Nơi cư trú:"): a
    capitalised word followed only by lower-case words. They end a value even when
    the catalogue does not name them, so a name never swallows the next column."""
    spans: list[tuple[int, int]] = []
    for colon in (m.start() for m in re.finditer(":", text)):
        words = list(re.finditer(r"[^\s:]+", text[:colon]))[-6:]
        start = None
        for w in reversed(words):
            word = w.group()
            if not any(c.isalpha() for c in word):
                break
            if word[0].isupper() and (len(word) == 1 or word[1:].islower()):
                start = w.start()
                break
            if not word.islower():
                break
        if start is not None:
            spans.append((start, colon + 1))
    return spans


def _near_label(text: str, labels: Sequence[tuple[str, FieldSpec | None]]) -> FieldSpec | None:
    """The field whose label `text` (label-looking text before a colon) nearly spells."""
    squeezed = fold(re.sub(r"\([^)]*\)", " ", text)).replace(" ", "")
    best: tuple[int, FieldSpec] | None = None
    for needle, spec in labels:
        target = needle.replace(" ", "")
        limit = label_tolerance(len(target))
        if spec is None or limit == 0:
            continue
        distance = edit_distance(squeezed, target, limit)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, spec)
    return best[1] if best else None


def _line_hits(line: Line, labels: Sequence[tuple[str, FieldSpec | None]]) -> list[_Hit]:
    """Labels in `line`, longest first where they overlap, then markers and generic
    labels as plain stops."""
    folded, where = fold_with_map(line.text)
    found: list[tuple[int, int, FieldSpec | None]] = []
    for needle, spec in labels:
        for lo, hi in find_label(folded, needle):
            start, end = where[lo], where[hi - 1] + 1
            if _INSIDE_TOKEN.search(line.text[:start]) or _longer_label(line.text[end:]):
                continue  # "496-TB/TU ngày" is no "Từ ngày", "Mã số thuế:" no "Mã số"
            if " " not in needle:  # a one-word label needs a colon or to open the line
                opens = not re.sub(_MARKER, "", line.text[:start]).strip()
                if not (opens or _AFTER_LABEL.match(line.text[end:])):
                    continue
            found.append((start, end, spec))
    found.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    chosen: list[tuple[int, int, FieldSpec | None]] = []
    for hit in found:
        if not chosen or hit[0] >= chosen[-1][1]:
            chosen.append(hit)
    generic = _generic_labels(line.text)
    for start, end in generic:  # a label OCR misread ("thuộc tỉinh:") is still a label
        if any(not (end <= s or start >= e) for s, e, _ in chosen):
            continue
        spec = _near_label(line.text[start:end - 1], labels)
        if spec is not None:
            chosen.append((start, end - 1, spec))
    chosen.sort()
    stops = [(m.start(), m.end()) for m in _MARKER.finditer(line.text)] + generic
    for start, end in stops:
        if all(end <= s or start >= e for s, e, _ in chosen):
            chosen.append((start, end, None))
    chosen.sort()
    return [_Hit(line, s, e, spec) for s, e, spec in chosen]


# --- candidates -----------------------------------------------------------------------

Piece = tuple[Line, int, int]  # a line and the character span taken from it


@dataclass(frozen=True)
class _Candidate:
    pieces: tuple[Piece, ...]
    where: str  # "same", "right" or "below"
    # right after a label that ends in a colon: whatever is there was meant as the value
    claimed: bool = False

    @property
    def text(self) -> str:
        return " ".join(ln.text[s:e] for ln, s, e in self.pieces)

    def locate(self, span: tuple[int, int]) -> tuple[Box | None, int | None, float | None]:
        """Box, page and confidence of the characters `span` of `text` came from."""
        boxes: list[Box] = []
        confs: list[float] = []
        offset = 0
        page = None
        real = all(ln.real_box for ln, _, _ in self.pieces)
        for ln, s, e in self.pieces:
            lo, hi = max(span[0], offset), min(span[1], offset + e - s)
            if lo < hi:
                a, b = s + lo - offset, s + hi - offset
                boxes.append(ln.span_box(a, b))
                conf = ln.span_confidence(a, b)
                if conf is not None:
                    confs.append(conf)
                page = ln.page if page is None else page
            offset += e - s + 1
        if not boxes:
            return None, None, None
        box = (min(b[0] for b in boxes), min(b[1] for b in boxes),
               max(b[2] for b in boxes), max(b[3] for b in boxes))
        return (box if real else None), (page if real else None), min(confs, default=None)


def _take_until_label(line: Line, hits: list[_Hit]) -> tuple[Piece | None, bool]:
    """The start of `line` before its first label, and whether a label ended it."""
    first = next((h.start for h in hits), len(line.text))
    piece = (line, 0, first) if line.text[:first].strip() else None
    return piece, first < len(line.text)


def _candidates(hit: _Hit, hits_by_line: dict[int, list[_Hit]],
                page_lines: Sequence[Line], rows: int = 1) -> list[_Candidate]:
    """Where the value of `hit` may be, nearest first: after the label on its line,
    on along its row, then on the row(s) below."""
    line = hit.line
    text = line.text
    after = [h for h in hits_by_line[id(line)] if h.start >= hit.end]
    label_end = hit.end
    # A label-looking stop right behind the label is the rest of it: the English half
    # of "Đặc điểm nhân dạng / Personal identification:" with its "/" read as "1".
    while after and after[0].spec is None and not _MARKER.match(text, after[0].start) and len(
            text[label_end:after[0].start].strip()) <= 2:
        label_end = after.pop(0).end
    stop = after[0].start if after else len(text)
    lead = _LEAD.match(text[label_end:stop])
    start = label_end + (lead.end() if lead else 0)
    same: tuple[Piece, ...] = ((line, start, stop),) if text[start:stop].strip() else ()
    out: list[_Candidate] = []
    if same:
        out.append(_Candidate(same, "same", bool(_AFTER_LABEL.match(text[label_end:stop])
                                                 or label_end > hit.end)))
    if stop == len(text):  # nothing else of this line after the value: the row goes on
        right: list[Piece] = []
        for other in row_to_the_right(line, page_lines):
            piece, ended = _take_until_label(other, hits_by_line[id(other)])
            if piece:
                right.append(piece)
            if ended:
                break
        if right:
            out.append(_Candidate(same + tuple(right), "right"))
    h = line.height
    opens_line = not _MARKER.sub("", text[:hit.start]).strip()
    left = line.box[0] if opens_line else line.x_at(hit.start)
    x_from = left - int(1.5 * h) if line.real_box else line.box[0]
    x_to = line.x_at(hit.end) + 3 * h
    for row in rows_below(line, page_lines, x_from, x_to, rows):
        below: list[Piece] = []
        ended = False
        for other in row:
            piece, ended = _take_until_label(other, hits_by_line[id(other)])
            if piece:
                below.append(piece)
            if ended:
                break
        if below:
            out.append(_Candidate(tuple(below), "below"))
        if ended:
            break  # a label in the row: what follows belongs to it
    return out


def _judge(spec: FieldSpec, cands: list[_Candidate],
           formats: v.Formats) -> FieldValue | None:
    """The best reading of a field from one label: the first valid candidate, else the
    first uncertain, else the first problem; None when no candidate is an attempt
    at a value of this kind (an empty line after a heading)."""
    results: list[FieldValue] = []
    for cand in cands:
        text = cand.text
        verdict = v.check(spec.kind, text, formats, past=spec.past,
                          upper_case=spec.upper_case)
        if verdict is None and cand.claimed and re.search(r"\w", text):
            verdict = v.Verdict(PROBLEM, None, (0, len(text)), (f"{spec.kind}.format",),
                                f"not a {spec.kind.replace('_', ' ')}: {text.strip()!r}")
        if verdict is None:
            continue
        if (verdict.status == PROBLEM and cand.where == "below"
                and spec.kind not in v.MIN_DIGITS and spec.kind != "date"):
            continue  # a sentence under a label is no failed attempt at a name
        box, page, conf = cand.locate(verdict.span)
        flags = list(verdict.flags)
        status, reason = verdict.status, verdict.reason
        if status == VALID and conf is not None and conf < UNSURE_BELOW:
            status = UNCERTAIN
            flags.append("low_confidence")
            reason = f"OCR unsure of these characters (confidence {conf:.2f})"
        elif status == UNCERTAIN and conf is not None and conf < UNSURE_BELOW:
            flags.append("low_confidence")
        raw = text[verdict.span[0]:verdict.span[1]].strip() or text.strip()
        results.append(FieldValue(spec.name, status, verdict.value if status != PROBLEM
                                  else None, raw, conf, box, page, tuple(flags), reason))
        if status == VALID:
            break
    if not results:
        return None
    return min(results, key=lambda r: _RANK[r.status])


# --- the whole paper ------------------------------------------------------------------


def _label_table(paper: PaperType, catalogue: Catalogue) -> list[tuple[str, FieldSpec | None]]:
    """Folded labels of the paper's fields, plus the fallback type's as plain stops
    (a label the paper type does not list still ends the value before it)."""
    table: list[tuple[str, FieldSpec | None]] = [
        (fold(label), spec) for spec in paper.fields for label in spec.labels]
    own = {needle for needle, _ in table}
    for other in (catalogue.fallback,) if paper.code != cat.FALLBACK_PAPER else ():
        table += [(fold(label), None) for spec in other.fields for label in spec.labels
                  if fold(label) not in own]
    return [(needle, spec) for needle, spec in table if needle]


def _cross_check(fields: dict[str, FieldValue]) -> None:
    """A CCCD number encodes the century, year of birth and sex (Decree 137/2015):
    when they disagree with the date of birth or sex on the same paper, one of the
    two was misread, and neither may pass as valid."""
    birth = fields.get("birth_date")
    sex = fields.get("gender")
    for name in ("cccd", "personal_id"):
        card = fields.get(name)
        if card is None or card.value is None or card.status == PROBLEM:
            continue
        if birth is not None and birth.value is not None and birth.status != PROBLEM:
            year = int(birth.value[-4:])
            if v.cccd_birth_year(card.value) != year:
                fields[name] = replace(
                    card, status=PROBLEM, value=None, flags=card.flags + ("cccd.birth_year",),
                    reason=(f"digits 4-6 of the CCCD number ({card.value[3:6]}) say born in "
                            f"{v.cccd_birth_year(card.value)}, the date of birth says {year}"))
                fields["birth_date"] = replace(
                    birth, status=UNCERTAIN, flags=birth.flags + ("birth_date.cccd_mismatch",),
                    reason=f"does not match the birth year in the CCCD number {card.value}")
                continue
        if (sex is not None and sex.value is not None and sex.status != PROBLEM
                and v.cccd_is_female(card.value) != (sex.value == "Nữ")):
            fields[name] = replace(
                card, status=PROBLEM, value=None, flags=card.flags + ("cccd.sex",),
                reason=(f"the CCCD number's 4th digit ({card.value[3]}) is for "
                        f"{'a woman' if v.cccd_is_female(card.value) else 'a man'}, "
                        f"the paper says {sex.value}"))


def _same_as(paper: PaperType, fields: dict[str, FieldValue]) -> None:
    """Two readings of one value (the declared name and the name under the signature)
    that differ mean one was misread; both are shown for a look."""
    for spec in paper.fields:
        mine, theirs = fields.get(spec.name), fields.get(spec.same_as)
        if (not spec.same_as or mine is None or theirs is None or mine.value is None
                or theirs.value is None or mine.value == theirs.value):
            continue
        if not set(mine.flags) <= {"low_confidence"}:
            continue  # an odd reading (a scrawl read as "X N") is no second opinion
        for name, other in ((spec.name, theirs), (spec.same_as, mine)):
            f = fields[name]
            if f.status == VALID:
                fields[name] = replace(f, status=UNCERTAIN, flags=f.flags + ("mismatch",),
                                       reason=f"{other.name} reads {other.value}")


def extract_lines(lines: Sequence[Line], paper_type: str | None = None,
                  catalogue: Catalogue | None = None) -> ExtractedFields:
    """Fields from prepared lines (see layout.to_lines), by the named or guessed type."""
    catalogue = catalogue or cat.default()
    formats = _formats(catalogue)
    problem = None
    guessed = False
    paper: PaperType | None
    if paper_type is not None:
        paper = catalogue.paper(paper_type)
        if paper is None:
            problem = f"unknown paper type {paper_type!r}: not in the catalogue"
    else:
        paper = guess_paper_type(lines, catalogue)
        guessed = True
    spec_paper = paper or catalogue.fallback
    labels = _label_table(spec_paper, catalogue)
    ordered = reading_order(lines)
    hits_by_line = {id(ln): _line_hits(ln, labels) for ln in ordered}
    by_page: dict[int, list[Line]] = {}
    for ln in ordered:
        by_page.setdefault(ln.page, []).append(ln)

    readings: dict[str, list[FieldValue]] = {}
    for ln in ordered:
        for hit in hits_by_line[id(ln)]:
            if hit.spec is None:
                continue
            cands = _candidates(hit, hits_by_line, by_page[ln.page], hit.spec.rows_below)
            found = _judge(hit.spec, cands, formats)
            if found is not None:
                readings.setdefault(hit.spec.name, []).append(found)

    fields: dict[str, FieldValue] = {}
    for spec in spec_paper.fields:
        got = readings.get(spec.name, [])
        if not got:
            if spec.mandatory and paper is not None:
                fields[spec.name] = FieldValue(spec.name, MISSING, flags=("missing",),
                                               reason="mandatory field not found on the paper")
            continue
        best = min(got, key=lambda r: _RANK[r.status])  # first of the best rank
        others = sorted({r.value for r in got if r.status == VALID and r.value != best.value
                         and r.value is not None})
        if best.status == VALID and others:
            best = replace(best, status=UNCERTAIN, flags=best.flags + ("conflict",),
                           reason=f"the paper also reads {', '.join(others)}")
        fields[spec.name] = best
    _cross_check(fields)
    _same_as(spec_paper, fields)
    if problem is not None:
        fields = {n: replace(f, status=UNCERTAIN, flags=f.flags + ("paper.unknown",),
                             reason=problem) if f.status == VALID else f
                  for n, f in fields.items()}
    code = paper.code if paper is not None else None
    if code is None and guessed:
        code = cat.FALLBACK_PAPER
    return ExtractedFields(fields, code, guessed, problem)


def extract(lines: Sequence[Any], confidences: Sequence[float] | None = None, *,
            paper_type: str | None = None,
            catalogue: Catalogue | None = None) -> ExtractedFields:
    """Fields from a paper's lines in reading order: strings, OCR TextLines or the
    worker's stored line dicts (with "page" when a paper has several pages).
    `confidences` (one per line, the least sure character's) overrides theirs."""
    return extract_lines(_to_lines(lines, confidences), paper_type, catalogue)


def extract_pages(pages: Sequence[Sequence[Any]], *, paper_type: str | None = None,
                  catalogue: Catalogue | None = None) -> ExtractedFields:
    """Fields from a paper of several pages, each page's lines with their boxes."""
    lines: list[Line] = []
    for n, page in enumerate(pages):
        lines.extend(_to_lines(page, page=n))
    return extract_lines(lines, paper_type, catalogue)
