"""Real-print degradations: lines that look like the office scans the appliance gets.

The first recognizer was trained on clean-ish renders (render.py) and read the
real-scan corpus (tests/corpus/real) worse than tesseract: look-alike marks
(ể/ễ, ổ/ỗ, ề/è, ủ/ù, ỉ/i), stacked capitals on coloured paper losing their
upper mark ("HỘI" -> "HỌI"), stray commas from specks. Each degradation below
is named and drawn with its own probability (AUGS), so a shard's mix is
explicit and can be re-weighted; none of them uses a real page or its text.

The line is drawn in colour (paper, ink, red seal, blue signature) and turned
grey with PIL's luma, exactly as the engine does with a colour scan: a red
seal is a mid-grey blot to the recognizer, a pink form a darker background.
Resolution, bilevel thresholding, dithering and JPEG happen at the simulated
scan resolution, then the crop is enlarged to 32 rows the way
`appliance.ocr.recognizer.crop_line` does (bicubic when enlarging).
"""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

HEIGHT = 32

# name -> probability per line. Tuned by eye on sample sheets (python -m
# models.recipe.realprint 40 writes /tmp/real_lines.png), not on the real corpus.
AUGS: dict[str, float] = {
    "colour_paper": 0.30,  # pink / yellow / blue / green form paper
    "blue_ink": 0.10,  # text printed or typed in dark blue
    "show_through": 0.15,  # the back page's text, mirrored and faint
    "seal": 0.15,  # red round seal arcs and seal letters over the line
    "signature": 0.10,  # blue pen strokes crossing the line
    "rules": 0.20,  # table rules / underline
    "ink_spread": 0.15,  # toner spread: strokes thicken, counters close
    "thin_broken": 0.15,  # faint toner: thin strokes with gaps
    "rotate": 0.35,  # +-1.5 degrees
    "curve": 0.15,  # a bent page: per-column baseline shift
    "shadow": 0.20,  # uneven light: gradient or a dark edge
    "tight_top": 0.12,  # the detector's box cuts into the upper marks
    "lowres": 0.40,  # 100-150 dpi letter sizes, enlarged again
    "bilevel": 0.15,  # fax / 1-bit scan: Otsu or a fixed threshold
    "dither": 0.06,  # 1-bit with error diffusion (halftoned grey)
    "blur": 0.30,
    "noise": 0.30,
    "jpeg_low": 0.25,  # JPEG quality 10-40
    "jpeg": 0.25,  # JPEG quality 40-85
}

PAPERS = {
    "pink": ((245, 255), (195, 225), (205, 232)),
    "yellow": ((245, 255), (236, 252), (160, 205)),
    "blue": ((185, 215), (210, 235), (240, 255)),
    "green": ((195, 225), (230, 250), (195, 225)),
}


def _rgb(rng: random.Random, ranges: tuple[tuple[int, int], ...]) -> tuple[int, int, int]:
    r, g, b = (rng.randint(lo, hi) for lo, hi in ranges)
    return r, g, b


def _otsu(a: np.ndarray) -> int:
    hist = np.bincount(a.reshape(-1), minlength=256).astype(np.float64)
    p = hist / max(1.0, hist.sum())
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    mu_t = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sb = (mu_t * omega - mu) ** 2 / (omega * (1 - omega))
    return int(np.nanargmax(sb))


