"""Checks and outputs for scanned pages: blank, skew, exposure, cut-off edges and
hand-or-lid checks, PNG, thumbnails, PDF.

Circular 01/2023/TT-VPCP Art. 8 wants as many images as physical pages, in the
original order, so nothing here ever drops or reorders a page: a blank page is
*flagged* for the officer (NAPS2 and OCRmyPDF users lose real pages to automatic
blank removal), and the PDF keeps the order it is given. Decree 30/2020/NĐ-CP,
Annex I wants PDF 1.4 or later, in colour, at 100 % scale: each PDF page is sized
from the scan resolution, so it prints at the size of the paper it came from.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from PIL import Image

from appliance.imaging.flags import PageFlag, is_skewed

# Measured on 200 dpi A4: a filled form covers 4-5 %, one short typed line ~0.08 %,
# 3,000 specks of dust on recycled paper ~0.02 %, sensor noise and shading 0 %.
DEFAULT_BLANK_THRESHOLD = 0.0003
# Scanner lids and feeders leave dark edges: they are not content.
DEFAULT_MARGIN_FRACTION = 0.03
# How much darker than the paper a pixel must be to count as ink (0-255 scale).
# Relative to the paper, so grey recycled paper is not "content" everywhere.
INK_CONTRAST = 80
_ANALYSIS_WIDTH = 800

# The scan-time flags below (PageFlag) were set against the 36 pages of the real-scan
# corpus (tests/corpus/real: government letters, forms, tables, two phone photos; 75 to
# 300 dpi; colour, grey and bilevel), which must raise none of them, and the same pages
# degraded, which must raise the right one (tests/imaging/test_page_flags.py). The
# margins quoted are between the worst real page and the limit.
#
# Too dark: the paper's own level (90th percentile of grey, inside the margins) is this
# low. Real scans: 234-255; a phone photo of a letter under room light: 170.
DARK_PAPER_LEVEL = 135
# Too light: even the darkest 0.1 % of the page (at the analysis size) is paler than
# this, while there is clearly something printed on it (FAINT_CONTENT_SHARE of the
# page at least FAINT_CONTRAST below the paper). Real pages: darkest at most 103 (a
# pale inkjet print); a blank or one-line page is not "too light", it is blank.
LIGHT_INK_LEVEL = 150
FAINT_CONTRAST = 25
FAINT_CONTENT_SHARE = 0.003
# Cut-off: letters cut through along one edge of the image: ink (EDGE_CONTRAST below
# the paper) touching the outermost pixels in at least CUT_OFF_RUNS separate short runs
# covering at least CUT_OFF_EDGE_SHARE of the edge (long runs are a feeder's dark edge
# or a table rule, not text). The number of runs is what tells a cut through lines of
# text (18-55 on the corpus cropped through its text) from text that merely comes close
# to the border (at most 9 on real pages); the one real page with more (27) is a web
# crop whose last line is visibly shaved, a true cut.
EDGE_CONTRAST = 60
CUT_OFF_RUNS = 12
CUT_OFF_EDGE_SHARE = 0.03
_EDGE_WIDTH = 400  # analysis width for the edge check: 2 px there is ~1 mm of A4
_EDGE_DEPTH = 2
# Hand or lid: the share of the page (in tiles of ~5 mm) that is skin-toned or much
# darker than the paper (an open lid shows the room or the lid's black underside).
# Real pages: at most 0.075 (tiles mixing a red seal with white paper look pinkish).
HAND_OR_LID_SHARE = 0.25
_TILES_ACROSS = 40
# Incomplete: a JPEG page cut off mid-transfer is decoded by sane-airscan (libjpeg) with
# no error, the missing part filled with flat mid-grey: every coefficient left at zero is
# exactly 128 in every channel. Paper scanned by a sensor never gives a full-width band
# of one exact value (noise, white margins), so a band of at least INCOMPLETE_MIN_ROWS
# rows (and INCOMPLETE_MIN_SHARE of the page: a thick grey rule in a form is neither
# that tall nor that wide) of exactly that value over INCOMPLETE_MIN_WIDTH of the width
# at the bottom is a cut-off transfer.
INCOMPLETE_FILL = 128
INCOMPLETE_MIN_ROWS = 16
INCOMPLETE_MIN_SHARE = 0.005
INCOMPLETE_MIN_WIDTH = 0.9
# JPEG (the PDF's page format) cannot hold a side longer than this (libjpeg's limit).
JPEG_MAX_SIDE = 65500
# Resolutions outside this range are not ones a page was ever scanned at: metadata that
# says so is ignored, an argument that says so is refused (a PNG's pHYs overflows near
# 1e8 dpi, and a PDF page sized from 0 or a negative dpi makes no sense).
MIN_DPI = 1
MAX_DPI = 100_000
# Modes whose pixels are 16-bit grey (0..65535): Pillow's convert() clips them at 255,
# which turns a whole 16-bit page white.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass(frozen=True)
class PageCheck:
    """What the kiosk shows next to a page so the officer can decide about it."""

    width: int
    height: int
    ink_coverage: float
    blank: bool
    skew_degrees: float
    flags: tuple[PageFlag, ...] = ()

    @property
    def skewed(self) -> bool:
        """Crooked enough to show the officer; the page is kept as scanned either way."""
        return is_skewed(self.skew_degrees)


def _require_pixels(img: Image.Image) -> None:
    """Refuse an image with no pixels: every check divides by its size, and a page with
    no rows or columns is no page to keep."""
    if img.width < 1 or img.height < 1:
        raise ValueError(f"an empty image ({img.width}x{img.height} px) is not a page")


def _wide_grey_to_l(img: Image.Image) -> Image.Image:
    """An 8-bit grey copy of a 16-bit or 32-bit grey page, on a fixed scale.

    The scale is the one the mode holds, never a stretch from this page's own darkest
    to lightest pixel (that would change the look of a normal page and make a blank one
    all noise). 16-bit modes: 0..65535. "I" and "F" have no fixed white: Pillow's own
    convention (convert("L")) reads them on the 8-bit scale, while 16-bit scans reach
    them through older decoders and conversions; so values up to 255 are read on the
    8-bit scale, up to 65535 on the 16-bit one, and anything else is refused.
    """
    pixels = np.asarray(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        scale = 65535.0
    else:
        if not np.isfinite(pixels).all():
            raise ValueError(f"a {img.mode} page with non-finite pixel values is not a page")
        low, high = float(pixels.min()), float(pixels.max())
        if low < 0 or high > 65535:
            raise ValueError(f"a {img.mode} page with pixel values {low:g}..{high:g} has no "
                             "known white level (0..255 or 0..65535 expected)")
        scale = 255.0 if high <= 255 else 65535.0
    grey = np.rint(pixels.astype(np.float64) * (255.0 / scale)).astype(np.uint8)
    return Image.fromarray(grey, "L")


def page_image(img: Image.Image) -> Image.Image:
    """The page as 8-bit "RGB" or "L", as it would look on white paper.

    `img` itself when it already is (the scanner's pages: no copy). Otherwise:
    16/32-bit grey scaled to 8 bits (`_wide_grey_to_l`; convert() would clip it to
    white), and anything with transparency laid over white paper (convert() would drop
    the alpha and show what lies under it, often black). Raises ValueError for an
    image with no pixels or grey values with no known scale.
    """
    _require_pixels(img)
    if img.mode in ("RGB", "L") and "transparency" not in img.info:
        return img
    if img.mode in _SIXTEEN_BIT_MODES or img.mode in ("I", "F"):
        return _wide_grey_to_l(img)
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        if rgba.getchannel("A").getextrema() != (255, 255):
            paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgba = Image.alpha_composite(paper, rgba)
        return rgba.convert("RGB")
    return img.convert("RGB")


def _analysis_gray(img: Image.Image, margin_fraction: float) -> np.ndarray:
    """Grey, margin-trimmed, downscaled copy: the checks look at shapes the size of
    letters, and averaging while shrinking also smooths away sensor speckle."""
    gray = img.convert("L")
    width, height = gray.size
    mx, my = int(width * margin_fraction), int(height * margin_fraction)
    if width - 2 * mx > 0 and height - 2 * my > 0:
        gray = gray.crop((mx, my, width - mx, height - my))
    if gray.width > _ANALYSIS_WIDTH:
        factor = gray.width / _ANALYSIS_WIDTH
        gray = gray.resize((_ANALYSIS_WIDTH, max(1, round(gray.height / factor))),
                           Image.Resampling.BOX)
    return np.asarray(gray)


def _ink_mask(pixels: np.ndarray) -> np.ndarray:
    paper = float(np.percentile(pixels, 90)) if pixels.size else 255.0
    return pixels < paper - INK_CONTRAST


def ink_coverage(img: Image.Image, *, margin_fraction: float = DEFAULT_MARGIN_FRACTION) -> float:
    """Share of the page (inside the margins) that is clearly darker than the paper."""
    mask = _ink_mask(_analysis_gray(img, margin_fraction))
    return float(mask.mean()) if mask.size else 0.0


def is_blank(img: Image.Image, *, threshold: float = DEFAULT_BLANK_THRESHOLD,
             margin_fraction: float = DEFAULT_MARGIN_FRACTION) -> bool:
    """True if the page looks empty. The caller flags such a page; it never drops it,
    because a faint pencil note or coloured paper can fool any threshold."""
    return ink_coverage(img, margin_fraction=margin_fraction) < threshold


def estimate_skew(img: Image.Image, *, max_degrees: float = 3.0,
                  margin_fraction: float = DEFAULT_MARGIN_FRACTION) -> float:
    """Skew of the text lines in degrees, counter-clockwise positive (Pillow's
    convention: `img.rotate(-skew)` straightens the page). 0.0 when the page has
    too little ink to tell.

    A projection profile: ink pixels are projected along each candidate angle and
    the angle whose row histogram is sharpest wins. Projecting points instead of
    rotating the image keeps this to a few milliseconds on a Pi.
    """
    pixels = _analysis_gray(img, margin_fraction)
    ys, xs = np.nonzero(_ink_mask(pixels))
    if len(xs) < 200:
        return 0.0
    xs_f = xs.astype(np.float64)
    ys_f = ys.astype(np.float64)
    offset = int(math.ceil(pixels.shape[1] * math.tan(math.radians(max_degrees)))) + 1

    def sharpness(angle: float) -> float:
        rows = np.rint(ys_f + xs_f * math.tan(math.radians(angle))).astype(np.int64) + offset
        hist = np.bincount(rows)
        return float(np.dot(hist, hist))

    best = 0.0
    step = 0.25
    candidates = np.arange(-max_degrees, max_degrees + step / 2, step)
    best = max(candidates, key=sharpness)
    for _ in range(3):
        step /= 5
        candidates = np.arange(best - 2.5 * step * 5, best + 2.5 * step * 5 + step / 2, step)
        best = max(candidates, key=sharpness)
    return round(float(best), 2)


def _exposure_flags(pixels: np.ndarray) -> list[PageFlag]:
    """Too dark / too light, from the margin-trimmed analysis grey."""
    if not pixels.size:
        return []
    paper = float(np.percentile(pixels, 90))
    if paper < DARK_PAPER_LEVEL:
        return [PageFlag.TOO_DARK]
    darkest = float(np.percentile(pixels, 0.1))
    faint = float((pixels < paper - FAINT_CONTRAST).mean())
    if darkest > LIGHT_INK_LEVEL and faint >= FAINT_CONTENT_SHARE:
        return [PageFlag.TOO_LIGHT]
    return []


def _edge_cut(band: np.ndarray) -> bool:
    """Whether one edge's ink profile looks like letters cut through: enough short runs
    (long ones are borders and rules) covering enough of the edge."""
    if not band.size:
        return False
    marks = np.diff(np.concatenate(([0], band.astype(np.int8), [0])))
    lengths = np.flatnonzero(marks == -1) - np.flatnonzero(marks == 1)
    short = lengths[lengths <= max(3, 0.03 * band.size)]
    return len(short) >= CUT_OFF_RUNS and short.sum() / band.size >= CUT_OFF_EDGE_SHARE


def cut_off_edges(small: np.ndarray) -> list[str]:
    """Edges ("top", "bottom", "left", "right") that text runs into, from a grey copy
    `_EDGE_WIDTH` pixels wide, not trimmed: the border is what this check looks at."""
    if small.shape[0] <= 2 * _EDGE_DEPTH or small.shape[1] <= 2 * _EDGE_DEPTH:
        return []
    ink = small < float(np.percentile(small, 90)) - EDGE_CONTRAST
    d = _EDGE_DEPTH
    bands = {"top": ink[:d].any(0), "bottom": ink[-d:].any(0),
             "left": ink[:, :d].any(1), "right": ink[:, -d:].any(1)}
    return [name for name, band in bands.items() if _edge_cut(band)]


def hand_or_lid_share(rgb_small: np.ndarray, paper: float) -> float:
    """Share of ~5 mm tiles that are skin-toned or far darker than the paper.

    Skin by its chroma (YCbCr, the usual skin box, narrowed so cream paper and red
    seals stay out); dark as under 35 % of the paper's level and under 70, so a dim
    scan (paper itself grey) is "too dark", not a lid.
    """
    h, w = rgb_small.shape[:2]
    if not h or not w:
        return 0.0
    # Never more tiles than pixels either way: a narrow strip's grid sized by its aspect
    # ratio alone would be upsampled to millions of rows (1x20000 px: ~850 MB).
    across = min(_TILES_ACROSS, w)
    down = min(h, max(1, round(h * across / w)))
    tiles = np.asarray(Image.fromarray(rgb_small).resize((across, down),
                                                          Image.Resampling.BOX), np.float32)
    r, g, b = tiles[..., 0], tiles[..., 1], tiles[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    skin = (cr > 138) & (cr < 175) & (cb > 80) & (cb < 122) & (y > 60) & (y < 235)
    dark = y < min(70.0, 0.35 * paper)
    return float((skin | dark).mean())


def _exact(pixels: np.ndarray, value: int) -> np.ndarray:
    """Where every channel of a pixel is exactly `value` (rows x columns)."""
    same = pixels == value
    return same.all(axis=2) if same.ndim == 3 else same


def incomplete_rows(img: Image.Image) -> int:
    """How many rows at the bottom of the page are the decoder's flat grey fill of a
    transfer cut off mid-page (see INCOMPLETE_FILL); 0 when fewer than the minimum.

    sane-airscan fits the decoded image into the window asked for, padding it with white
    where it is a pixel or so smaller (1653 px of image in a 1654 px window at 200 dpi):
    so the fill may stop short of an edge column, and up to a band's height of white
    rows may lie under it. Nothing else is tolerated: the band is exact fill over one
    run of at least INCOMPLETE_MIN_WIDTH of the columns, exact white outside it.

    A normal page costs one crop of the bottom two bands; the whole page is read only
    to measure a band found. Exact values, at full resolution: downscaling would blur
    the band's edge and let a scan's noise through.
    """
    img = page_image(img)
    width, height = img.size
    least = max(INCOMPLETE_MIN_ROWS, math.ceil(height * INCOMPLETE_MIN_SHARE))
    if height < least:
        return 0
    bottom = np.asarray(img.crop((0, max(0, height - 2 * least), width, height)))
    white_rows = _exact(bottom, 255).all(axis=1)
    pad = len(white_rows) - (int(np.flatnonzero(~white_rows)[-1]) + 1
                             if (~white_rows).any() else 0)
    if pad > len(white_rows) - least:
        return 0
    band = bottom[len(white_rows) - pad - least:len(white_rows) - pad]
    fill_cols = _exact(band, INCOMPLETE_FILL).all(axis=0)
    if not (fill_cols | _exact(band, 255).all(axis=0)).all():
        return 0
    cols = np.flatnonzero(fill_cols)
    if cols.size < INCOMPLETE_MIN_WIDTH * width or cols[-1] - cols[0] + 1 != cols.size:
        return 0
    above = np.asarray(img.crop((int(cols[0]), 0, int(cols[-1]) + 1, height - pad)))
    filled = _exact(above, INCOMPLETE_FILL).all(axis=1)
    return len(filled) - (int(np.flatnonzero(~filled)[-1]) + 1 if (~filled).any() else 0)


def page_flags(img: Image.Image, trimmed: np.ndarray | None = None) -> tuple[PageFlag, ...]:
    """The scan-time flags of a page (PageFlag), on downscaled copies only (but for the
    exact bottom band of `incomplete_rows`): a few milliseconds on a 300 dpi A4 page.
    `trimmed` is the margin-trimmed analysis grey when the caller already has it."""
    img = page_image(img)
    if trimmed is None:
        trimmed = _analysis_gray(img, DEFAULT_MARGIN_FRACTION)
    flags = [PageFlag.INCOMPLETE] if incomplete_rows(img) else []
    flags += _exposure_flags(trimmed)
    rgb = img.convert("RGB")
    if rgb.width > _EDGE_WIDTH:
        rgb = rgb.resize((_EDGE_WIDTH, max(1, round(rgb.height * _EDGE_WIDTH / rgb.width))),
                         Image.Resampling.BOX)
    rgb_small = np.asarray(rgb)
    grey_small = np.asarray(rgb.convert("L"))
    if cut_off_edges(grey_small):
        flags.append(PageFlag.CUT_OFF)
    paper = float(np.percentile(trimmed, 90)) if trimmed.size else 255.0
    if hand_or_lid_share(rgb_small, paper) >= HAND_OR_LID_SHARE:
        flags.append(PageFlag.HAND_OR_LID)
    return tuple(flags)


def check_page(img: Image.Image, *, threshold: float = DEFAULT_BLANK_THRESHOLD) -> PageCheck:
    """All page checks in one pass, for the worker to store next to the page. Raises
    ValueError for an image `page_image` refuses (no pixels, grey of no known scale)."""
    img = page_image(img)
    trimmed = _analysis_gray(img, DEFAULT_MARGIN_FRACTION)
    mask = _ink_mask(trimmed)
    coverage = float(mask.mean()) if mask.size else 0.0
    skew = estimate_skew(img) if coverage >= threshold else 0.0
    return PageCheck(width=img.width, height=img.height, ink_coverage=coverage,
                     blank=coverage < threshold, skew_degrees=skew,
                     flags=page_flags(img, trimmed))


def _dpi_of(img: Image.Image, dpi: int | None) -> int | None:
    """The resolution to record: `dpi` when given (refused with ValueError outside
    MIN_DPI..MAX_DPI), else the image's own metadata when it is a plausible number,
    else None. Metadata comes from whatever made the file: a bogus value (0, negative,
    1e9, NaN, not a number at all) is ignored rather than failing or overflowing the
    PNG writer."""
    if dpi is not None:
        if not MIN_DPI <= dpi <= MAX_DPI:
            raise ValueError(f"bad dpi: {dpi} (expected {MIN_DPI}..{MAX_DPI})")
        return dpi
    info = img.info.get("dpi")
    try:
        value = float(info[0]) if info else math.nan  # type: ignore[index]
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    if not math.isfinite(value) or not MIN_DPI <= round(value) <= MAX_DPI:
        return None
    return round(value)


def encode_png(img: Image.Image, *, dpi: int | None = None, compress_level: int = 6) -> bytes:
    """Lossless master copy of a page, carrying its resolution so any later PDF or
    print comes out at the original size."""
    buf = io.BytesIO()
    params: dict[str, object] = {"compress_level": compress_level}
    resolved = _dpi_of(img, dpi)
    if resolved:
        params["dpi"] = (resolved, resolved)
    img.save(buf, "PNG", **params)
    return buf.getvalue()


def thumbnail_jpeg(img: Image.Image, max_px: int = 320, *, quality: int = 80) -> bytes:
    """Small preview for the touch screen; the longer side is at most `max_px`."""
    if max_px < 1:
        raise ValueError("max_px must be positive")
    thumb = page_image(img)
    thumb = thumb.copy() if thumb is img else thumb
    thumb.thumbnail((max_px, max_px), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def assemble_pdf(images: Sequence[Image.Image], dpi: int | Sequence[int], title: str,
                 author: str, *, subject: str = "", jpeg_quality: int = 90,
                 created: datetime | None = None) -> bytes:
    """One PDF page per image, in the order given, each page sized `px * 72 / dpi`
    points so it prints at 100 % (Decree 30/2020). Pages are stored as colour JPEG
    at a high quality: lossless pages would make a 10-page dossier ~60 MB, too big
    to forward over a kiosk's uplink, while the PNG masters stay on the device.

    `dpi` is one for all pages or each page's own. Pillow writes one resolution per
    file, so a page scanned at another resolution than the first (an ID card at 300
    dpi continued into a form at 200) is resampled to the first's: before, it came
    out at the wrong size on paper. This is the working PDF the screens show; the
    signed PDF/A (records/result.py) keeps each master's own pixels and resolution.

    `created` fixes the metadata date, which makes the bytes reproducible for the
    same input (useful when a hash of the PDF is signed or compared).
    """
    if not images:
        raise ValueError("a PDF needs at least one page")
    dpis = [dpi] * len(images) if isinstance(dpi, int) else list(dpi)
    if len(dpis) != len(images) or any(d <= 0 for d in dpis):
        raise ValueError(f"bad dpi: {dpi}")
    dpi = dpis[0]
    images = [im if d == dpi else im.resize(
        (max(1, round(im.width * dpi / d)), max(1, round(im.height * dpi / d))),
        Image.Resampling.LANCZOS) for im, d in zip(images, dpis, strict=True)]
    for number, im in enumerate(images, 1):
        # Checked first: past these Pillow's JPEG encoder fails with an opaque
        # OSError("broken data stream") half-way through the file.
        if not (1 <= im.width <= JPEG_MAX_SIDE and 1 <= im.height <= JPEG_MAX_SIDE):
            raise ValueError(f"page {number} is {im.width}x{im.height} px: a PDF page "
                             f"(JPEG) must be 1 to {JPEG_MAX_SIDE} px on each side")
    pages = [im if im.mode == "RGB" else page_image(im).convert("RGB") for im in images]
    when = (created or datetime.now(UTC)).astimezone(UTC).timetuple()
    buf = io.BytesIO()
    first, rest = pages[0], pages[1:]
    first.save(
        buf,
        "PDF",
        save_all=True,
        append_images=rest,
        resolution=float(dpi),
        dpi=(dpi, dpi),
        quality=jpeg_quality,
        title=title,
        author=author,
        subject=subject or None,
        creator="appliance (BHXH digitization)",
        producer="appliance (BHXH digitization)",
        creationDate=when,
        modDate=when,
    )
    return pillow_pdf(buf.getvalue())


# Pillow's PDF writer numbers the free head of the xref table "65536 f" (the largest
# generation is 65535): strict readers, pyhanko's among them, refuse such a file.
_PILLOW_FREE_HEAD = b"\nxref\n0 "
_BAD_GENERATION, _GOOD_GENERATION = b"0000000000 65536 f", b"0000000000 65535 f"


def pillow_pdf(data: bytes) -> bytes:
    """A PDF written by Pillow, with its xref table's first entry made valid (same
    length: no offset moves)."""
    at = data.rfind(_PILLOW_FREE_HEAD)
    if at < 0:
        return data
    entry = data.find(b"\n", at + len(_PILLOW_FREE_HEAD)) + 1
    if data[entry:entry + len(_BAD_GENERATION)] != _BAD_GENERATION:
        return data
    return data[:entry] + _GOOD_GENERATION + data[entry + len(_BAD_GENERATION):]
