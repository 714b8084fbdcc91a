"""A read form page made as the worker makes it, for the officer desk's tests.

A page image with a form's lines drawn where their boxes say, that page's OCR stored
(lines with boxes and their least sure character), the fields extracted from them by
appliance.extraction as the worker's step 4 does, the PDF built, the dossier
submitted: the officer's screens then show exactly what a real scan leaves.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from appliance.extraction.fields import extract_pages
from appliance.imaging.pages import assemble_pdf
from appliance.ocr.engine import PageText, TextLine
from appliance.records import dossiers
from appliance.records import pages as page_store
from appliance.store.files import FileStore
from appliance.system.config import Config

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")  # boxes split by characters
DPI = 150
TITLE = "Tờ khai tham gia, điều chỉnh thông tin BHXH, BHYT"
# What OCR read on the form, line by line, with each line's box and least sure
# character: a name without its marks (uncertain), a CCCD one digit short (invalid).
LINES = [
    ("TỜ KHAI THAM GIA, ĐIỀU CHỈNH THÔNG TIN BẢO HIỂM XÃ HỘI, BẢO HIỂM Y TẾ",
     (60, 90, 1180, 130), 0.95),
    ("Họ và tên: NGUYEN THI HOI", (80, 260, 760, 300), 0.62),
    ("Ngày, tháng, năm sinh: 12/03/1985", (80, 380, 860, 420), 0.95),
    ("Số CCCD/ĐDCN/Hộ chiếu: 00120300456", (80, 500, 980, 540), 0.95),
]
OCR_NAME = "NGUYEN THI HOI"
NAME = unicodedata.normalize("NFC", "NGUYỄN THỊ HỘI")


def fitted(text: str, width: int, height: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """The largest font that fills the line's box, so each box frames its text."""
    if not FONT.exists():
        return ImageFont.load_default()
    size = height
    while size > 8 and ImageFont.truetype(str(FONT), size).getlength(text) > width:
        size -= 1
    return ImageFont.truetype(str(FONT), size)


def form_page(lines_in: list[tuple[str, tuple[int, int, int, int], float]] | None = None,
              size: tuple[int, int] = (1240, 1754)) -> tuple[Image.Image, PageText]:
    """An A4 page at 150 dpi with the lines drawn where their boxes say."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    lines = []
    for text, box, least in LINES if lines_in is None else lines_in:
        font = fitted(text, box[2] - box[0], box[3] - box[1])
        draw.text((box[0], box[1]), text, fill="black", font=font)
        lines.append(TextLine(text, box, 0.95, (least,)))
    return image, PageText(0.2, tuple(lines))


def review_dossier(conn: sqlite3.Connection, config: Config,
                   two_pages: bool = False) -> tuple[int, int]:
    """A submitted dossier of one read paper, made as the worker makes it; (dossier,
    paper). With `two_pages` the CCCD line is on a second page, of another size."""
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    files = FileStore(config.paths.files)
    if two_pages:
        made = [form_page(LINES[:3]), form_page([(LINES[3][0], (60, 200, 900, 240), 0.95)],
                                                (1000, 1400))]
    else:
        made = [form_page()]
    paper_id = None
    for image, text in made:
        stored = page_store.store_page(conn, files, dossier_id, paper_id, image, TITLE,
                                       dpi=DPI)
        paper_id = stored.paper_id
        page_store.set_page_text(conn, stored.page_id, text)
    assert paper_id is not None
    fields = extract_pages([text.lines for _, text in made]).as_dict()  # the worker's step 4
    pdf = assemble_pdf([image for image, _ in made], DPI, title=TITLE,
                       author=config.device.agency_name)
    page_store.store_paper_pdf(conn, files, paper_id, pdf, fields)
    dossiers.submit(conn, dossier_id)
    return dossier_id, paper_id
