"""Seed lists for the measurement scripts' `--seeds` option."""

from __future__ import annotations


def seed_ranges(text: str) -> list[int]:
    """The seeds a text like "1-20,31,40-42" names, in that order (ranges inclusive)."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out