def _overlay(size: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    ov = Image.new("RGB", size, (255, 255, 255))
    return ov, ImageDraw.Draw(ov)


def _seal(img: Image.Image, rng: random.Random, font_path: Path, size: int) -> Image.Image:
    """Red arcs of a round seal, sometimes with a few of its letters, multiplied on."""
    w, h = img.size
    ov, d = _overlay(img.size)
    red = (rng.randint(190, 240), rng.randint(20, 80), rng.randint(30, 90))
    r = rng.randint(h, 5 * h)
    cx = rng.randint(-r // 2, w + r // 2)
    cy = rng.choice([rng.randint(-r, 0), rng.randint(h, h + r)])
    for k in range(rng.randint(1, 3)):
        rr = r - k * rng.randint(4, 9)
        d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], outline=red, width=rng.randint(2, 4))
    if rng.random() < 0.5:
        font = ImageFont.truetype(str(font_path), max(10, int(size * rng.uniform(0.5, 0.9))))
        word = rng.choice(["BẢO HIỂM XÃ HỘI", "ỦY BAN NHÂN DÂN", "CỘNG HÒA", "VIỆT NAM",
                           "HUYỆN", "TỈNH", "SỞ", "PHÒNG", "★"])
        layer = Image.new("L", (w, h), 0)
        ImageDraw.Draw(layer).text((rng.randint(-w // 4, w // 2), rng.randint(-size // 2, h // 2)),
                                   word, font=font, fill=255)
        layer = layer.rotate(rng.uniform(-40, 40), resample=Image.BILINEAR)
        ov.paste(Image.new("RGB", (w, h), red), (0, 0), layer)
    if rng.random() < 0.5:  # seal ink is uneven: paler in places
        ov = Image.blend(ov, Image.new("RGB", (w, h), (255, 255, 255)), rng.uniform(0.0, 0.45))
    return ImageChops.multiply(img, ov)


def _signature(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    ov, d = _overlay(img.size)
    ink = (rng.randint(10, 60), rng.randint(30, 90), rng.randint(110, 200))
    x0, x1 = rng.randint(-w // 4, w // 2), rng.randint(w // 2, w + w // 4)
    amp, per, ph = rng.uniform(0.2, 0.8) * h, rng.uniform(0.3, 1.5) * h, rng.uniform(0, 6.3)
    y_mid, slope = rng.uniform(0.2, 0.8) * h, rng.uniform(-0.3, 0.3)
    pts = [(x, y_mid + slope * (x - x0) + amp * math.sin(ph + x / per))
           for x in range(x0, x1, 3)]
    if len(pts) > 1:
        d.line(pts, fill=ink, width=rng.randint(1, 3), joint="curve")
    return ImageChops.multiply(img, ov)


def _show_through(img: Image.Image, rng: random.Random, font_path: Path, size: int,
                  text: str) -> Image.Image:
    w, h = img.size
    layer = Image.new("L", (w, h), 255)
    font = ImageFont.truetype(str(font_path), size)
    words = text.split() or [text]
    rng.shuffle(words)
    ImageDraw.Draw(layer).text((rng.randint(-20, 20), rng.randint(-h // 2, h // 3)),
                               " ".join(words), font=font, fill=rng.randint(150, 215))
    layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    return ImageChops.multiply(img, layer.convert("RGB"))


def _curve(a: np.ndarray, rng: random.Random, bg: int) -> np.ndarray:
    """Shift each column vertically along a smooth bend (a page not lying flat)."""
    h, w = a.shape
    amp = rng.uniform(1.0, 0.12 * h)
    x = np.linspace(-1.0, 1.0, w)
    if rng.random() < 0.5:
        shift = amp * (x ** 2 - 0.5)  # bow
    else:
        shift = amp * np.sin(rng.uniform(0.5, 2.5) * math.pi * x + rng.uniform(0, 6.3))
    src = np.arange(h)[:, None] - np.round(shift).astype(int)[None, :]
    out = np.full_like(a, bg)
    ok = (src >= 0) & (src < h)
    cols = np.broadcast_to(np.arange(w)[None, :], (h, w))
    out[ok] = a[src[ok], cols[ok]]
    return out


def _shadow(a: np.ndarray, rng: random.Random) -> np.ndarray:
    h, w = a.shape
    lo = rng.uniform(0.55, 0.9)
    if rng.random() < 0.6:  # a gradient along or across the line
        g = np.linspace(lo, 1.0, w if rng.random() < 0.7 else h)
        if rng.random() < 0.5:
            g = g[::-1]
        f = g[None, :] if g.shape[0] == w else g[:, None]
    else:  # a dark edge (book fold, lid shadow) fading out
        n = rng.randint(max(2, w // 10), max(3, w // 3))
        g = np.ones(w)
        g[:n] = np.linspace(lo, 1.0, n)
        f = (g if rng.random() < 0.5 else g[::-1])[None, :]
    return np.clip(a.astype(np.float32) * f, 0, 255).astype(np.uint8)


def _broken(a: np.ndarray, rng: random.Random, bg: int) -> np.ndarray:
    """Faint toner: lighten the ink, and drop it in small random specks."""
    h, w = a.shape
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    cell = rng.randint(2, 4)
    m = nrng.random(((h + cell - 1) // cell, (w + cell - 1) // cell)) < rng.uniform(0.08, 0.25)
    m = np.kron(m, np.ones((cell, cell), bool))[:h, :w]
    out = a.astype(np.float32)
    out = bg - (bg - out) * rng.uniform(0.55, 0.9)
    out[m] = bg - (bg - out[m]) * 0.25
    return np.clip(out, 0, 255).astype(np.uint8)


def _jpeg(a: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def render_real_line(text: str, font_path: Path, rng: random.Random,
                     augs: dict[str, float] | None = None) -> np.ndarray:
    """A uint8 grey crop of HEIGHT rows: `text` as a real office scan would show it."""
    p = AUGS if augs is None else augs

    def on(name: str) -> bool:
        return rng.random() < p.get(name, 0.0)

    size = rng.randint(26, 44)
    font = ImageFont.truetype(str(font_path), size)
    if on("colour_paper"):
        paper = _rgb(rng, PAPERS[rng.choice(list(PAPERS))])
    else:
        v = rng.randint(215, 255)
        paper = (v, v, v)
    ink = ((rng.randint(10, 50), rng.randint(20, 70), rng.randint(90, 160)) if on("blue_ink")
           else (rng.randint(0, 70),) * 3)
    bbox = font.getbbox(text)
    tw = bbox[2] - bbox[0]
    asc, desc = font.getmetrics()
    pad_x, pad_top, pad_bot = rng.randint(2, 20), rng.randint(4, 14), rng.randint(4, 14)
    W = tw + 2 * pad_x + 20
    oy = pad_top - min(0, bbox[1])
    H = oy + max(asc + desc, bbox[3]) + pad_bot
    img = Image.new("RGB", (W, H), paper)
    if on("show_through"):
        img = _show_through(img, rng, font_path, size, text)
    d = ImageDraw.Draw(img)
    ox = pad_x - bbox[0]
    d.text((ox, oy), text, font=font, fill=ink)
    box = (pad_x, oy + bbox[1], pad_x + tw, oy + bbox[3])
    if on("rules"):
        tone = (rng.randint(0, 120),) * 3
        if rng.random() < 0.7:
            y = min(H - 1, box[3] + rng.randint(-2, 6))
        else:
            y = max(0, box[1] - rng.randint(0, 8))
        d.line([0, y, W, y], fill=tone, width=rng.randint(1, 2))
    if on("seal"):
        img = _seal(img, rng, font_path, size)
    if on("signature"):
        img = _signature(img, rng)
    g = img.convert("L")  # as the engine turns a colour scan grey
    bg = int(np.median(np.asarray(g)[:, :4]))
    if on("ink_spread"):
        g = g.filter(ImageFilter.MinFilter(3))
    elif on("thin_broken"):
        a = np.asarray(g.filter(ImageFilter.MaxFilter(3)) if rng.random() < 0.4 else g)
        g = Image.fromarray(_broken(a, rng, bg))
    if on("rotate"):
        g = g.rotate(rng.uniform(-1.5, 1.5), resample=Image.BILINEAR, fillcolor=bg)
    a = np.asarray(g)
    if on("curve"):
        a = _curve(a, rng, bg)
    if on("shadow"):
        a = _shadow(a, rng)
    # the detector's crop: variable margins, sometimes cutting into the upper marks
    top = box[1] + (rng.randint(1, max(1, (box[3] - box[1]) // 10)) if on("tight_top")
                    else -rng.randint(0, 9))
    y0, y1 = max(0, top), min(H, box[3] + rng.randint(0, 9))
    x0, x1 = max(0, pad_x - rng.randint(1, pad_x)), min(W, pad_x + tw + rng.randint(1, pad_x + 10))
    a = a[y0:y1, x0:x1]
    g = Image.fromarray(np.ascontiguousarray(a))
    if on("lowres"):
        # 10-13 pt at 100-150 dpi: the crop holds 12-24 rows instead of 40-60
        rows = rng.randint(12, 24)
        f = rows / g.height
        if f < 1.0:
            g = g.resize((max(4, round(g.width * f)), rows),
                         rng.choice([Image.BILINEAR, Image.BOX, Image.LANCZOS]))
    elif rng.random() < 0.5:
        f = rng.uniform(0.5, 0.9)
        g = g.resize((max(4, round(g.width * f)), max(4, round(g.height * f))), Image.BILINEAR)
    if on("blur"):
        g = g.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    a = np.asarray(g)
    if on("bilevel"):
        t = _otsu(a) if rng.random() < 0.6 else rng.randint(100, 180)
        a = np.where(a > t, 255, 0).astype(np.uint8)
    elif on("dither") and a.shape[0] >= 20:  # dithered at 12 rows nothing is left to read
        a = np.asarray(Image.fromarray(a).convert("1").convert("L"))
    if on("noise"):
        a = np.clip(a + np.random.default_rng(rng.randint(0, 2**31)).normal(
            0, rng.uniform(2, 12), a.shape), 0, 255).astype(np.uint8)
    if on("jpeg_low"):
        a = _jpeg(a, rng.randint(10, 40))
    elif on("jpeg"):
        a = _jpeg(a, rng.randint(40, 85))
    g = Image.fromarray(np.ascontiguousarray(a))
    stretch = rng.uniform(0.85, 1.15)
    new_w = max(8, int(round(g.width * HEIGHT / g.height * stretch)))
    g = g.resize((new_w, HEIGHT), Image.BICUBIC if g.height < HEIGHT else Image.BILINEAR)
    return np.asarray(g, dtype=np.uint8)


if __name__ == "__main__":
    import sys

    from models.recipe.render import usable_fonts
    from models.recipe.textgen import TextSource

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    src, r = TextSource(5, real=True), random.Random(5)
    fonts = usable_fonts(False)
    rows = [render_real_line(src.line(), r.choice(fonts), r) for _ in range(n)]
    wmax = max(x.shape[1] for x in rows)
    canvas = np.full((HEIGHT * n, wmax), 255, np.uint8)
    for i, x in enumerate(rows):
        canvas[i * HEIGHT:(i + 1) * HEIGHT, : x.shape[1]] = x
    Image.fromarray(canvas).save("/tmp/real_lines.png")
    print("/tmp/real_lines.png", wmax)
