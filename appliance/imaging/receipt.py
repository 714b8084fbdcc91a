"""The citizen's receipt as a one-page PDF for the office printer.

The kiosk browser never prints (its policy turns printing off, so no print dialog can
ever open over the kiosk); the web service renders this page and hands it to CUPS.
The dossier code is printed as text and as a QR code (made here: the kiosk is
offline), in a font with every Vietnamese letter. Pure: texts in, PDF bytes out.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from appliance.imaging.pages import pillow_pdf

DPI = 150
PAGE_MM = (105, 148)  # A6 portrait: a receipt, on any office printer's paper tray
MARGIN_MM = 7
# The QR's side: its payload (records/receipt.py) is some 150 characters, about 53
# modules with the quiet zone: 0.6 mm each, clear on any office printer.
QR_MM = 32
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(FONT_DIR / name), size)
    except OSError:  # no DejaVu: Pillow's own font (with Vietnamese since Pillow 10.1)
        return ImageFont.load_default(size)


def _px(mm: float) -> int:
    return round(mm / 25.4 * DPI)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if draw.textlength(candidate, font=font) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def qr_image(text: str, box_px: int) -> Image.Image:
    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="png", scale=10, border=2)
    buffer.seek(0)
    qr = Image.open(buffer).convert("L")
    return qr.resize((box_px, box_px), Image.Resampling.NEAREST)


def receipt_pdf(*, agency: str, title: str, code_label: str, code: str,
                lines: Sequence[str], footer: str = "", qr: str | None = None) -> bytes:
    """One A6 page: the QR code at the top left (Circular 01/2023: what `qr` says,
    records/receipt.py; the code alone if not given) with the agency and the title
    beside it, then the code in large type, the lines and a footer."""
    width, height = _px(PAGE_MM[0]), _px(PAGE_MM[1])
    margin = _px(MARGIN_MM)
    text_width = width - 2 * margin
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    small, normal = _font(20), _font(24)
    box = min(_px(QR_MM), height // 3)
    page.paste(qr_image(qr or code, box), (margin, margin))
    beside_x = margin + box + _px(3)
    beside_width = width - margin - beside_x
    y = margin
    for text, font, gap in ((title, _font(26, True), 8), (agency, _font(20, bold=True), 4)):
        for line in _wrap(draw, text, font, beside_width):
            if y + int(getattr(font, "size", 24)) > margin + box:
                break  # beside the QR only; the code below says what matters
            draw.text((beside_x, y), line, font=font, fill=0)
            y += int(getattr(font, "size", 24)) + gap
    y = margin + box + _px(3)
    draw.text((margin, y), code_label, font=small, fill=0)
    y += 28
    code_font = _font(34, bold=True)
    size = 34
    while draw.textlength(code, font=code_font) > text_width and size > 16:
        size -= 2
        code_font = _font(size, bold=True)
    draw.text((margin, y), code, font=code_font, fill=0)
    y += size + 14
    for text in lines:
        for line in _wrap(draw, text, normal, text_width):
            if y + 30 > height - margin - 30:
                break
            draw.text((margin, y), line, font=normal, fill=0)
            y += 30
        y += 6
    if footer:
        draw.text((margin, height - margin - 22), footer, font=small, fill=0)
    out = io.BytesIO()
    page.save(out, "PDF", resolution=DPI, title=f"{title} {code}", author=agency)
    return pillow_pdf(out.getvalue())
