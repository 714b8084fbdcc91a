"""The officer's desk: correct a field, set a paper's type, split, merge and move
papers' pages, delete a page with a reason; and what the review screen shows.

Decision 1333/QĐ-BHXH step 2 (extract the data) ends with an officer who checks the
extracted values against the paper before signing: the OCR is good, not perfect, and a
wrong CCCD number signed as right is worse than an empty one. So these use cases are
the only way a value changes after extraction, and each of them

- works only while the dossier is not yet signed (`DossierSigned` after that: what is
  signed must be what is stored) and no scan job is writing the same papers;
- checks an officer's value with the same validator the extraction used (the field's
  kind in the catalogue): an invalid value is refused with the validator's reason and
  nothing changes; a valid one is stored with who corrected it and when, the OCR's
  own reading kept beside it (`ocr_value`), so the signed metadata document shows
  both (records/result.py, `fields_of`);
- writes its audit line (records/audit.py) in the same transaction as the change,
  with the officer as actor. Old and new values are personal data, and the audit
  table holds none in clear (issue 8): they are sealed with the installation key in
  the entry's detail (`correction_values` opens them), the hash chain covers the
  sealed text.

Fields live in the paper's sealed `fields_json` in the form extraction's
`ExtractedFields.as_dict()` gives (values, problems, uncertain, missing, reasons,
paper_type, fields: {name: value, status, confidence, box, page, flags, reason, raw}),
plus the keys a correction adds to a field: source ("ocr", "qr", "officer"),
corrected_by, corrected_at, ocr_value, correction_reason.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.extraction import validators as v
from appliance.records import audit, dossiers
from appliance.records import catalogue as cat
from appliance.records import pages as page_store
from appliance.records.catalogue import Catalogue, FieldSpec, PaperType
from appliance.records.errors import (
    DossierNotFound,
    DossierSigned,
    InvalidCorrection,
    InvalidState,
    PaperNotFound,
    ReasonRequired,
    ScanInProgress,
    UnknownField,
    UnknownPaperType,
)
from appliance.store import jobs
from appliance.store.db import aad, now, open_text, seal_text, sealer_of, transaction
from appliance.store.files import FileStore
from appliance.system.config import Config
from appliance.system.text import one_line

SOURCE_OCR = "ocr"
SOURCE_QR = "qr"
SOURCE_OFFICER = "officer"

# Dossier states in which an officer may still change papers (before sign-off).
EDITABLE = ("open", "submitted")
MAX_REASON = 500
# The longest value an officer may set (an address fits): a longer one is refused,
# never cut, since a cut value would be signed as if it were what the paper says.
MAX_VALUE = 200
# Unicode categories no officer's value may hold: control, format (bidi overrides, zero
# widths), surrogate, private use, unassigned.
UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


# -- what the screen gets -------------------------------------------------------------
@dataclass(frozen=True)
class FieldCorrection:
    """One correction as stored: the new value, what was there, and the OCR's reading."""

    dossier_id: int
    paper_id: int
    field: str
    value: str
    previous: str | None  # the value shown before this correction
    ocr_value: str | None  # what OCR read, kept for good beside any correction
    corrected_by: str
    corrected_at: float
    reason: str | None
    audit_seq: int


@dataclass(frozen=True)
class ReviewField:
    """One field of a paper as the officer's review screen shows it.

    `status` is valid, uncertain, problem (with `reason`), missing (a mandatory field
    not found) or empty (an optional field not found). `page` is the index (0-based)
    of the page in the paper and `page_id` that page's row; `box` is [x0, y0, x1, y1]
    in the stored page image's pixel coordinates (turned back when OCR read the page
    turned), for the highlight over the page image.
    """

    name: str
    kind: str
    mandatory: bool
    value: str | None
    ocr_value: str | None
    source: str
    status: str
    reason: str | None
    flags: tuple[str, ...]
    confidence: float | None
    page: int | None
    page_id: int | None
    box: tuple[int, int, int, int] | None
    corrected_by: str | None = None
    corrected_at: float | None = None


@dataclass(frozen=True)
class PaperReview:
    """A paper on the review screen: its type, fields in catalogue order, whether it
    may still change."""

    dossier_id: int
    paper_id: int
    ordinal: int
    title: str
    paper_type: str | None
    paper_type_known: bool
    fields: tuple[ReviewField, ...]
    editable: bool


# -- the paper's stored fields ----------------------------------------------------------
def _catalogue(config: Config) -> Catalogue:
    """The catalogue in use (the built-in one; a technician's replacement file is
    loaded the same way by catalogue.load)."""
    del config  # one catalogue per installation today; the parameter keeps callers stable
    return cat.default()


def _formats(catalogue: Catalogue) -> v.Formats:
    return v.Formats(catalogue.cccd_provinces, catalogue.mobile_prefixes, catalogue.surnames)


