"""Accuracy measures: CER with and without diacritics, line-aligned CER, exact key fields."""

from __future__ import annotations

import unicodedata
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def normalize(text: str) -> str:
    """NFC with whitespace collapsed: layout spacing is not a reading error."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def strip_accents(text: str) -> str:
    d = unicodedata.normalize("NFD", text)
    d = "".join(c for c in d if unicodedata.category(c) != "Mn")
    return d.replace("đ", "d").replace("Đ", "D")


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance of two strings, or of two label sequences (training)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class PageScore:
    errors: int
    errors_plain: int  # after stripping diacritics from both sides
    length: int
    found: dict[str, tuple[int, int]]  # kind -> (exact, total)

    @property
    def cer(self) -> float:
        return self.errors / max(1, self.length)


def score_page(truth_lines: Iterable[str], read_lines: Iterable[str],
               values: Iterable[tuple[str, str]]) -> PageScore:
    """Compare page text in reading order; values are (kind, text) that must appear verbatim."""
    gt = normalize(" ".join(truth_lines))
    hyp = normalize(" ".join(read_lines))
    found: dict[str, tuple[int, int]] = {}
    for kind, value in values:
        ok, tot = found.get(kind, (0, 0))
        found[kind] = (ok + (normalize(value) in hyp), tot + 1)
    return PageScore(
        edit_distance(gt, hyp),
        edit_distance(strip_accents(gt), strip_accents(hyp)),
        len(gt),
        found,
    )


def summarize(scores: list[PageScore]) -> dict[str, float]:
    errs = sum(s.errors for s in scores)
    plain = sum(s.errors_plain for s in scores)
    n = sum(s.length for s in scores)
    out = {
        "cer": round(100.0 * errs / max(1, n), 3),
        "cer_no_diacritics": round(100.0 * plain / max(1, n), 3),
        "chars": n,
    }
    kinds: dict[str, list[int]] = {}
    for s in scores:
        for k, (ok, tot) in s.found.items():
            acc = kinds.setdefault(k, [0, 0])
            acc[0] += ok
            acc[1] += tot
    for k, (ok, tot) in sorted(kinds.items()):
        out[f"exact_{k}"] = round(100.0 * ok / max(1, tot), 2)
    return out


def best_stretch_errors(line: str, text: str) -> int:
    """Edit distance from `line` to the stretch of `text` it matches best.

    Semi-global alignment: skipping text before and after the stretch is free.
    This is how a transcribed line is scored when the reading order of the output
    differs from the transcription's (a two-column header, a seal read between two
    lines) or when only part of a page was transcribed. One numpy pass per
    character of the line: the in-row recurrence D[j] = min(T[j], D[j-1] + 1) is a
    running minimum of T[k] - k, plus j.
    """
    if not line:
        return 0
    if not text:
        return len(line)
    t = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(t) + 1, dtype=np.int64)
    prev = np.zeros(len(t) + 1, dtype=np.int64)  # any start in the text costs nothing
    tmp = np.empty(len(t) + 1, dtype=np.int64)
    for i, ch in enumerate(line, 1):
        cost = (t != ord(ch)).astype(np.int64)
        tmp[0] = i
        np.minimum(prev[:-1] + cost, prev[1:] + 1, out=tmp[1:])
        prev = np.minimum.accumulate(tmp - idx) + idx
    return int(prev.min())  # any end in the text costs nothing


@dataclass(frozen=True)
class LineAlignedScore:
    errors: int
    errors_plain: int  # after stripping diacritics from both sides
    length: int


def score_lines_aligned(truth_lines: Iterable[str], read_lines: Iterable[str]) -> LineAlignedScore:
    """Each truth line against its best-matching stretch of the page's whole output."""
    text = normalize(" ".join(read_lines))
    plain = strip_accents(text)
    errs = errs_plain = n = 0
    for raw in truth_lines:
        line = normalize(raw)
        if not line:
            continue
        errs += best_stretch_errors(line, text)
        errs_plain += best_stretch_errors(strip_accents(line), plain)
        n += len(line)
    return LineAlignedScore(errs, errs_plain, n)
