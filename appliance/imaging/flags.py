"""Thresholds for flagging a page to the officer, apart from the image code.

Kept free of numpy and Pillow so the web, which shows the flags, does not load the
image libraries just to compare a stored number with a limit.
"""

from __future__ import annotations

# A page turned by more than this is flagged for the officer: the text still reads
# (OCR measures and follows the skew), but an archived copy that crooked may be
# refused as "not a faithful copy", and rescanning costs the officer seconds.
SKEW_FLAG_DEGREES = 1.0


def is_skewed(skew_degrees: float | None) -> bool:
    """True when a measured skew is worth a flag (None: never measured)."""
    return skew_degrees is not None and abs(skew_degrees) > SKEW_FLAG_DEGREES