def _paper_row(conn: sqlite3.Connection, dossier_id: int | None, paper_id: int) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM papers WHERE id=?", (paper_id,)).fetchone()
    if row is None or (dossier_id is not None and row["dossier_id"] != dossier_id):
        raise PaperNotFound(f"paper {paper_id} is not in dossier {dossier_id}")
    return row


def _load_fields(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    stored = row["fields_json"]
    if not stored:
        return {}
    value = json.loads(open_text(conn, stored, aad("papers", "fields_json", row["id"])))
    return value if isinstance(value, dict) else {}


def _store_fields(conn: sqlite3.Connection, paper_id: int, fields: Mapping[str, Any]) -> None:
    conn.execute("UPDATE papers SET fields_json=? WHERE id=?",
                 (seal_text(conn, json.dumps(fields, ensure_ascii=False),
                            aad("papers", "fields_json", paper_id)), paper_id))


def _check_editable(conn: sqlite3.Connection, dossier_id: int) -> None:
    row = conn.execute("SELECT status, code FROM dossiers WHERE id=?", (dossier_id,)).fetchone()
    if row is None:
        raise DossierNotFound(f"dossier {dossier_id} not found")
    if row["status"] == "signed":
        raise DossierSigned(f"dossier {row['code']} is signed: it can no longer change")
    if row["status"] not in EDITABLE:
        raise InvalidState(f"dossier {row['code']} is {row['status']}")
    if jobs.active_for_dossier(conn, dossier_id) is not None:
        raise ScanInProgress(f"dossier {dossier_id} has a scan in progress")


def _officer(officer: str) -> str:
    name = one_line(officer or "")
    if not name:
        raise InvalidState("an officer's name is required")
    return name


def _paper_type(fields: Mapping[str, Any], catalogue: Catalogue) -> PaperType:
    code = fields.get("paper_type")
    paper = catalogue.paper(code) if isinstance(code, str) else None
    return paper or catalogue.fallback


def _seal_value(conn: sqlite3.Connection, value: str | None, where: str) -> str | None:
    return None if value is None else seal_text(conn, value, aad("audit_log", "value", where))


def correction_values(conn: sqlite3.Connection,
                      entry: audit.AuditEntry) -> tuple[str | None, str | None]:
    """(old, new) value of a field correction's audit entry, opened with the key."""
    where = entry.detail.get("sealed_as", "")
    old, new = entry.detail.get("old"), entry.detail.get("new")
    sealer_of(conn)
    return (None if old is None else open_text(conn, old, aad("audit_log", "value", where)),
            None if new is None else open_text(conn, new, aad("audit_log", "value", where)))


# -- validating an officer's value --------------------------------------------------------
def validate_value(spec: FieldSpec, value: str, catalogue: Catalogue) -> v.Verdict:
    """The field's validator on an officer's value: the whole text must be the value.

    An uncertain verdict (an unusual family name, a phone prefix no operator uses) is
    accepted: the officer has the paper in hand. A problem, or text around the value
    ("0123 456 789 abc" for a CCCD), is refused with the reason.
    """
    text = unicodedata.normalize("NFC", value or "").strip()
    if not text:
        raise InvalidCorrection(f"{spec.name}: empty value", "an empty value; enter "
                                "what the paper says", code="empty")
    if len(text) > MAX_VALUE:
        raise InvalidCorrection(f"{spec.name}: {len(text)} characters",
                                f"at most {MAX_VALUE} characters", code="too_long")
    if any(unicodedata.category(c) in UNPRINTABLE for c in text):
        # A free-text field's validator takes any text, but no paper carries a control,
        # a bidi override or a lone surrogate (which JSON can spell and the seal could
        # not even encode): refused, never cleaned, so what is signed is what was typed.
        raise InvalidCorrection(f"{spec.name}: unprintable characters",
                                "characters no paper carries (control, format or "
                                "unassigned)", code="bad_characters")
    verdict = v.check(spec.kind, text, _formats(catalogue), past=spec.past,
                      upper_case=False)
    if verdict is None:
        raise InvalidCorrection(f"{spec.name}: {text!r} is not a {spec.kind}",
                                f"not a {spec.kind.replace('_', ' ')}: {text!r}",
                                code="not_kind")
    if verdict.status == v.PROBLEM or verdict.value is None:
        raise InvalidCorrection(f"{spec.name}: {verdict.reason}", verdict.reason or "",
                                verdict.flags, code="not_kind")
    rest = text[:verdict.span[0]] + text[verdict.span[1]:]
    if spec.kind not in ("text", "email") and any(c.isalnum() for c in rest):
        raise InvalidCorrection(
            f"{spec.name}: text beside the value", f"only the value, please: "
            f"{rest.strip()!r} is not part of a {spec.kind.replace('_', ' ')}",
            code="extra_text")
    return verdict


def _ocr_reading(entry: Mapping[str, Any] | None) -> str | None:
    """What OCR read for a field: kept from an earlier correction, else its value or
    the raw text of a problem."""
    if not entry:
        return None
    if "ocr_value" in entry:
        return entry.get("ocr_value")
    value = entry.get("value") if entry.get("source") != SOURCE_QR else None
    raw = entry.get("raw")
    return value if value is not None else (raw or None)


def _set_field(fields: dict[str, Any], name: str, entry: dict[str, Any]) -> None:
    """Put one field's entry and keep the summary lists the older screens read in step."""
    detailed = fields.setdefault("fields", {})
    detailed[name] = entry
    values = fields.setdefault("values", {})
    if entry.get("value") is not None and entry.get("status") in (v.VALID, v.UNCERTAIN):
        values[name] = entry["value"]
    else:
        values.pop(name, None)
    for key, status in (("problems", v.PROBLEM), ("uncertain", v.UNCERTAIN),
                        ("missing", "missing")):
        names = [n for n in fields.get(key, []) if n != name]
        if entry.get("status") == status:
            names.append(name)
        fields[key] = names
    reasons = fields.setdefault("reasons", {})
    if entry.get("reason"):
        reasons[name] = entry["reason"]
    else:
        reasons.pop(name, None)


def correct_field(conn: sqlite3.Connection, config: Config, *, dossier_id: int,
                  paper_id: int, field: str, value: str, officer: str,
                  reason: str | None = None) -> FieldCorrection:
    """Set a field of a paper to the officer's value, validated, OCR value kept."""
    officer = _officer(officer)
    catalogue = _catalogue(config)
    note = (reason or "").strip()[:MAX_REASON] or None
    with transaction(conn):
        _check_editable(conn, dossier_id)
        row = _paper_row(conn, dossier_id, paper_id)
        fields = _load_fields(conn, row)
        paper = _paper_type(fields, catalogue)
        spec = paper.field(field)
        if spec is None:
            raise UnknownField(f"paper type {paper.code} has no field {field!r}")
        verdict = validate_value(spec, value, catalogue)
        new_value = str(verdict.value)
        old = (fields.get("fields") or {}).get(field)
        old = old if isinstance(old, dict) else {}
        ocr_value = _ocr_reading(old)
        at = now()
        entry = {k: old.get(k) for k in ("confidence", "box", "page", "raw") if k in old}
        entry.update({"value": new_value, "status": v.VALID, "flags": list(verdict.flags),
                      "reason": None, "source": SOURCE_OFFICER, "corrected_by": officer,
                      "corrected_at": at, "ocr_value": ocr_value,
                      "correction_reason": note})
        _set_field(fields, field, entry)
        _agree_with_number(fields, field)
        _store_fields(conn, paper_id, fields)
        where = f"{paper_id}:{field}:{at!r}"
        line = audit.append(conn, audit.AuditAction.CORRECTION, officer, dossier_id, {
            "op": "correct_field", "paper_id": paper_id, "field": field,
            "old_source": old.get("source", SOURCE_OCR) if old else None,
            "old": _seal_value(conn, old.get("value") if old else None, where),
            "new": _seal_value(conn, new_value, where), "sealed_as": where,
            "reason": _seal_value(conn, note, where)})
    return FieldCorrection(dossier_id, paper_id, field, new_value,
                           old.get("value") if old else None, ocr_value, officer, at, note,
                           line.seq)


def _contradictions(fields: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(number field, other field, reason) where a CCCD number's century/year or sex
    digit contradicts the date of birth or sex on the same paper (Decree 137/2015)."""
    detailed = fields.get("fields") or {}

    def value(name: str) -> str | None:
        f = detailed.get(name)
        ok = isinstance(f, dict) and f.get("status") in (v.VALID, v.UNCERTAIN)
        return f.get("value") if ok and isinstance(f.get("value"), str) else None

    out = []
    birth, sex = value("birth_date"), value("gender")
    for name in ("cccd", "personal_id"):
        number = value(name)
        if number is None or len(number) != 12 or not number.isdigit():
            continue
        if birth is not None and birth[-4:].isdigit() and v.cccd_birth_year(number) != int(
                birth[-4:]):
            out.append((name, "birth_date",
                        f"the CCCD number {number} says born in {v.cccd_birth_year(number)}, "
                        f"the date of birth is {birth}"))
        if sex is not None and v.cccd_is_female(number) != (sex == "Nữ"):
            out.append((name, "gender",
                        f"the CCCD number {number} is "
                        f"{'a woman' if v.cccd_is_female(number) else 'a man'}'s, "
                        f"the paper says {sex}"))
    return out


def _agree_with_number(fields: dict[str, Any], corrected: str) -> None:
    """After a correction, the CCCD number and the date of birth and sex must still
    agree. Both set by officers and contradicting: refused (nobody may sign that).
    Otherwise the value the officer did not set is marked uncertain with the reason,
    to be looked at against the paper."""
    detailed = fields.get("fields") or {}
    for number, other, reason in _contradictions(fields):
        if corrected not in (number, other):
            continue
        pair = (detailed.get(number) or {}, detailed.get(other) or {})
        if all(f.get("source") == SOURCE_OFFICER for f in pair):
            flag = "cccd.birth_year" if other == "birth_date" else "cccd.sex"
            raise InvalidCorrection(f"{corrected}: {reason}", reason, (flag,))
        for name, f in ((number, pair[0]), (other, pair[1])):
            if f.get("source") != SOURCE_OFFICER:
                flag = "cccd.birth_year" if other == "birth_date" else "cccd.sex"
                _set_field(fields, name, {**f, "status": v.UNCERTAIN,
                                          "flags": [*(f.get("flags") or []), flag],
                                          "reason": reason})


# -- paper type and re-derived fields --------------------------------------------------
def derive_fields(conn: sqlite3.Connection, paper_id: int, paper_type: str | None,
                  catalogue: Catalogue,
                  keep: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A paper's fields again from the stored OCR of its pages (no page is read again),
    by `paper_type` (None: guessed from the title). Officer corrections and QR values
    in `keep` (an earlier fields dict) stay where the new type still has the field and
    the value still passes its validator."""
    from appliance.extraction import qr
    from appliance.extraction.fields import extract_pages

    rows = page_store.paper_pages(conn, paper_id)
    extracted = extract_pages([r.text.lines if r.text is not None else () for r in rows],
                              paper_type=paper_type, catalogue=catalogue)
    # the codes read at scan time check the fields of the new type too
    extracted = qr.cross_check(extracted, qr.readings_of(keep or {}), catalogue)
    fields: dict[str, Any] = extracted.as_dict()
    for entry in fields.get("fields", {}).values():
        entry.setdefault("source", SOURCE_OCR)
    paper = catalogue.paper(fields.get("paper_type") or "") or catalogue.fallback
    previous = (keep or {}).get("fields") or {}
    for name, old in previous.items():
        if not isinstance(old, dict) or old.get("source") not in (SOURCE_OFFICER, SOURCE_QR):
            continue
        spec = paper.field(name)
        if spec is None or not isinstance(old.get("value"), str):
            continue
        try:
            validate_value(spec, old["value"], catalogue)
        except InvalidCorrection:
            continue
        entry = dict(old)
        if old.get("source") == SOURCE_QR:
            new = fields.get("fields", {}).get(name) or {}
            if new.get("status") in (v.VALID, v.UNCERTAIN):
                continue  # OCR reads it now; the QR only filled a gap
        _set_field(fields, name, entry)
    return fields


def set_paper_type(conn: sqlite3.Connection, config: Config, *, dossier_id: int,
                   paper_id: int, paper_type: str, officer: str) -> str:
    """Give a paper its type from the catalogue; fields re-derived for that type from
    the stored OCR, corrections that still apply kept; the paper's title becomes the
    type's name. Returns the new title."""
    officer = _officer(officer)
    catalogue = _catalogue(config)
    paper = catalogue.paper(paper_type)
    if paper is None:
        raise UnknownPaperType(f"unknown paper type {paper_type!r}: the catalogue has "
                               f"{', '.join(p.code for p in catalogue.papers)}")
    with transaction(conn):
        _check_editable(conn, dossier_id)
        row = _paper_row(conn, dossier_id, paper_id)
        old = _load_fields(conn, row)
        fields = derive_fields(conn, paper_id, paper.code, catalogue, keep=old)
        fields["paper_type_set_by"] = officer
        _store_fields(conn, paper_id, fields)
        conn.execute("UPDATE papers SET title=? WHERE id=?", (paper.name_vi, paper_id))
        audit.append(conn, audit.AuditAction.CORRECTION, officer, dossier_id, {
            "op": "set_paper_type", "paper_id": paper_id,
            "from": old.get("paper_type"), "to": paper.code})
    return paper.name_vi


# -- pages between papers ---------------------------------------------------------------
def _page_ids(conn: sqlite3.Connection, paper_id: int) -> list[int]:
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM pages WHERE paper_id=? ORDER BY ordinal", (paper_id,))]


def _paper_ids(conn: sqlite3.Connection, dossier_id: int) -> list[int]:
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM papers WHERE dossier_id=? ORDER BY ordinal", (dossier_id,))]


def _page_of(conn: sqlite3.Connection, dossier_id: int, page_id: int) -> sqlite3.Row:
    from appliance.records.pages_edit import PageNotFound

    row = conn.execute(
        "SELECT pg.id, pg.paper_id, pg.ordinal FROM pages pg JOIN papers pa "
        "ON pa.id = pg.paper_id WHERE pg.id=? AND pa.dossier_id=?",
        (page_id, dossier_id)).fetchone()
    if row is None:
        raise PageNotFound(f"page {page_id} is not in dossier {dossier_id}")
    return row


CodesByPage = dict[int, list[dict[str, Any]]]


def _codes_by_page(conn: sqlite3.Connection, paper_ids: Sequence[int]) -> CodesByPage:
    """The QR codes read on these papers' pages at scan time, by page row id: taken
    before pages move, so each code follows its page into its new paper."""
    out: CodesByPage = {}
    for paper_id in dict.fromkeys(paper_ids):
        fields = _load_fields(conn, _paper_row(conn, None, paper_id))
        pages = _page_ids(conn, paper_id)
        for code in fields.get("qr") or ():
            page = code.get("page") if isinstance(code, dict) else None
            if isinstance(page, int) and 0 <= page < len(pages):
                out.setdefault(pages[page], []).append(code)
    return out


def _refresh(conn: sqlite3.Connection, config: Config, paper_id: int,
             keep_type: bool = True, codes: CodesByPage | None = None) -> None:
    """Fields of a paper whose pages changed, from their stored OCR, keeping its type
    (when it had one set), the corrections that still apply and the QR codes of the
    pages it holds now (`codes`, numbered by their new place)."""
    row = _paper_row(conn, None, paper_id)
    old = _load_fields(conn, row)
    if codes is not None:
        old["qr"] = [{**code, "page": n} for n, page_id in enumerate(_page_ids(conn, paper_id))
                     for code in codes.get(page_id, [])]
    chosen = old.get("paper_type_set_by") or not old.get("paper_guessed", True)
    code = old.get("paper_type") if keep_type and chosen else None
    fields = derive_fields(conn, paper_id, code if isinstance(code, str) else None,
                           _catalogue(config), keep=old)
    if old.get("paper_type_set_by") and keep_type:
        fields["paper_type_set_by"] = old["paper_type_set_by"]
    _store_fields(conn, paper_id, fields)


def _rebuild_pdfs(conn: sqlite3.Connection, config: Config, paper_ids: Sequence[int]) -> None:
    """The PDF of each changed paper again from its masters (sign-off builds the signed
    one anew; this one is what the screens show until then). The correction's own
    transaction forgot the old PDFs (page_store.outdate_pdf), so a rebuild that fails
    here (a full disk) leaves no PDF rather than a wrong one; the worker makes it once
    there is space."""
    files = FileStore(config.paths.files, sealer=sealer_of(conn))
    for paper_id in paper_ids:
        page_store.refresh_pdf(conn, files, paper_id, config.device.agency_name)


def split_paper(conn: sqlite3.Connection, config: Config, *, dossier_id: int,
                paper_id: int, at_page_id: int, officer: str) -> int:
    """Cut a paper before page `at_page_id`: that page and the ones after it become a
    new paper right after this one (two forms fed as one). Returns the new paper's id.
    Page order is kept; both papers' fields are derived again."""
    officer = _officer(officer)
    with transaction(conn):
        _check_editable(conn, dossier_id)
        row = _paper_row(conn, dossier_id, paper_id)
        page = _page_of(conn, dossier_id, at_page_id)
        if page["paper_id"] != paper_id:
            raise InvalidState(f"page {at_page_id} is not in paper {paper_id}")
        pages = _page_ids(conn, paper_id)
        cut = pages.index(at_page_id)
        if cut == 0:
            raise InvalidState("a paper is split after its first page, not before it")
        moved = pages[cut:]
        codes = _codes_by_page(conn, [paper_id])
        papers = _paper_ids(conn, dossier_id)
        cur = conn.execute(
            "INSERT INTO papers(dossier_id, ordinal, title, created_at) VALUES "
            "(?, (SELECT MAX(ordinal) + 1 FROM papers WHERE dossier_id=?), ?, ?)",
            (dossier_id, dossier_id, row["title"], now()))
        new_id = int(cur.lastrowid or 0)
        at = papers.index(paper_id) + 1
        dossiers.renumber(conn, "papers", "dossier_id", dossier_id,
                  papers[:at] + [new_id] + papers[at:])
        for pid in moved:
            conn.execute("UPDATE pages SET paper_id=?, ordinal=-id WHERE id=?", (new_id, pid))
        dossiers.renumber(conn, "pages", "paper_id", new_id, moved)
        _refresh(conn, config, paper_id, codes=codes)
        _refresh(conn, config, new_id, keep_type=False, codes=codes)
        page_store.outdate_pdf(conn, paper_id)
        audit.append(conn, audit.AuditAction.CORRECTION, officer, dossier_id, {
            "op": "split_paper", "paper_id": paper_id, "new_paper_id": new_id,
            "at_page_id": at_page_id, "pages_moved": moved})
    _rebuild_pdfs(conn, config, (paper_id, new_id))
    return new_id


# Why an officer's correction of a merged-away paper did not carry over to the kept one.
DROPPED_NOT_IN_TYPE = "field_not_in_type"  # the kept paper's type has no such field
DROPPED_INVALID = "invalid_for_type"  # the kept type's validator refuses the value
DROPPED_KEPT_PAPER_CORRECTED = "kept_paper_corrected"  # an officer set it there already
DROPPED_CONTRADICTS = "contradicts_kept_paper"  # disagrees with the kept paper's CCCD


def _carry_corrections(conn: sqlite3.Connection, config: Config, into_paper_id: int,
                       gone: Mapping[str, Any], page_offset: int,
                       ) -> tuple[list[str], list[dict[str, Any]]]:
    """Put the officer corrections of a paper merged away onto the paper that keeps its
    pages: an officer's work is not lost to a merge. A correction goes over when the
    kept paper's type has the field, the value passes that type's validator, the kept
    paper has no correction of its own for it (that one was checked against this very
    paper) and it does not contradict the kept paper's CCCD number. The others are
    returned as dropped, with why and the value sealed, for the merge's audit line.
    Returns (names carried, dropped)."""
    catalogue = _catalogue(config)
    fields = _load_fields(conn, _paper_row(conn, None, into_paper_id))
    paper = _paper_type(fields, catalogue)
    carried: list[str] = []
    dropped: list[dict[str, Any]] = []
    detailed = gone.get("fields") if isinstance(gone.get("fields"), dict) else {}
    for name, old in (detailed or {}).items():
        if not isinstance(old, dict) or old.get("source") != SOURCE_OFFICER:
            continue
        value = old.get("value")
        spec = paper.field(name)
        mine = (fields.get("fields") or {}).get(name)
        why = None
        if spec is None or not isinstance(value, str):
            why = DROPPED_NOT_IN_TYPE
        elif isinstance(mine, dict) and mine.get("source") == SOURCE_OFFICER:
            if mine.get("value") == value:
                carried.append(name)  # the same value, checked on both papers
                continue
            why = DROPPED_KEPT_PAPER_CORRECTED
        else:
            try:
                validate_value(spec, value, catalogue)
            except InvalidCorrection:
                why = DROPPED_INVALID
        if why is None:
            entry = dict(old)
            if isinstance(entry.get("page"), int):  # its page now follows the kept ones
                entry["page"] = entry["page"] + page_offset
            candidate = json.loads(json.dumps(fields))
            _set_field(candidate, name, entry)
            try:
                _agree_with_number(candidate, name)
            except InvalidCorrection:
                why = DROPPED_CONTRADICTS
            else:
                fields = candidate
                carried.append(name)
                continue
        where = f"{into_paper_id}:{name}:merged:{now()!r}"
        dropped.append({"field": name, "why": why, "corrected_by": old.get("corrected_by"),
                        "value": _seal_value(conn, value if isinstance(value, str) else None,
                                             where), "sealed_as": where})
    if carried:
        _store_fields(conn, into_paper_id, fields)
    return carried, dropped


def merge_papers(conn: sqlite3.Connection, config: Config, *, dossier_id: int,
                 paper_id: int, into_paper_id: int, officer: str) -> int:
    """Append the pages of `paper_id`, in order, to `into_paper_id` (one form scanned
    as two papers) and remove the emptied paper. Returns `into_paper_id`.

    The officer corrections of the paper that goes are carried to the kept one where
    they still apply (`_carry_corrections`); those that do not are named in the
    merge's audit line as dropped, their values sealed like a correction's."""
    officer = _officer(officer)
    if paper_id == into_paper_id:
        raise InvalidState("a paper cannot be merged into itself")
    with transaction(conn):
        _check_editable(conn, dossier_id)
        gone = _load_fields(conn, _paper_row(conn, dossier_id, paper_id))
        _paper_row(conn, dossier_id, into_paper_id)
        target = _page_ids(conn, into_paper_id)
        moved = _page_ids(conn, paper_id)
        codes = _codes_by_page(conn, [into_paper_id, paper_id])
        for pid in moved:
            conn.execute("UPDATE pages SET paper_id=?, ordinal=-id WHERE id=?",
                         (into_paper_id, pid))
        dossiers.renumber(conn, "pages", "paper_id", into_paper_id, target + moved)
        conn.execute("DELETE FROM papers WHERE id=?", (paper_id,))
        dossiers.renumber(conn, "papers", "dossier_id", dossier_id)
        _refresh(conn, config, into_paper_id, codes=codes)
        carried, dropped = _carry_corrections(conn, config, into_paper_id, gone, len(target))
        page_store.outdate_pdf(conn, into_paper_id)
        audit.append(conn, audit.AuditAction.CORRECTION, officer, dossier_id, {
            "op": "merge_papers", "paper_id": paper_id, "into_paper_id": into_paper_id,
            "pages_moved": moved, "corrections_carried": carried,
            "corrections_dropped": dropped})
    _rebuild_pdfs(conn, config, (into_paper_id,))
    return into_paper_id


def move_page(conn: sqlite3.Connection, config: Config, *, dossier_id: int, page_id: int,
              to_paper_id: int, position: int, officer: str) -> None:
    """Put a page at `position` (1-based, clamped) of paper `to_paper_id`, its own
    paper or another of the dossier; a paper left without pages is removed."""
    officer = _officer(officer)
    with transaction(conn):
        _check_editable(conn, dossier_id)
        page = _page_of(conn, dossier_id, page_id)
        _paper_row(conn, dossier_id, to_paper_id)
        source = int(page["paper_id"])
        codes = _codes_by_page(conn, [source, to_paper_id])
        target = [p for p in _page_ids(conn, to_paper_id) if p != page_id]
        at = min(max(position, 1), len(target) + 1) - 1
        order = target[:at] + [page_id] + target[at:]
        conn.execute("UPDATE pages SET paper_id=?, ordinal=-id WHERE id=?",
                     (to_paper_id, page_id))
        dossiers.renumber(conn, "pages", "paper_id", to_paper_id, order)
        changed = [to_paper_id]
        if source != to_paper_id:
            if _page_ids(conn, source):
                dossiers.renumber(conn, "pages", "paper_id", source)
                changed.append(source)
            else:
                conn.execute("DELETE FROM papers WHERE id=?", (source,))
                dossiers.renumber(conn, "papers", "dossier_id", dossier_id)
        for pid in changed:
            _refresh(conn, config, pid, codes=codes)
            page_store.outdate_pdf(conn, pid)
        audit.append(conn, audit.AuditAction.CORRECTION, officer, dossier_id, {
            "op": "move_page", "page_id": page_id, "from_paper_id": source,
            "from": int(page["ordinal"]), "to_paper_id": to_paper_id, "to": at + 1})
    _rebuild_pdfs(conn, config, changed)


def delete_page(conn: sqlite3.Connection, config: Config, *, dossier_id: int, page_id: int,
                officer: str, reason: str) -> int | None:
    """Take a page out of the dossier with the officer's reason (kept sealed in the
    audit trail, like every free text an officer types: it may name the citizen); the
    paper it left, or None when the paper went with its last page. The
    page's image stays in the file store until the dossier is erased or purged."""
    officer = _officer(officer)
    why = unicodedata.normalize("NFC", (reason or "").strip())[:MAX_REASON]
    if not why:
        raise ReasonRequired("deleting a page needs a reason")
    with transaction(conn):
        _check_editable(conn, dossier_id)
        page = _page_of(conn, dossier_id, page_id)
        paper_id = int(page["paper_id"])
        codes = _codes_by_page(conn, [paper_id])
        sha = conn.execute("SELECT sha256 FROM pages WHERE id=?", (page_id,)).fetchone()[0]
        conn.execute("DELETE FROM pages WHERE id=?", (page_id,))
        left = _page_ids(conn, paper_id)
        if left:
            dossiers.renumber(conn, "pages", "paper_id", paper_id)
            _refresh(conn, config, paper_id, codes=codes)
            page_store.outdate_pdf(conn, paper_id)
        else:
            conn.execute("DELETE FROM papers WHERE id=?", (paper_id,))
            dossiers.renumber(conn, "papers", "dossier_id", dossier_id)
        where = f"delete:{page_id}"
        audit.append(conn, audit.AuditAction.CORRECTION, officer, dossier_id, {
            "op": "delete_page", "page_id": page_id, "paper_id": paper_id,
            "ordinal": int(page["ordinal"]), "sha256": sha,
            "reason": _seal_value(conn, why, where), "sealed_as": where})
    if left:
        _rebuild_pdfs(conn, config, (paper_id,))
        return paper_id
    return None


RETURN_OP = "returned_to_citizen"


def return_to_citizen(conn: sqlite3.Connection, *, dossier_id: int, officer: str,
                      reason: str) -> None:
    """The officer hands the papers back (a page missing, the wrong paper): a submitted
    dossier ends cancelled and the reason goes into its audit trail, sealed like every
    free text an officer types (it may name the citizen).

    The state change and the audit line are one transaction: a crash between two
    commits would leave a cancelled dossier whose screen cannot say why, and a dossier
    that cannot be cancelled (signed meanwhile, a scan running) gets no line at all.
    """
    officer = _officer(officer)
    why = unicodedata.normalize("NFC", (reason or "").strip())[:MAX_REASON]
    if not why:
        raise ReasonRequired("returning a dossier needs a reason")
    where = f"return:{dossier_id}"
    with transaction(conn):
        _check_editable(conn, dossier_id)
        row = conn.execute("SELECT status, code FROM dossiers WHERE id=?",
                           (dossier_id,)).fetchone()
        if row["status"] != "submitted":
            raise InvalidState(f"dossier {row['code']} is {row['status']}, not submitted")
        conn.execute("UPDATE dossiers SET status='cancelled' WHERE id=?", (dossier_id,))
        audit.append(conn, audit.AuditAction.CORRECTION, officer, dossier_id, {
            "op": RETURN_OP, "reason": _seal_value(conn, why, where), "sealed_as": where})


def returned_reason(conn: sqlite3.Connection, dossier_id: int) -> str | None:
    """Why the dossier was handed back to its citizen, if it was (the last such line)."""
    for entry in reversed(audit.entries(conn, dossier_id)):
        if entry.detail.get("op") == RETURN_OP:
            return entry_reason(conn, entry)
    return None


def entry_reason(conn: sqlite3.Connection, entry: audit.AuditEntry) -> str | None:
    """The officer's reason an audit line of theirs keeps sealed (a page deleted, a
    dossier returned, a correction), opened with the key."""
    reason = entry.detail.get("reason")
    if not isinstance(reason, str):
        return None
    return open_text(conn, reason, aad("audit_log", "value",
                                       str(entry.detail.get("sealed_as", ""))))


# -- the review screen ----------------------------------------------------------------
def _stored_box(box: object, size: tuple[int, int] | None,
                rotation: int) -> tuple[int, int, int, int] | None:
    """A box read on the page as OCR turned it, in the stored image's pixels."""
    if not (isinstance(box, list | tuple) and len(box) == 4
            and all(isinstance(c, int | float) for c in box)):
        return None
    x0, y0, x1, y1 = (float(c) for c in box)
    turn = rotation % 360
    if size is None or turn == 0:
        return (int(x0), int(y0), int(x1), int(y1))
    w, h = size  # the stored image
    if turn == 180:
        pts = [(w - x, h - y) for x, y in ((x0, y0), (x1, y1))]
    elif turn == 90:  # read on the image turned 90° counter-clockwise (h wide, w high)
        pts = [(w - y, x) for x, y in ((x0, y0), (x1, y1))]
    elif turn == 270:
        pts = [(y, h - x) for x, y in ((x0, y0), (x1, y1))]
    else:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys)))


