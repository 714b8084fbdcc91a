#!/usr/bin/env python3
"""Write the "appliance-blank" Xcursor theme: every cursor a transparent pixel.

Why: the kiosk is a touchscreen; a mouse pointer sitting in the middle of the screen
confuses citizens. cage (wlroots) and Chromium's Wayland backend both load cursor
images from the theme named by $XCURSOR_THEME, which the kiosk unit sets to this one.
cage has no "hide cursor" option of its own, and a theme costs nothing at run time.

Usage: blank-cursor-theme.py [DEST]   (default /usr/share/icons/appliance-blank)
Re-runnable: files are rewritten with the same bytes.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

IMAGE_TYPE = 0xFFFD0002
NOMINAL_SIZE = 24
# X cursor names and the CSS names Chromium asks for; anything missing would fall back
# to a visible cursor from Chromium's own resources.
_NAMES_TEXT = """
left_ptr default arrow top_left_arrow pointer hand hand1 hand2 pointing_hand text xterm
ibeam vertical-text watch wait progress left_ptr_watch half-busy crosshair cross
tcross cell grab grabbing openhand closedhand fleur all-scroll move size_all
not-allowed no-drop forbidden crossed_circle dnd-none dnd-move dnd-copy dnd-link copy
alias context-menu help question_arrow whats_this col-resize row-resize
sb_h_double_arrow sb_v_double_arrow split_h split_v n-resize s-resize e-resize
w-resize ne-resize nw-resize se-resize sw-resize ew-resize ns-resize nesw-resize
nwse-resize top_side bottom_side left_side right_side top_left_corner
top_right_corner bottom_left_corner bottom_right_corner size_hor size_ver size_bdiag
size_fdiag zoom-in zoom-out
"""
NAMES = _NAMES_TEXT.split()


def blank_cursor() -> bytes:
    """An Xcursor file holding one 1x1 fully transparent image."""
    header = struct.pack("<4sIII", b"Xcur", 16, 0x10000, 1)
    toc = struct.pack("<III", IMAGE_TYPE, NOMINAL_SIZE, 16 + 12)
    image = struct.pack("<IIIIIIIII", 36, IMAGE_TYPE, NOMINAL_SIZE, 1, 1, 1, 0, 0, 0)
    return header + toc + image + struct.pack("<I", 0)


def write_theme(dest: Path) -> int:
    cursors = dest / "cursors"
    cursors.mkdir(parents=True, exist_ok=True)
    (dest / "index.theme").write_text(
        "[Icon Theme]\nName=appliance-blank\nComment=Invisible cursors for the kiosk\n",
        encoding="utf-8")
    data = blank_cursor()
    for name in NAMES:
        (cursors / name).write_bytes(data)
    return len(NAMES)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/icons/appliance-blank")
    print(f"{write_theme(target)} blank cursors in {target}")
