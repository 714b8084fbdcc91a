"""Render one text line as a scan-like crop, the way the detector would cut it.

Degradations imitate what an office flatbed at 200-300 dpi produces: blur,
noise, JPEG, tiny rotations, low contrast, thin/thick ink, form rules and box
edges crossing the crop, and pale stamp ink over the text. Crops keep a
variable margin because detector boxes are sometimes tight on stacked accents.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from models.recipe.charset import charset

HEIGHT = 32

FONT_DIRS = ("/usr/share/fonts/truetype", "/usr/share/fonts/opentype")
# Families rendered for training; HOLDOUT is only used for validation so the
# curve shows how the model does on a typeface it never saw.
FAMILY_PREFIXES = (
    "DejaVuSans", "DejaVuSerif", "Liberation", "Free", "NotoSans-", "NotoSerif-",
    "NotoSansDisplay", "NotoSerifDisplay", "OpenSans", "Roboto", "Gentium", "Carlito", "Caladea",
    "Charis",
)
HOLDOUT = ("Charis",)


def font_files() -> list[Path]:
    out: list[Path] = []
    for d in FONT_DIRS:
        for p in sorted(Path(d).rglob("*.[ot]tf")):
            if p.name.startswith(FAMILY_PREFIXES):
                out.append(p)
    return out


def missing_glyphs(path: Path, chars: list[str]) -> list[str]:
    """Characters the font has no cmap entry for (it would draw a box or decompose)."""
    try:
        cmap = TTFont(str(path), lazy=True, fontNumber=0).getBestCmap() or {}
    except Exception:
        return list(chars)
    return [c for c in chars if c != " " and ord(c) not in cmap]


def usable_fonts(holdout: bool) -> list[Path]:
    """Fonts covering the whole charset; holdout=True returns only held-out families."""
    chars = charset()
    fonts = []
    for p in font_files():
        is_hold = p.name.startswith(HOLDOUT)
        if is_hold != holdout:
            continue
        if not missing_glyphs(p, chars):
            fonts.append(p)
    return fonts


@dataclass(frozen=True)
class Style:
    degrade: float  # 0 = clean, 1 = heavy


def _stamp(img: Image.Image, rng: random.Random) -> None:
    d = ImageDraw.Draw(img)
    w, h = img.size
    r = rng.randint(h, 3 * h)
    cx, cy = rng.randint(0, w), rng.randint(-r // 2, h + r // 2)
    tone = rng.randint(120, 200)
    for k in range(rng.randint(1, 3)):
        rr = r - k * rng.randint(3, 6)
        d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], outline=tone, width=rng.randint(1, 3))


def _form_lines(img: Image.Image, rng: random.Random, box: tuple[int, int, int, int]) -> None:
    d = ImageDraw.Draw(img)
    w, h = img.size
    x0, y0, x1, y1 = box
    tone = rng.randint(0, 140)
    if rng.random() < 0.5:  # rule under the text (underline / table row)
        y = min(h - 1, y1 + rng.randint(-2, 6))
        d.line([0, y, w, y], fill=tone, width=rng.randint(1, 2))
    if rng.random() < 0.3:  # rule above
        y = max(0, y0 - rng.randint(0, 8))
        d.line([0, y, w, y], fill=tone, width=rng.randint(1, 2))
    if rng.random() < 0.25:  # box edge left/right
        x = rng.choice([max(0, x0 - rng.randint(2, 10)), min(w - 1, x1 + rng.randint(2, 10))])
        d.line([x, 0, x, h], fill=tone, width=rng.randint(1, 2))
    if rng.random() < 0.15:  # dotted leader after the text
        y = y1 - 2
        for x in range(x1 + 4, w, rng.randint(4, 7)):
            d.point((x, y), fill=tone)


def _dotted_writing_line(img: Image.Image, rng: random.Random, y: int, tone: int) -> None:
    """The dotted line printed under a form's value, where the ink sits on the dots.

    Without it the model reads each dot below a letter as a dot-below tone mark
    ("Nội" -> "Nộị"): the first measured failure on pages from another renderer.
    """
    d = ImageDraw.Draw(img)
    w = img.size[0]
    step = rng.randint(3, 7)
    r = rng.choice([0, 0, 1])
    x = rng.randint(0, step)
    while x < w:
        if r:
            d.ellipse([x - r, y - r, x + r, y + r], fill=tone)
        else:
            d.point((x, y), fill=tone)
        x += step


def _draw_in_cells(text: str, font: ImageFont.FreeTypeFont, rng: random.Random,
                   fg: int, bg: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Digits one per printed cell, as BHXH forms ask for ID and insurance numbers.

    The label has no spaces: the model must learn that cell walls are not
    characters and that a wide gap inside a number is not a space.
    """
    asc, desc = font.getmetrics()
    cell = int(font.getlength("0") * rng.uniform(1.7, 3.2))
    digit_top = font.getbbox("0", anchor="ls")[1]  # negative: above the baseline
    pad = rng.randint(4, 16)
    H = asc + desc + 2 * pad
    W = cell * len(text) + 2 * pad
    img = Image.new("L", (W, H), color=bg)
    d = ImageDraw.Draw(img)
    top = max(0, pad + asc + digit_top - rng.randint(3, 12))
    bottom = pad + asc + rng.randint(1, max(2, desc))
    line_w = rng.randint(1, 2)
    tone = rng.randint(0, 120)
    for i, ch in enumerate(text):
        left = pad + i * cell
        d.rectangle((left, top, left + cell, bottom), outline=tone, width=line_w)
        d.text((left + cell / 2 + rng.uniform(-2, 2), pad + asc), ch, font=font, fill=fg,
               anchor="ms")
    return img, (pad, pad, pad + cell * len(text), pad + asc + desc)