def _review_field(spec: FieldSpec | None, name: str, entry: Mapping[str, Any] | None,
                  pages: Sequence[sqlite3.Row], rotations: Sequence[int]) -> ReviewField:
    kind = spec.kind if spec else "text"
    mandatory = bool(spec and spec.mandatory)
    if not entry:
        return ReviewField(name, kind, mandatory, None, None, SOURCE_OCR,
                           "missing" if mandatory else "empty",
                           "mandatory field not found on the paper" if mandatory else None,
                           (), None, None, None, None)
    page = entry.get("page") if isinstance(entry.get("page"), int) else None
    page_row = pages[page] if page is not None and 0 <= page < len(pages) else None
    rotation = rotations[page] if page_row is not None and page is not None else 0
    size = (int(page_row["width"]), int(page_row["height"])) if page_row is not None else None
    source = str(entry.get("source") or (SOURCE_OFFICER if entry.get("corrected_by")
                                         else SOURCE_OCR))
    conf = entry.get("confidence")
    at = entry.get("corrected_at")
    return ReviewField(
        name, kind, mandatory, entry.get("value"), _ocr_reading(entry), source,
        str(entry.get("status") or "uncertain"), entry.get("reason"),
        tuple(str(f) for f in entry.get("flags") or ()),
        float(conf) if isinstance(conf, int | float) else None, page,
        int(page_row["id"]) if page_row is not None else None,
        _stored_box(entry.get("box"), size, rotation) if page_row is not None else None,
        entry.get("corrected_by"), float(at) if isinstance(at, int | float) else None)


