"""Recognizer post-processing: a word that is no Vietnamese syllable takes the likeliest
look-alike spelling that is one (appliance.ocr.recognizer.fix_words)."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.ocr import recognizer as rec
from appliance.ocr.manifest import Manifest, default_models_dir

pytestmark = pytest.mark.skipif(not rec.syllables(),
                                reason="hunspell-vi syllable list not installed")

CHARSET = Manifest.load(default_models_dir()).find("recognizer", "int8").charset


def frames_for(text: str, alternatives: dict[int, dict[str, float]] | None = None
               ) -> tuple[list[str], list[int], np.ndarray]:
    """One frame per character: the read character at 0.6, the given alternatives at
    their probability, the rest of the alphabet sharing what is left."""
    alternatives = alternatives or {}
    p = np.full((len(text), len(CHARSET) + 1), 1e-9)
    for t, ch in enumerate(text):
        p[t, CHARSET.index(ch) + 1] = 0.6
        for alt, q in alternatives.get(t, {}).items():
            p[t, CHARSET.index(alt) + 1] = q
    p /= p.sum(axis=1, keepdims=True)
    return list(text), list(range(len(text))), p


def fixed(text: str, alternatives: dict[int, dict[str, float]] | None = None) -> str:
    chars, frames, p = frames_for(text, alternatives)
    return "".join(rec.fix_words(chars, frames, p, CHARSET)[0])


def test_non_syllable_takes_the_likeliest_syllable_spelling():
    # "triễn" is no syllable; "triển" and "triền" are: the look-alike (hook for tilde)
    # wins when the model gives both some weight
    assert fixed("phát triễn", {8: {"ể": 0.01, "ề": 0.02}}) == "phát triển"
    # without the look-alike, the more probable spelling
    assert fixed("triên", {3: {"ề": 0.02, "ể": 0.01}}) == "triền"


def test_changed_letter_carries_the_models_own_low_confidence():
    chars, frames, p = frames_for("điễm", {2: {"ể": 0.05}})
    out, changed = rec.fix_words(chars, frames, p, CHARSET)
    assert "".join(out) == "điểm"
    assert list(changed) == [2] and 0.0 < changed[2] < 0.2


def test_syllables_names_codes_and_capitals():
    assert fixed("dục và đào tạo") == "dục và đào tạo"  # both d and đ are syllables here
    assert fixed("khoá khóa") == "khoá khóa"  # old and new tone placement
    assert fixed("BHXH 01/2024") == "BHXH 01/2024"  # no vowel to change
    assert fixed("HỌI", {1: {"Ộ": 0.05}}) == "HỘI"  # upper case stays upper case
    assert fixed("tôpôlôgi") == "tôpôlôgi"  # longer than any syllable: left as read


def test_nothing_changes_without_the_syllable_list(monkeypatch):
    monkeypatch.setattr(rec, "SYLLABLE_LISTS", ())
    rec.syllables.cache_clear()
    try:
        assert fixed("phát triễn", {8: {"ể": 0.3}}) == "phát triễn"
    finally:
        monkeypatch.undo()
        rec.syllables.cache_clear()
