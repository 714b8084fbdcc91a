"""Folding Vietnamese text for label matching, keeping the way back to the original.

Printed labels reach us through OCR, which damages diacritics far more often than
base letters ("đổi với" for "đối với"), and forms spell the same label with
different punctuation ("Ngày, tháng, năm sinh" / "Ngày tháng năm sinh"). Labels are
therefore matched on a folded form: lower case, no diacritics, every run of
punctuation or spaces one space. The map from folded to original positions lets a
match be cut out of the original line, so values keep their diacritics and can
be placed on the page.
"""

from __future__ import annotations

import unicodedata


def fold_char(ch: str) -> str:
    """One character without case or diacritics; punctuation becomes a space. A
    combining mark on its own (text typed decomposed, NFD: "Nguyễn" as "Nguye" +
    U+0302 + U+0303 + "n") folds to nothing, as it does inside a composed letter:
    it became a space, and the officer's search for a name typed so found nobody."""
    if ch in "đĐ":
        return "d"
    if unicodedata.combining(ch):
        return ""
    base = "".join(c for c in unicodedata.normalize("NFD", ch)
                   if not unicodedata.combining(c)).lower()
    return "".join(c if c.isascii() and c.isalnum() else " " for c in base) or " "


def fold_with_map(text: str) -> tuple[str, list[int]]:
    """(folded text, index in `text` of each folded character)."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for f in fold_char(ch):
            if f == " " and (not out or out[-1] == " "):
                continue
            out.append(f)
            where.append(i)
    if out and out[-1] == " ":
        out.pop()
        where.pop()
    return "".join(out), where


def fold(text: str) -> str:
    """Folded text alone, for labels and title matching."""
    return fold_with_map(text)[0]


def find_words(haystack: str, needle: str) -> list[int]:
    """Start positions of `needle` in `haystack` (both folded) on word boundaries."""
    hits: list[int] = []
    if not needle:
        return hits
    start = haystack.find(needle)
    while start >= 0:
        end = start + len(needle)
        if (start == 0 or haystack[start - 1] == " ") and (
                end == len(haystack) or haystack[end] == " "):
            hits.append(start)
        start = haystack.find(needle, start + 1)
    return hits


def find_label(haystack: str, needle: str) -> list[tuple[int, int]]:
    """(start, end) of `needle` in `haystack` (both folded), ignoring spaces inside
    either: OCR drops the "/" of "thôn/xóm" and splits "Ngà y". Both ends must still
    fall on word boundaries of the haystack, so "so" never matches inside "soát"."""
    squeezed_at = [i for i, c in enumerate(haystack) if c != " "]
    squeezed = "".join(haystack[i] for i in squeezed_at)
    target = needle.replace(" ", "")
    hits: list[tuple[int, int]] = []
    if not target:
        return hits
    pos = squeezed.find(target)
    while pos >= 0:
        start = squeezed_at[pos]
        end = squeezed_at[pos + len(target) - 1] + 1
        if (start == 0 or haystack[start - 1] == " ") and (
                end == len(haystack) or haystack[end] == " "):
            hits.append((start, end))
        pos = squeezed.find(target, pos + 1)
    return hits


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, giving up (returning limit + 1) once it exceeds `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def label_tolerance(length: int) -> int:
    """Characters a misread label may differ by and still be taken for the label:
    none for short ones ("Số", "Nơi sinh"), one in "Dân tộc"-length and more for long
    ones, where a near-miss is still far from every other label."""
    if length < 8:
        return 0
    return 1 if length < 16 else 2 if length < 30 else 3