def review_paper(conn: sqlite3.Connection, config: Config, paper_id: int) -> PaperReview:
    """A paper with every field its type yields (found or not), then any other field
    stored for it, for the officer's review screen."""
    catalogue = _catalogue(config)
    row = _paper_row(conn, None, paper_id)
    fields = _load_fields(conn, row)
    code = fields.get("paper_type") if isinstance(fields.get("paper_type"), str) else None
    known = code is not None and catalogue.paper(code) is not None
    paper = _paper_type(fields, catalogue)
    pages = conn.execute("SELECT id, width, height FROM pages WHERE paper_id=? "
                         "ORDER BY ordinal", (paper_id,)).fetchall()
    rotations = [r.text.rotation if r.text is not None else 0
                 for r in page_store.paper_pages(conn, paper_id)]
    detailed = fields.get("fields") if isinstance(fields.get("fields"), dict) else {}
    out = [_review_field(spec, spec.name, detailed.get(spec.name), pages, rotations)
           for spec in paper.fields]
    out += [_review_field(None, name, entry, pages, rotations)
            for name, entry in detailed.items()
            if paper.field(name) is None and isinstance(entry, dict)]
    status = conn.execute("SELECT status FROM dossiers WHERE id=?",
                          (row["dossier_id"],)).fetchone()
    return PaperReview(int(row["dossier_id"]), paper_id, int(row["ordinal"]),
                       str(row["title"]), code, known, tuple(out),
                       status is not None and status["status"] in EDITABLE)


def review_fields(conn: sqlite3.Connection, config: Config,
                  paper_id: int) -> tuple[ReviewField, ...]:
    """Per field of a paper: value, OCR value, source, status and reason, confidence,
    and its box on its page (see ReviewField)."""
    return review_paper(conn, config, paper_id).fields
