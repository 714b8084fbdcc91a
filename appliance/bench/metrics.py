"""Accuracy measures: CER with and without diacritics, exact matches of key fields."""

from __future__ import annotations

import unicodedata
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass


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
