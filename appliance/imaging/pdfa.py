"""The stored result of a paper: a searchable PDF/A-2b, written object by object.

Why by hand: the archive format is narrow (Decree 30/2020/NĐ-CP Annex I: PDF 1.4 or
later, colour, 100 % scale; PDF/A so the copy stays readable for decades), and the few
objects it needs - one JPEG per page, an invisible text layer, an embedded font, an
sRGB output intent and XMP - are less code to write directly than to coax out of a
general PDF library, with every byte under our control (the PAdES signature that
records/pdfsign.py appends covers all of them).

What a page holds:

- the scanned image, drawn at exactly `pixels * 72 / dpi` points, so it prints at
  the size of the paper it came from (Circular 01/2023 Art. 8: a faithful copy);
- the OCR lines as invisible text (render mode 3) placed on their boxes and
  stretched to their width, so `pdftotext` and any viewer's search find the words
  where they are on the paper;
- on page 1 only, a band *above* the paper (the page is taller, never the image
  smaller) carrying the conversion mark of Decree 137/2024/NĐ-CP Art. 4 (converted
  from paper, when, by whom) and a QR code of the codes, with an empty box at the
  top left for the officer's visible signature (Circular 01/2023 Art. 8: top left of
  the first page). Nothing is ever drawn over the paper.

Text is set in DejaVu Sans (Debian's fonts-dejavu-core), which covers Vietnamese,
subset to the characters used (fontTools) and embedded as a CID font with a
ToUnicode map, as PDF/A requires of every font that draws or is searched.
"""

from __future__ import annotations

import hashlib
import io
import logging
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

from PIL import Image, ImageCms

from appliance.system.text import one_line

# Debian's fonts-dejavu-core (provisioning/apt-run.txt); the first one found is used.
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)
PRODUCER = "appliance (BHXH digitization)"
# Height of the band above page 1, in points (about 34 mm): five lines of the mark
# at 7.5 pt beside a QR code a phone reads from a print at arm's length.
BAND_HEIGHT = 96.0
# Page 1 is widened (never the image scaled) when the paper is narrower than this,
# so the mark, the signature box and the QR always fit beside each other.
MIN_BAND_WIDTH = 420.0
BAND_PAD = 6.0
# Width of the empty box left at the top left for the visible signature.
SIGNATURE_WIDTH = 170.0


class PdfaError(ValueError):
    """The pages cannot make a PDF (no page, a bad resolution, no usable font)."""


@dataclass(frozen=True)
class TextLine:
    """One OCR line: its text and its box in image pixels (left, top, right, bottom)."""

    text: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class PdfPage:
    """A scanned page, its resolution and what OCR read on it (possibly nothing)."""

    image: Image.Image
    dpi: int
    lines: Sequence[TextLine] = ()
    # OCR read the page turned this many degrees counter-clockwise (0, 90, 180, 270);
    # the line boxes are in that turned image and are turned back here.
    text_rotation: int = 0


@dataclass(frozen=True)
class MarkBand:
    """The conversion mark for page 1: already worded lines and the QR's payload."""

    lines: Sequence[str]
    qr_payload: str
    # Who signs and when, printed inside the signature box (the signature widget's
    # own appearance is only its frame, so no second font is embedded for it).
    signature_lines: Sequence[str] = ()

    def __post_init__(self) -> None:
        # Printed as the record says it (NFC, one line): see system/text.py.
        object.__setattr__(self, "lines", tuple(one_line(t) for t in self.lines))
        object.__setattr__(self, "signature_lines",
                           tuple(one_line(t) for t in self.signature_lines))


@dataclass(frozen=True)
class DocInfo:
    """Document metadata, written identically to the Info dictionary and to XMP
    (PDF/A requires the two to agree)."""

    title: str
    author: str
    subject: str = ""
    keywords: str = ""
    created: datetime | None = None

    def __post_init__(self) -> None:
        # One line, NFC, no control character or lone surrogate (system/text.py): a
        # form feed made the XMP not well-formed XML (pyhanko then refused to sign), a
        # CR came back from the XML as LF (XMP no longer equal to /Info, which PDF/A
        # requires), a surrogate failed in the writer.
        for name in ("title", "author", "subject", "keywords"):
            object.__setattr__(self, name, one_line(getattr(self, name)))


