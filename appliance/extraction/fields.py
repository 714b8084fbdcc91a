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


@dataclass(frozen=True)
class ExtractedFields:
    values: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"values": dict(self.values), "problems": list(self.problems)}


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


def extract(lines: Sequence[str]) -> ExtractedFields:
    values: dict[str, str] = {}
    problems: list[str] = []
    lines = [unicodedata.normalize("NFC", line) for line in lines]
    for n, line in enumerate(lines):
        folded = _fold(line)
        # Numbers written in boxed cells sit on the line below their label.
        with_next = line + " " + (lines[n + 1] if n + 1 < len(lines) else "")
        if "full_name" not in values and "ho va ten" in folded:
            name = _after_label(line, "ho va ten")
            if name:
                values["full_name"] = name.upper()
        if "birth_date" not in values and "ngay sinh" in folded:
            parsed = parse_date(line)
            if parsed:
                values["birth_date"] = parsed.strftime("%d/%m/%Y")
            else:
                problems.append("birth_date")
        if "cccd" not in values and ("cccd" in folded or "can cuoc" in folded):
            m = CCCD_RE.search(line.replace(" ", "")) or CCCD_RE.search(
                with_next.split(":", 1)[-1].replace(" ", ""))
            if m and valid_cccd(m.group(1)):
                values["cccd"] = m.group(1)
            else:
                problems.append("cccd")
        if "bhxh_number" not in values and "ma so bhxh" in folded:
            m = BHXH_RE.search(line.replace(" ", "")) or BHXH_RE.search(
                with_next.split(":", 1)[-1].replace(" ", ""))
            if m:
                values["bhxh_number"] = m.group(1)
            else:
                problems.append("bhxh_number")
        if "phone" not in values and "dien thoai" in folded:
            m = PHONE_RE.search(line.replace(" ", "").replace(".", ""))
            if m:
                values["phone"] = m.group(1)
    return ExtractedFields(values, tuple(dict.fromkeys(problems)))
