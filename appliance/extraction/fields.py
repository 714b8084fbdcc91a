"""Structured fields from a page's OCR lines (bóc tách dữ liệu).

Pure: lines in, a frozen result out. A value is kept only when it passes its
validator; a field that fails is reported as a problem for the officer, never
guessed, because a wrong ID number is worse than an empty one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

CCCD_RE = re.compile(r"(?<!\d)(\d{12})(?!\d)")
BHXH_RE = re.compile(r"(?<!\d)(\d{10})(?!\d)")
DATE_RE = re.compile(r"(?<!\d)(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})(?!\d)")
PHONE_RE = re.compile(r"(?<!\d)(0\d{9})(?!\d)")


# A value read from a line whose least sure character is below this is shown to
# the officer as "check against the paper". On 12 demo-scanner pages
# (`appliance bench ocr --renderer forms`) it flags 83 % of the lines the int8
# recognizer misread and 6.5 % of the lines it read right.
UNSURE_BELOW = 0.7


@dataclass(frozen=True)
class ExtractedFields:
    values: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    # valid values the recognizer was not sure of: kept, but flagged for a look
    uncertain: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"values": dict(self.values), "problems": list(self.problems),
                "uncertain": list(self.uncertain)}


def _fold(text: str) -> str:
    """Lower-case without diacritics, for matching labels that OCR may have damaged."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def valid_cccd(number: str) -> bool:
    """12 digits: province code 001-096, century/sex digit, birth year, serial."""
    return bool(re.fullmatch(r"\d{12}", number)) and 1 <= int(number[:3]) <= 96


def parse_date(text: str) -> date | None:
    m = DATE_RE.search(text)
    if not m:
        return None
    day, month, year = (int(g) for g in m.groups())
    try:
        return date(year, month, day)  # Vietnamese order is always day/month/year
    except ValueError:
        return None


def _after_label(line: str, label_folded: str) -> str | None:
    """The value after a label: after the colon when there is one (labels often carry
    hints like "(viết chữ in hoa)"), else after the label's words."""
    if ":" in line:
        rest = line.split(":", 1)[1]
    else:
        words = line.split()
        label_words = label_folded.split()
        for i in range(len(words) - len(label_words) + 1):
            if [_fold(w) for w in words[i:i + len(label_words)]] == label_words:
                rest = " ".join(words[i + len(label_words):])
                break
        else:
            return None
    return rest.strip(" .:") or None


def extract(lines: Sequence[str], confidences: Sequence[float] | None = None) -> ExtractedFields:
    """Fields from the lines in reading order; `confidences` (one per line, the
    least sure character's) marks values read from doubtful lines as uncertain."""
    values: dict[str, str] = {}
    problems: list[str] = []
    sources: dict[str, tuple[int, ...]] = {}
    lines = [unicodedata.normalize("NFC", line) for line in lines]

    def found(name: str, value: str, n: int, used_next: bool = False) -> None:
        values[name] = value
        sources[name] = (n, n + 1) if used_next else (n,)

    for n, line in enumerate(lines):
        folded = _fold(line)
        # Numbers written in boxed cells sit on the line below their label.
        with_next = line + " " + (lines[n + 1] if n + 1 < len(lines) else "")
        if "full_name" not in values and "ho va ten" in folded:
            name = _after_label(line, "ho va ten")
            if name:
                found("full_name", name.upper(), n)
        if "birth_date" not in values and "ngay sinh" in folded:
            parsed = parse_date(line)
            if parsed:
                found("birth_date", parsed.strftime("%d/%m/%Y"), n)
            else:
                problems.append("birth_date")
        if "cccd" not in values and ("cccd" in folded or "can cuoc" in folded):
            m = CCCD_RE.search(line.replace(" ", ""))
            below = m is None
            m = m or CCCD_RE.search(with_next.split(":", 1)[-1].replace(" ", ""))
            if m and valid_cccd(m.group(1)):
                found("cccd", m.group(1), n, below)
            else:
                problems.append("cccd")
        if "bhxh_number" not in values and "ma so bhxh" in folded:
            m = BHXH_RE.search(line.replace(" ", ""))
            below = m is None
            m = m or BHXH_RE.search(with_next.split(":", 1)[-1].replace(" ", ""))
            if m:
                found("bhxh_number", m.group(1), n, below)
            else:
                problems.append("bhxh_number")
        if "phone" not in values and "dien thoai" in folded:
            m = PHONE_RE.search(line.replace(" ", "").replace(".", ""))
            if m:
                found("phone", m.group(1), n)
    uncertain: tuple[str, ...] = ()
    if confidences is not None:
        uncertain = tuple(
            name for name, used in sources.items()
            if min((confidences[i] for i in used if i < len(confidences)), default=1.0)
            < UNSURE_BELOW
        )
    return ExtractedFields(values, tuple(dict.fromkeys(problems)), uncertain)
