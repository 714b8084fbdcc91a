"""Message keys of the imaging layer: the scan-time page flags (imaging.flags.PageFlag).

Imaging raises no errors of its own (a page it cannot judge is kept unflagged), but it
names the flags the kiosk and the officer screen show; declaring their keys here makes
the translation test demand a Vietnamese and an English text for each at once.
"""

from __future__ import annotations

from appliance.imaging.flags import PageFlag

MESSAGE_KEYS: tuple[str, ...] = tuple(
    key for flag in PageFlag for key in (flag.badge_key, flag.note_key))
