"""QR codes and barcodes on a paper's pages, and the CCCD chip card's QR checked
against what OCR read.

Why: the QR code on the back of a chip-based CCCD carries the card's own data
(number, old CMND number, full name, date of birth, sex, address, issue date) with
error correction, so it is a second reading of the same values that does not suffer
from OCR's misread diacritics. It is a second opinion, never the authority: a QR
printed on a photocopy may belong to another card. Hence, field by field:

- QR and OCR agree: the value is confirmed (flag `qr.agrees`, confidence raised, an
  OCR "uncertain" only because of unsure characters becomes valid);
- they disagree: the OCR value stays, flagged `qr.mismatch` with the QR's reading as
  the reason, for the officer to look at against the card;
- OCR found nothing valid (missing, a problem, or the paper has the field and OCR
  did not see it): the QR's value fills it, `source` "qr", flag `qr.filled`, the
  OCR's raw reading kept.

A QR that is not a CCCD QR (a URL, the appliance's own result QR, a barcode) is
returned as an unparsed code flagged `qr.not_cccd`; a CCCD QR whose values fail the
validators (31/02 as a date, an 11-digit number) keeps those fields as problems with
the reason and they are used for nothing.

Pure, like the rest of extraction: page images in, frozen dataclasses out.
zxing-cpp (already used to check the kiosk receipt) is imported on first use.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from appliance.extraction import validators as v
from appliance.extraction.errors import DecoderMissing
from appliance.extraction.fields import ExtractedFields, FieldValue
from appliance.records import catalogue as cat
from appliance.records.catalogue import Catalogue

KIND_CCCD = "cccd"
KIND_OTHER = "other"
SOURCE_QR = "qr"

# Confidence given to a value two independent readings agree on.
AGREED_CONFIDENCE = 0.99
# A page of fewer pixels than this where nothing was found is tried again enlarged
# twice: a card's QR is about 15 mm wide, under 2 pixels a module at 100 dpi. Measured
# on a 15 mm QR pasted on an A4 page: found as is from 150 dpi up, only enlarged at
# 100 dpi; the second pass costs 0.6 s on an A4 page at 200 dpi, so larger pages skip it.
ENLARGE_BELOW_PIXELS = 2_000_000
MAX_SIDE = 5000

# Fields of the CCCD QR, in the card's order, and the paper field each one checks.
CCCD_FIELDS = ("cccd", "old_id", "full_name", "birth_date", "gender", "address",
               "issue_date")
PAPER_FIELD = {"cccd": "cccd", "full_name": "full_name", "birth_date": "birth_date",
               "gender": "gender", "issue_date": "issue_date", "address": "residence"}
# Compared with OCR and flagged when they differ; the address is only used to fill
# (cards and forms write addresses too differently for a fair comparison).
COMPARED = ("cccd", "full_name", "birth_date", "gender", "issue_date")


@dataclass(frozen=True)
class QrField:
    """One value of a CCCD QR: valid (normalised `value`) or a problem with a reason."""

    name: str
    raw: str
    value: str | None
    status: str
    reason: str | None = None
    flags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "raw": self.raw, "status": self.status,
                "reason": self.reason, "flags": list(self.flags)}


@dataclass(frozen=True)
class QrReading:
    """One code found on a page: what it says, where, and what it was taken for.

    `box` is [x0, y0, x1, y1] in the page image's pixels; `page` the page's index in
    the paper. `kind` is "cccd" with `fields` and `layout` for a CCCD QR, "other"
    with the text left unparsed otherwise.
    """

    format: str
    text: str
    page: int
    box: tuple[int, int, int, int]
    kind: str
    layout: str | None = None
    fields: dict[str, QrField] = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.format, "text": self.text, "page": self.page,
                "box": list(self.box), "kind": self.kind, "layout": self.layout,
                "fields": {n: f.as_dict() for n, f in self.fields.items()},
                "extra": list(self.extra), "flags": list(self.flags), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QrReading:
        """A reading as stored with a paper's fields (the worker's JSON)."""
        fields = {str(n): QrField(str(n), str(f.get("raw", "")), f.get("value"),
                                  str(f.get("status", v.PROBLEM)), f.get("reason"),
                                  tuple(f.get("flags") or ()))
                  for n, f in (data.get("fields") or {}).items() if isinstance(f, Mapping)}
        box = tuple(int(c) for c in (data.get("box") or (0, 0, 0, 0)))
        return cls(str(data.get("format", "")), str(data.get("text", "")),
                   int(data.get("page") or 0), (box[0], box[1], box[2], box[3]),
                   str(data.get("kind", KIND_OTHER)), data.get("layout"), fields,
                   tuple(data.get("extra") or ()), tuple(data.get("flags") or ()),
                   data.get("reason"))

    @property
    def valid_values(self) -> dict[str, str]:
        return {n: f.value for n, f in self.fields.items()
                if f.status == v.VALID and f.value is not None}


# --- decoding -------------------------------------------------------------------------
@dataclass(frozen=True)
class Code:
    """A decoded symbol before interpretation."""

    format: str
    text: str
    box: tuple[int, int, int, int]


def decode_image(image: Image.Image) -> list[Code]:
    """Every QR code and barcode zxing-cpp finds on one page image, top to bottom.

    A small page where nothing was found is tried again enlarged twice (a card's QR
    at low dpi), the boxes scaled back.
    """
    try:
        import zxingcpp
    except ImportError as e:
        raise DecoderMissing("zxing-cpp is not installed: QR codes are not read") from e

    gray = image.convert("L")
    if max(gray.size) > MAX_SIDE:  # a huge scan: decode a reduced copy
        gray.thumbnail((MAX_SIDE, MAX_SIDE))
    scale_back = image.width / gray.width
    found: dict[tuple[str, str], Code] = {}
    tries: list[tuple[Image.Image, float]] = [(gray, scale_back)]
    if gray.width * gray.height < ENLARGE_BELOW_PIXELS:
        tries.append((gray.resize((gray.width * 2, gray.height * 2), Image.Resampling.LANCZOS),
                      scale_back / 2))
    for picture, scale in tries:
        for result in zxingcpp.read_barcodes(picture):
            if not result.valid or not result.text:
                continue
            p = result.position
            xs = [p.top_left.x, p.top_right.x, p.bottom_left.x, p.bottom_right.x]
            ys = [p.top_left.y, p.top_right.y, p.bottom_left.y, p.bottom_right.y]
            box = (int(min(xs) * scale), int(min(ys) * scale), int(round(max(xs) * scale)),
                   int(round(max(ys) * scale)))
            key = (result.format.name, result.text)
            found.setdefault(key, Code(result.format.name, result.text, box))
        if found:
            break
    return sorted(found.values(), key=lambda c: (c.box[1], c.box[0]))


# --- the CCCD QR ----------------------------------------------------------------------
_DMY = re.compile(r"^\s*(\d{2})(\d{2})(\d{4})\s*$")


def _date(raw: str, name: str, formats: v.Formats, past: bool) -> QrField:
    m = _DMY.match(raw)
    if not m:
        return QrField(name, raw, None, v.PROBLEM, f"not a ddmmyyyy date: {raw!r}",
                       (f"{name}.format",))
    verdict = v.check_date(f"{m.group(1)}/{m.group(2)}/{m.group(3)}", formats, past=past)
    if verdict is None or verdict.status != v.VALID:
        return QrField(name, raw, None, v.PROBLEM,
                       verdict.reason if verdict else "no date", verdict.flags if verdict else ())
    return QrField(name, raw, verdict.value, v.VALID)


def _checked(name: str, raw: str, verdict: v.Verdict | None, what: str) -> QrField:
    if verdict is None or verdict.value is None or verdict.status == v.PROBLEM:
        reason = verdict.reason if verdict and verdict.reason else f"not {what}: {raw!r}"
        return QrField(name, raw, None, v.PROBLEM, reason, verdict.flags if verdict else ())
    return QrField(name, raw, verdict.value, v.VALID, None, verdict.flags)


def _cccd_number(raw: str, formats: v.Formats) -> QrField:
    digits = raw.strip()
    if not digits.isdigit():
        return QrField("cccd", raw, None, v.PROBLEM, f"not a CCCD number: {raw!r}",
                       ("cccd.format",))
    return _checked("cccd", raw, v.check_cccd(digits, formats), "a CCCD number")


def _layout(parts: list[str]) -> str | None:
    """Which known layout the pipe-separated text follows, if any.

    cccd-7: number | old CMND (maybe empty) | name | ddmmyyyy | sex | address |
    issue ddmmyyyy, possibly with trailing fields (newer cards); cccd-6: the same
    without the old CMND field (cards issued to people who never had one)."""
    def number(s: str) -> bool:
        return bool(re.fullmatch(r"\d{8,14}", s.strip()))

    def dmy(s: str) -> bool:
        return bool(re.fullmatch(r"\d{8}", s.strip()))

    if len(parts) >= 7 and number(parts[0]) and (not parts[1].strip() or parts[1].strip()
                                                 .isdigit()) and dmy(parts[3]):
        return "cccd-7"
    if len(parts) >= 6 and number(parts[0]) and dmy(parts[2]) and not parts[1].strip(
    ).isdigit():
        return "cccd-6"
    return None


def parse_cccd(text: str, catalogue: Catalogue | None = None) -> tuple[
        str, dict[str, QrField], tuple[str, ...]] | None:
    """(layout, fields, extra trailing fields) of a CCCD QR text; None if it is not
    one. Every value goes through the same validators as OCR's, and the number's
    century and sex digits are checked against the date of birth and sex on the QR."""
    catalogue = catalogue or cat.default()
    formats = v.Formats(catalogue.cccd_provinces, catalogue.mobile_prefixes,
                        catalogue.surnames)
    text = unicodedata.normalize("NFC", text.strip())
    parts = text.split("|")
    layout = _layout(parts)
    if layout is None:
        return None
    if layout == "cccd-6":
        parts = [parts[0], "", *parts[1:]]
    number, old, name, birth, sex, address, issued = parts[:7]
    extra = tuple(parts[7:])
    fields = {
        "cccd": _cccd_number(number, formats),
        "full_name": _checked("full_name", name, v.check_name(name, formats, upper_case=False),
                              "a name"),
        "birth_date": _date(birth, "birth_date", formats, past=True),
        "gender": _checked("gender", sex, v.check_sex(sex, formats), "Nam or Nữ"),
        "address": _checked("address", address, v.check_text(address, formats), "an address"),
        "issue_date": _date(issued, "issue_date", formats, past=True),
    }
    if old.strip():
        ok = re.fullmatch(r"\d{9}|\d{12}", old.strip())
        fields["old_id"] = QrField("old_id", old, old.strip() if ok else None,
                                   v.VALID if ok else v.PROBLEM,
                                   None if ok else f"an old CMND number has 9 digits: {old!r}",
                                   () if ok else ("old_id.length",))
    _consistent(fields)
    return layout, fields, extra


def _consistent(fields: dict[str, QrField]) -> None:
    """The CCCD number's century/year and sex digits against the QR's own date of
    birth and sex (Decree 137/2015): a QR that contradicts itself confirms nothing."""
    card, birth, sex = fields["cccd"], fields["birth_date"], fields["gender"]
    if card.status != v.VALID or card.value is None:
        return
    if birth.status == v.VALID and birth.value and v.cccd_birth_year(card.value) != int(
            birth.value[-4:]):
        fields["cccd"] = replace(card, status=v.PROBLEM, value=None,
                                 flags=card.flags + ("cccd.birth_year",),
                                 reason=f"the number says born in "
                                        f"{v.cccd_birth_year(card.value)}, the QR's date "
                                        f"of birth {birth.value}")
    elif sex.status == v.VALID and sex.value and v.cccd_is_female(card.value) != (
            sex.value == "Nữ"):
        fields["cccd"] = replace(card, status=v.PROBLEM, value=None,
                                 flags=card.flags + ("cccd.sex",),
                                 reason=f"the number's 4th digit is for "
                                        f"{'a woman' if v.cccd_is_female(card.value) else 'a man'}"
                                        f", the QR says {sex.value}")


def interpret(code: Code, page: int, catalogue: Catalogue | None = None) -> QrReading:
    """A decoded code as a CCCD QR with typed fields, or an unparsed other code."""
    parsed = parse_cccd(code.text, catalogue) if code.format in ("QRCode", "MicroQRCode") \
        else None
    if parsed is None:
        return QrReading(code.format, code.text, page, code.box, KIND_OTHER,
                         flags=("qr.not_cccd",), reason="not a CCCD QR")
    layout, fields, extra = parsed
    bad = [f for f in fields.values() if f.status != v.VALID]
    return QrReading(code.format, code.text, page, code.box, KIND_CCCD, layout, fields, extra,
                     ("qr.invalid_field",) if bad else (),
                     "; ".join(f"{f.name}: {f.reason}" for f in bad) or None)


def read_pages(images: Sequence[Image.Image | None],
               catalogue: Catalogue | None = None) -> tuple[QrReading, ...]:
    """Every code on a paper's pages, each interpreted; a None page (one that could
    not be opened) keeps its place in the numbering."""
    out: list[QrReading] = []
    for page, image in enumerate(images):
        if image is not None:
            out.extend(interpret(code, page, catalogue) for code in decode_image(image))
    return tuple(out)


# --- cross-check with OCR ------------------------------------------------------------
def _same(name: str, a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return " ".join(unicodedata.normalize("NFC", s).upper().split())

    if name == "cccd":
        return re.sub(r"\D", "", a) == re.sub(r"\D", "", b)
    return norm(a) == norm(b)


def cross_check(extracted: ExtractedFields, readings: Sequence[QrReading],
                catalogue: Catalogue | None = None) -> ExtractedFields:
    """The paper's fields checked against the first CCCD QR with usable values.

    Only fields the paper's type has are touched; the readings themselves are kept
    on the result (`qr`) whatever they say.
    """
    catalogue = catalogue or cat.default()
    fields = dict(extracted.fields)
    cards = [r for r in readings if r.kind == KIND_CCCD and r.valid_values]
    paper = catalogue.paper(extracted.paper_type or "") or catalogue.fallback
    if cards:
        card = cards[0]
        for qr_name, qr_value in card.valid_values.items():
            name = PAPER_FIELD.get(qr_name)
            if name is None or paper.field(name) is None:
                continue
            fields[name] = _check_one(fields.get(name), name, qr_name, qr_value, card)
    return replace(extracted, fields=fields, qr=tuple(readings))


def _check_one(ocr: FieldValue | None, name: str, qr_name: str, qr_value: str,
               card: QrReading) -> FieldValue:
    usable = ocr is not None and ocr.value is not None and ocr.status in (v.VALID,
                                                                          v.UNCERTAIN)
    if not usable:  # missing, a problem, or never seen: the QR fills it
        raw = ocr.raw if ocr is not None else ""
        return FieldValue(name, v.VALID, qr_value, raw, 1.0, card.box, card.page,
                          ("qr.filled",), None, SOURCE_QR)
    assert ocr is not None and ocr.value is not None
    if qr_name not in COMPARED:
        return ocr
    if _same(name, ocr.value, qr_value):
        only_unsure = set(ocr.flags) <= {"low_confidence"}
        status = v.VALID if ocr.status == v.VALID or only_unsure else ocr.status
        return replace(ocr, status=status,
                       confidence=max(ocr.confidence or 0.0, AGREED_CONFIDENCE),
                       flags=tuple(f for f in ocr.flags if f != "low_confidence")
                       + ("qr.agrees",),
                       reason=None if status == v.VALID else ocr.reason)
    reason = f"the CCCD QR code reads {qr_value}"
    return replace(ocr, status=v.UNCERTAIN, flags=ocr.flags + ("qr.mismatch",),
                   reason=f"{ocr.reason}; {reason}" if ocr.reason else reason)


def apply(extracted: ExtractedFields, images: Sequence[Image.Image | None],
          catalogue: Catalogue | None = None) -> ExtractedFields:
    """Decode the codes on the pages and cross-check: what the worker and
    `appliance extract` call after field extraction."""
    return cross_check(extracted, read_pages(images, catalogue), catalogue)


def readings_of(stored: Mapping[str, Any]) -> tuple[QrReading, ...]:
    """The readings kept in a paper's stored fields ("qr")."""
    items = stored.get("qr") if isinstance(stored.get("qr"), list) else []
    return tuple(QrReading.from_dict(r) for r in items or () if isinstance(r, Mapping))