def render_line(text: str, font_path: Path, rng: random.Random, degrade: float) -> np.ndarray:
    """Return a uint8 grayscale crop of height HEIGHT with the text drawn on it."""
    size = rng.randint(26, 44)
    font = ImageFont.truetype(str(font_path), size)
    bg = rng.randint(200, 255) if degrade > 0.2 else rng.randint(235, 255)
    fg = rng.randint(0, 90) if degrade < 0.7 else rng.randint(0, 150)
    if bg - fg < 80:
        fg = max(0, bg - 80)
    if text.isdigit() and 6 <= len(text) <= 15 and rng.random() < 0.5:
        img, text_box = _draw_in_cells(text, font, rng, fg, bg)
        return _finish(img, text_box, bg, rng, degrade, margins=False)
    bbox = font.getbbox(text)
    tw = bbox[2] - bbox[0]
    asc, desc = font.getmetrics()
    pad_x = rng.randint(2, 20)
    pad_top = rng.randint(2, 14)
    pad_bot = rng.randint(2, 14)
    W = tw + 2 * pad_x + 20
    oy = pad_top - min(0, bbox[1])
    H = oy + max(asc + desc, bbox[3]) + pad_bot
    img = Image.new("L", (W, H), color=bg)
    d = ImageDraw.Draw(img)
    ox = pad_x - bbox[0]
    if rng.random() < 0.3:
        # on the baseline (ink touches the dots) down to just under the descenders
        y = oy + asc + rng.randint(-1, max(1, desc + 2))
        _dotted_writing_line(img, rng, min(H - 1, y), rng.randint(40, 160))
    d.text((ox, oy), text, font=font, fill=fg)
    text_box = (pad_x, oy + bbox[1], pad_x + tw, oy + bbox[3])
    if rng.random() < 0.35 * (0.3 + degrade):
        _form_lines(img, rng, text_box)
    return _finish(img, text_box, bg, rng, degrade, margins=True, pad_x=pad_x, tw=tw)


def _finish(img: Image.Image, text_box: tuple[int, int, int, int], bg: int, rng: random.Random,
            degrade: float, *, margins: bool, pad_x: int = 0, tw: int = 0) -> np.ndarray:
    """Stamp, ink, rotation, the detector-like crop, resolution, blur, noise and JPEG."""
    W, H = img.size
    if rng.random() < 0.12 * degrade:
        _stamp(img, rng)
    if rng.random() < 0.3 * degrade:
        img = img.filter(rng.choice([ImageFilter.MinFilter(3), ImageFilter.MaxFilter(3)]))
    if rng.random() < 0.5 * degrade:
        angle = rng.uniform(-1.5, 1.5)
        img = img.rotate(angle, resample=Image.BILINEAR, expand=False, fillcolor=bg)
    # crop vertically around the ink with a variable margin, as a detector would
    top_m = rng.randint(0, 9)
    bot_m = rng.randint(0, 9)
    y0 = max(0, text_box[1] - top_m)
    y1 = min(H, text_box[3] + bot_m)
    if margins:
        x0 = max(0, pad_x - rng.randint(1, pad_x))
        x1 = min(W, pad_x + tw + rng.randint(1, pad_x + 10))
    else:
        x0 = max(0, text_box[0] - rng.randint(0, 8))
        x1 = min(W, text_box[2] + rng.randint(0, 8))
    img = img.crop((x0, y0, x1, y1))
    # simulate the page resolution (200 dpi letters are ~20 px tall) then resample
    if rng.random() < 0.6 * (0.3 + degrade):
        f = rng.uniform(0.45, 0.9)
        small = img.resize(
            (max(1, int(img.width * f)), max(1, int(img.height * f))), Image.BILINEAR
        )
        img = small
    if rng.random() < 0.5 * degrade:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.1)))
    stretch = rng.uniform(0.85, 1.15)
    new_w = max(8, int(round(img.width * HEIGHT / img.height * stretch)))
    img = img.resize((new_w, HEIGHT), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    if rng.random() < 0.6 * degrade:
        arr = arr + np.random.default_rng(rng.randint(0, 2**31)).normal(
            0, rng.uniform(2, 14), arr.shape
        )
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    if rng.random() < 0.5 * degrade:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=rng.randint(25, 85))
        arr = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))
    return arr


def random_degrade(rng: random.Random) -> float:
    return min(1.0, max(0.0, rng.choice([0.0, 0.3, 0.6, 1.0]) + rng.uniform(-0.1, 0.1)))


if __name__ == "__main__":
    import sys

    allc = charset()
    for p in font_files():
        miss = missing_glyphs(p, allc)
        print(("OK  " if not miss else f"MISS {len(miss):3d} ") + p.name, "".join(miss[:12]))
    if len(sys.argv) > 1:
        from models.recipe.textgen import TextSource

        ts = TextSource(0)
        r = random.Random(0)
        fonts = usable_fonts(False)
        rows = []
        for _ in range(int(sys.argv[1])):
            t = ts.line()
            a = render_line(t, r.choice(fonts), r, random_degrade(r))
            rows.append(a)
        Wmax = max(a.shape[1] for a in rows)
        canvas = np.full((HEIGHT * len(rows), Wmax), 255, np.uint8)
        for i, a in enumerate(rows):
            canvas[i * HEIGHT:(i + 1) * HEIGHT, : a.shape[1]] = a
        Image.fromarray(canvas).save("/tmp/lines.png")
        print(math.nan if not rows else Wmax)
