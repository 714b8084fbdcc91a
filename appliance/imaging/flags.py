"""Thresholds and names for flagging a page to whoever scans it, apart from the image code.

Kept free of numpy and Pillow so the web, which shows the flags, does not load the
image libraries just to compare a stored number with a limit or name a flag.
"""

from __future__ import annotations

from enum import StrEnum

# A page turned by more than this is flagged for the officer: the text still reads
# (OCR measures and follows the skew), but an archived copy that crooked may be
# refused as "not a faithful copy", and rescanning costs the officer seconds.
SKEW_FLAG_DEGREES = 1.0


class PageFlag(StrEnum):
    """A scan-time problem with a page, stored with it (pages.flags) and shown on the
    kiosk thumbnail and the officer's page view. A flag never drops or alters a page
    (Circular 01/2023 Art. 8: as many images as physical pages): it tells the person
    at the scanner what to do next, and the officer what to look at."""

    INCOMPLETE = "incomplete"  # the bottom is the decoder's flat grey: a transfer cut off
    TOO_DARK = "too_dark"  # the paper itself came out grey: underexposed, lid light leak
    TOO_LIGHT = "too_light"  # the ink came out pale grey: washed out, faint
    CUT_OFF = "cut_off"  # text runs into the image border: the paper lay off the glass
    HAND_OR_LID = "hand_or_lid"  # much of the image is a hand or the open lid/background

    @property
    def badge_key(self) -> str:
        """Message key of the short badge under a thumbnail."""
        return f"kiosk.{self.value}_page"

    @property
    def note_key(self) -> str:
        """Message key of the sentence that says what is wrong and the next step."""
        return f"kiosk.{self.value}_note"


def parse_flags(stored: str | None) -> tuple[PageFlag, ...]:
    """Flags as stored in `pages.flags` (comma-separated names); a name this version
    does not know (written by a newer one) is skipped rather than failing the page."""
    known = {f.value: f for f in PageFlag}
    return tuple(known[name] for name in (stored or "").split(",") if name in known)


def format_flags(flags: tuple[PageFlag, ...]) -> str:
    """The stored form of `flags`, in the fixed order the screens show them."""
    return ",".join(f.value for f in PageFlag if f in flags)


def is_skewed(skew_degrees: float | None) -> bool:
    """True when a measured skew is worth a flag (None: never measured)."""
    return skew_degrees is not None and abs(skew_degrees) > SKEW_FLAG_DEGREES
