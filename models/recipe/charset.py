"""The recognizer's alphabet.

Kept in one place because the ONNX output layer, the manifest and the decoder
must agree on index order; the engine reads the same list from the manifest.
"""

from __future__ import annotations

import unicodedata

BASE_VOWELS = "aăâeêioôơuưy"
TONES = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")  # huyền sắc hỏi ngã nặng


def vietnamese_letters() -> list[str]:
    """Every Vietnamese letter, lower then upper case, NFC-composed."""
    lower: list[str] = []
    for v in BASE_VOWELS:
        for t in TONES:
            ch = unicodedata.normalize("NFC", v + t)
            if ch not in lower:
                lower.append(ch)
    for c in "bcdđfghjklmnpqrstvwxz":
        lower.append(c)
    upper = [c.upper() for c in lower]
    return lower + upper


DIGITS = "0123456789"
PUNCT = " .,:;/-()[]'\"!?%&+*=_#@<>№–…"


def charset() -> list[str]:
    """Index 0 is the CTC blank, so it is not part of this list."""
    out: list[str] = []
    for ch in vietnamese_letters() + list(DIGITS) + list(PUNCT):
        if ch not in out:
            out.append(ch)
    return out


def hard_letters() -> list[str]:
    """Hook-above and tilde letters: the ones the feasibility run confused most."""
    out = []
    for ch in vietnamese_letters():
        d = unicodedata.normalize("NFD", ch)
        if "\u0309" in d or "\u0303" in d or "\u031b" in d or "\u0323" in d:
            out.append(ch)
    return out


if __name__ == "__main__":
    cs = charset()
    print(len(cs), "".join(cs))