@dataclass(frozen=True)
class PdfResult:
    """The PDF and where page 1's signature box is, in PDF points (x0, y0, x1, y1)."""

    pdf: bytes
    signature_box: tuple[float, float, float, float] | None
    page_sizes: tuple[tuple[float, float], ...] = field(default=())


def find_font() -> Path:
    """The Unicode font embedded for the text layer and the mark."""
    for path in FONT_CANDIDATES:
        if path.is_file():
            return path
    raise PdfaError("DejaVu Sans not found: install Debian's fonts-dejavu-core")


@lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """An sRGB ICC profile made by LittleCMS (no file to ship or find).

    LittleCMS labels it ICC 4.4; PDF/A-2 refers to ICC.1:2004-10, i.e. version 4.2,
    and its tags (desc, cprt, wtpt, chad, XYZ, TRC, chrm) are all 4.2 tags, so the
    header says 4.2 (its profile ID is left zero, "not computed", so it stays true).
    """
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    if data[8] == 4:
        data[8:12] = b"\x04\x20\x00\x00"
    return bytes(data)


# -- the font -------------------------------------------------------------------------
@dataclass
class _Font:
    """A subset of DejaVu Sans: glyph ids, advance widths (1/1000 em) and the program."""

    program: bytes
    gid: dict[str, int]
    widths: dict[int, int]
    ascent: int
    descent: int
    cap_height: int
    bbox: tuple[int, int, int, int]
    tag: str

    def encode(self, text: str) -> tuple[bytes, float]:
        """Hex string of glyph ids for a text, and its width in 1/1000 em. Characters
        the font lacks are left out: PDF/A forbids drawing the .notdef glyph."""
        gids = [self.gid[c] for c in text if c in self.gid]
        width = float(sum(self.widths.get(g, 0) for g in gids))
        return b"".join(b"%04X" % g for g in gids), width


def _subset_font(text: str) -> _Font:
    from fontTools import subset, ttLib

    # fontTools reports each table and glyph at DEBUG/INFO: noise in the journal, and
    # the glyphs asked for are those of a citizen's text.
    logging.getLogger("fontTools").setLevel(logging.WARNING)

    path = find_font()
    # recalcTimestamp=False: the same text gives the same bytes (reproducible PDFs).
    font = ttLib.TTFont(str(path), recalcTimestamp=False)
    opts = subset.Options()
    opts.layout_features = []
    opts.hinting = False
    opts.notdef_outline = True
    opts.name_IDs = ["*"]
    opts.drop_tables += ["GSUB", "GPOS", "GDEF", "kern", "FFTM"]
    chars = sorted({c for c in text if c.isprintable()} | {" "})
    subsetter = subset.Subsetter(opts)
    subsetter.populate(unicodes=[ord(c) for c in chars])
    subsetter.subset(font)
    buf = io.BytesIO()
    font.save(buf)
    scale = 1000 / font["head"].unitsPerEm
    cmap = font.getBestCmap()
    gid = {c: font.getGlyphID(cmap[ord(c)]) for c in chars if ord(c) in cmap}
    gid = {c: g for c, g in gid.items() if g != 0}
    hmtx = font["hmtx"]
    order = font.getGlyphOrder()
    widths = {g: round(hmtx[order[g]][0] * scale) for g in set(gid.values())}
    head, hhea, os2 = font["head"], font["hhea"], font["OS/2"]
    cap = getattr(os2, "sCapHeight", 0) or round(hhea.ascent * 0.73)
    # A subset is named TAG+Name with a tag drawn from its content (ISO 32000 9.6.4).
    digest = hashlib.sha256("".join(chars).encode("utf-8")).digest()
    tag = "".join(chr(ord("A") + b % 26) for b in digest[:6])
    return _Font(buf.getvalue(), gid, widths, round(hhea.ascent * scale),
                 round(hhea.descent * scale), round(cap * scale),
                 (round(head.xMin * scale), round(head.yMin * scale),
                  round(head.xMax * scale), round(head.yMax * scale)), tag)


def _to_unicode(font: _Font) -> bytes:
    """The CMap that maps each glyph back to its character, for search and copy."""
    pairs = sorted({g: c for c, g in font.gid.items()}.items())
    out = [b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
           b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
           b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
           b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"]
    for start in range(0, len(pairs), 100):
        chunk = pairs[start:start + 100]
        out.append(b"%d beginbfchar\n" % len(chunk))
        for g, c in chunk:
            out.append(b"<%04X> <%s>\n" % (g, c.encode("utf-16-be").hex().upper().encode()))
        out.append(b"endbfchar\n")
    out.append(b"endcmap\nCMapName currentdict /CMapResource defineresource pop\nend\nend\n")
    return b"".join(out)


# -- PDF objects ----------------------------------------------------------------------
def _pdf_string(text: str) -> bytes:
    """A text string as PDF wants it for metadata: UTF-16BE with a BOM, in hex."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def _pdf_date(when: datetime) -> bytes:
    return when.strftime("(D:%Y%m%d%H%M%S+00'00')").encode("ascii")


def _num(value: float) -> bytes:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return (text if text not in ("", "-0") else "0").encode("ascii")


class _Writer:
    """Numbered objects, then a classic cross-reference table (PDF/A-2 accepts it)."""

    def __init__(self) -> None:
        self.objects: list[bytes | None] = []

    def reserve(self) -> int:
        self.objects.append(None)
        return len(self.objects)

    def set(self, num: int, body: bytes) -> int:
        self.objects[num - 1] = body
        return num

    def add(self, body: bytes) -> int:
        return self.set(self.reserve(), body)

    def stream(self, data: bytes, extra: bytes = b"", *, compress: bool = True) -> int:
        if compress:
            data = zlib.compress(data, 6)
            extra += b" /Filter /FlateDecode"
        return self.add(b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(data), extra, data))

    def write(self, root: int, info: int, file_id: bytes) -> bytes:
        # The binary comment line tells transfer tools the file is binary (PDF/A 6.1.2).
        out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for n, body in enumerate(self.objects, start=1):
            if body is None:
                raise PdfaError(f"object {n} was reserved but never written")
            offsets.append(len(out))
            out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objects) + 1)
        for off in offsets:
            out += b"%010d 00000 n \n" % off
        ident = file_id.hex().upper().encode()
        out += (b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>] >>\n"
                b"startxref\n%d\n%%%%EOF\n"
                % (len(self.objects) + 1, root, info, ident, ident, xref))
        return bytes(out)


def _xmp(info: DocInfo, when: datetime) -> bytes:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    description = (f"<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">"
                   f"{escape(info.subject)}</rdf:li></rdf:Alt></dc:description>"
                   if info.subject else "")
    keywords = f"<pdf:Keywords>{escape(info.keywords)}</pdf:Keywords>" if info.keywords else ""
    xml = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about=""
 xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"
 xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:xmp="http://ns.adobe.com/xap/1.0/"
 xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
<pdfaid:part>2</pdfaid:part>
<pdfaid:conformance>B</pdfaid:conformance>
<dc:format>application/pdf</dc:format>
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{escape(info.title)}</rdf:li></rdf:Alt></dc:title>
<dc:creator><rdf:Seq><rdf:li>{escape(info.author)}</rdf:li></rdf:Seq></dc:creator>
{description}
<xmp:CreateDate>{stamp}</xmp:CreateDate>
<xmp:ModifyDate>{stamp}</xmp:ModifyDate>
<xmp:MetadataDate>{stamp}</xmp:MetadataDate>
<xmp:CreatorTool>{PRODUCER}</xmp:CreatorTool>
<pdf:Producer>{PRODUCER}</pdf:Producer>
{keywords}
</rdf:Description>
</rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""
    return xml.encode("utf-8")


def _rgb(image: Image.Image) -> Image.Image:
    """Colour, as Decree 30/2020 asks, even for a page scanned in grey."""
    return image if image.mode == "RGB" else image.convert("RGB")


def _text_ops(font: _Font, text: str, x: float, y: float, size: float, *,
              invisible: bool, width: float | None = None) -> bytes:
    """One positioned run of text; `width` stretches it to fill a box (OCR lines)."""
    hexed, em_width = font.encode(text)
    if not hexed:
        return b""
    # Always set: horizontal scaling is graphics state and would carry over from the
    # stretched OCR lines drawn before (the mark came out 12 % too wide).
    scale = b"100 Tz "
    if width is not None and em_width > 0:
        natural = em_width * size / 1000
        scale = b"%s Tz " % _num(max(1.0, min(1000.0, 100 * width / natural)))
    mode = b"3 Tr " if invisible else b"0 Tr 0 0 0 rg "
    return (b"BT %s/F1 %s Tf %s1 0 0 1 %s %s Tm <%s> Tj ET\n"
            % (mode, _num(size), scale, _num(x), _num(y), hexed))


# For text read on a page turned by 90/180/270 degrees: the text matrix's x and up
# directions on the stored page, and how a point of the turned image maps back to it.
_TURNS = {
    0: ((1, 0, 0, 1), lambda x, y, w, h: (x, y)),
    90: ((0, -1, 1, 0), lambda x, y, w, h: (w - y, x)),
    180: ((-1, 0, 0, -1), lambda x, y, w, h: (w - x, h - y)),
    270: ((0, 1, -1, 0), lambda x, y, w, h: (y, h - x)),
}


def _ocr_line_ops(font: _Font, line: TextLine, rotation: int, size_px: tuple[int, int],
                  scale: float) -> bytes:
    """An OCR line as invisible text over its box: its height sets the font size and
    its width the horizontal stretch, so a search highlights the word on the paper."""
    text = unicodedata.normalize("NFC", line.text).strip()
    x0, y0, x1, y1 = line.box
    turn = _TURNS.get(rotation % 360)
    hexed, em_width = font.encode(text)
    if not hexed or em_width <= 0 or x1 <= x0 or y1 <= y0 or turn is None:
        return b""
    (a, b, c, d), back = turn
    height_px = y1 - y0
    size = height_px * scale / ((font.ascent - font.descent) / 1000)
    # Baseline start in the turned image's pixels, then on the stored page in points.
    px, py = back(x0, y1 + font.descent / 1000 * size / scale, *size_px)
    x, y = px * scale, size_px[1] * scale - py * scale
    stretch = max(1.0, min(1000.0, 100 * (x1 - x0) * scale / (em_width * size / 1000)))
    return (b"BT 3 Tr /F1 %s Tf %s Tz %d %d %d %d %s %s Tm <%s> Tj ET\n"
            % (_num(size), _num(stretch), a, b, c, d, _num(x), _num(y), hexed))


# Below this the printed mark cannot be read; a longer text is cut to fit instead.
MIN_TEXT_SIZE = 3.0
ELLIPSIS = "\u2026"


def _fit(font: _Font, text: str, size: float, width: float) -> tuple[str, float]:
    """The text and the largest size up to `size` at which it fits in `width` points;
    a text too long for MIN_TEXT_SIZE is cut, with an ellipsis, so that it never runs
    over the QR code or out of the signature box (the whole text is in the signature
    and the metadata)."""
    _, em = font.encode(text)
    if em <= 0 or em * size <= width * 1000:
        return text, size
    if em * MIN_TEXT_SIZE <= width * 1000:
        return text, width * 1000 / em
    low, high = 0, len(text)  # the longest cut that fits: text[:low] + ELLIPSIS
    while low < high:
        mid = (low + high + 1) // 2
        if font.encode(text[:mid].rstrip() + ELLIPSIS)[1] * MIN_TEXT_SIZE <= width * 1000:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + ELLIPSIS, MIN_TEXT_SIZE


def _qr_ops(payload: str, x: float, y: float, size: float) -> bytes:
    """The QR code as filled squares (vector, sharp at any print size)."""
    import segno

    qr = segno.make(payload, error="m", micro=False)
    matrix = [list(row) for row in qr.matrix]
    n = len(matrix) + 8  # 4 modules of quiet zone each side
    module = size / n
    out = [b"q 0 0 0 rg\n"]
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                out.append(b"%s %s %s %s re\n" % (
                    _num(x + (c + 4) * module), _num(y + size - (r + 5) * module),
                    _num(module), _num(module)))
    out.append(b"f Q\n")
    return b"".join(out)


def _band_ops(font: _Font, band: MarkBand, width: float, base: float,
              signature_width: float) -> tuple[bytes, tuple[float, float, float, float]]:
    """The mark band over page 1's paper (from `base` up): signature box, text, QR."""
    top = base + BAND_HEIGHT
    qr_size = BAND_HEIGHT - 2 * BAND_PAD
    sig = (BAND_PAD, base + BAND_PAD, BAND_PAD + signature_width, top - BAND_PAD)
    text_x = sig[2] + 2 * BAND_PAD
    text_w = width - text_x - qr_size - 2 * BAND_PAD
    # A hairline where the paper begins, drawn inside the band, never on the paper.
    out = [b"q 0.55 0.55 0.55 RG 0.5 w %s %s m %s %s l S Q\n"
           % (_num(0), _num(base + 1.5), _num(width), _num(base + 1.5))]
    sig_w = sig[2] - sig[0] - 2 * BAND_PAD
    for i, line in enumerate(band.signature_lines):
        line, size = _fit(font, line, 7.0, sig_w)
        y = sig[3] - BAND_PAD - (i + 1) * 10.0
        out.append(_text_ops(font, line, sig[0] + BAND_PAD, y, size, invisible=False))
    line_h = (BAND_HEIGHT - 2 * BAND_PAD) / max(5, len(band.lines))
    for i, line in enumerate(band.lines):
        line, size = _fit(font, line, min(7.5, line_h * 0.85), text_w)
        y = top - BAND_PAD - (i + 1) * line_h + line_h * 0.2
        out.append(_text_ops(font, line, text_x, y, size, invisible=False))
    out.append(_qr_ops(band.qr_payload, width - BAND_PAD - qr_size, base + BAND_PAD, qr_size))
    return b"".join(out), sig


def assemble_pdfa(pages: Sequence[PdfPage], info: DocInfo, *, band: MarkBand | None = None,
                  jpeg_quality: int = 90,
                  signature_width: float = SIGNATURE_WIDTH) -> PdfResult:
    """A PDF/A-2b of the pages in the order given, each image at 100 % scale.

    With `band`, page 1 is taller by BAND_HEIGHT points (and at least MIN_BAND_WIDTH
    wide), the extra strip above the paper holding the mark, the QR code and an empty
    signature box whose rectangle is returned for records/pdfsign.py. Same input and
    `info.created` give the same bytes, so a hash of the PDF can be recomputed.
    """
    if not pages:
        raise PdfaError("a PDF needs at least one page")
    for page in pages:
        if page.dpi <= 0:
            raise PdfaError(f"bad dpi: {page.dpi}")
    when = (info.created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    chars = "".join(unicodedata.normalize("NFC", ln.text) for p in pages for ln in p.lines)
    if band is not None:
        chars += "".join(band.lines) + "".join(band.signature_lines)
    font = _subset_font(chars)

    w = _Writer()
    catalog, page_tree, info_num = w.reserve(), w.reserve(), w.reserve()
    font_num = w.reserve()
    program = w.stream(font.program, b" /Length1 %d" % len(font.program))
    descriptor = w.add(
        b"<< /Type /FontDescriptor /FontName /%s+DejaVuSans /Flags 32 /FontBBox [%s] "
        b"/ItalicAngle 0 /Ascent %d /Descent %d /CapHeight %d /StemV 80 /FontFile2 %d 0 R >>"
        % (font.tag.encode(), b" ".join(b"%d" % v for v in font.bbox), font.ascent,
           font.descent, font.cap_height, program))
    widths = b" ".join(b"%d [%d]" % (g, wd) for g, wd in sorted(font.widths.items()))
    cid = w.add(
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /%s+DejaVuSans "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        b"/FontDescriptor %d 0 R /DW 1000 /W [%s] /CIDToGIDMap /Identity >>"
        % (font.tag.encode(), descriptor, widths))
    to_unicode = w.stream(_to_unicode(font))
    w.set(font_num, b"<< /Type /Font /Subtype /Type0 /BaseFont /%s+DejaVuSans "
          b"/Encoding /Identity-H /DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>"
          % (font.tag.encode(), cid, to_unicode))

    kids: list[int] = []
    sizes: list[tuple[float, float]] = []
    sig_box: tuple[float, float, float, float] | None = None
    for n, page in enumerate(pages):
        image = _rgb(page.image)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=jpeg_quality, dpi=(page.dpi, page.dpi))
        jpeg = buf.getvalue()
        xobj = w.add(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d "
                     b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode "
                     b"/Length %d >>\nstream\n%s\nendstream"
                     % (image.width, image.height, len(jpeg), jpeg))
        scale = 72 / page.dpi
        img_w, img_h = image.width * scale, image.height * scale
        page_w, page_h = img_w, img_h
        ops = [b"q %s 0 0 %s 0 0 cm /Im0 Do Q\n" % (_num(img_w), _num(img_h))]
        for line in page.lines:
            ops.append(_ocr_line_ops(font, line, page.text_rotation, image.size, scale))
        if n == 0 and band is not None:
            page_w = max(img_w, MIN_BAND_WIDTH)
            page_h = img_h + BAND_HEIGHT
            band_ops, sig_box = _band_ops(font, band, page_w, img_h, signature_width)
            ops.append(band_ops)
        content = w.stream(b"".join(ops))
        kids.append(w.add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %s %s] /Contents %d 0 R "
            b"/Resources << /XObject << /Im0 %d 0 R >> /Font << /F1 %d 0 R >> >> >>"
            % (page_tree, _num(page_w), _num(page_h), content, xobj, font_num)))
        sizes.append((page_w, page_h))
    w.set(page_tree, b"<< /Type /Pages /Kids [%s] /Count %d >>"
          % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)))

    icc = srgb_profile()
    profile = w.stream(icc, b" /N 3")
    intent = w.add(b"<< /Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier "
                   b"(sRGB IEC61966-2.1) /Info (sRGB IEC61966-2.1) /RegistryName "
                   b"(http://www.color.org) /DestOutputProfile %d 0 R >>" % profile)
    # XMP must stay unfiltered so archive tools can read it without a PDF parser.
    metadata = w.stream(_xmp(info, when), b" /Type /Metadata /Subtype /XML", compress=False)
    w.set(catalog, b"<< /Type /Catalog /Pages %d 0 R /Metadata %d 0 R /OutputIntents "
          b"[%d 0 R] /Lang (vi-VN) >>" % (page_tree, metadata, intent))
    # No /Producer here: XMP carries it, and pyhanko, signing later, sets the Info
    # dictionary's /Producer to exactly what it writes into XMP only when the Info
    # dictionary has none (PDF/A wants the two to agree).
    entries = [b"/Title " + _pdf_string(info.title), b"/Author " + _pdf_string(info.author),
               b"/Creator " + _pdf_string(PRODUCER),
               b"/CreationDate " + _pdf_date(when), b"/ModDate " + _pdf_date(when)]
    if info.subject:
        entries.append(b"/Subject " + _pdf_string(info.subject))
    if info.keywords:
        entries.append(b"/Keywords " + _pdf_string(info.keywords))
    w.set(info_num, b"<< " + b" ".join(entries) + b" >>")
    digest = hashlib.md5(b"".join(b or b"" for b in w.objects), usedforsecurity=False).digest()
    return PdfResult(w.write(catalog, info_num, digest), sig_box, tuple(sizes))
