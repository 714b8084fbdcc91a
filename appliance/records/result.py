"""The digitization result of each paper, issued at sign-off: a signed PDF/A and its
metadata document.

Decision 1333/QĐ-BHXH steps 3-4 (issue the result code, store the result): when the
officer signs a dossier off, each paper's PDF is built again from the stored page
masters (imaging/pdfa.py: PDF/A-2b, invisible OCR text, the conversion mark and a QR
code of the codes above page 1), signed by the officer (records/pdfsign.py, PAdES),
and stored in the file store; beside it goes a JSON document
(`bhxh.digitization.result/1`, result.schema.json) that other procedures can reuse
without opening the PDF. The worker's PDF, built at scan time before any code
existed, is replaced: the record body names the signed PDF's sha256.

Why rebuilt at sign-off rather than at scan time: the mark must say who converted
the paper and when, and the QR must carry the result code; none of these exist
before the officer signs.

Order of writes, as everywhere in the store: the files first (sealed, fsynced),
then the rows in sign-off's transaction. `issuing` is a context manager around that
transaction: if it rolls back (another process signed first, a crash), the files
just written are removed again unless something else names them; if it commits, the
worker's superseded PDF is removed, so an erasure later finds every file of the
paper by the hashes in its row.

The metadata document lives in the file store as a file derived from the signed
PDF (`<pdf sha256>.result.json`): found from the paper's row without a new column,
and removed with the PDF on erasure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from appliance.imaging import pdfa
from appliance.records import audit, codes, pdfsign, signing
from appliance.records import pages as page_store
from appliance.records.errors import InvalidState, RecordsError, RecordTooLarge
from appliance.store.db import sealer_of
from appliance.store.files import FileStore
from appliance.system.config import Config

log = logging.getLogger(__name__)

RESULT_SCHEMA = "bhxh.digitization.result/1"
RESULT_SUFFIX = ".result.json"
PDF_SUFFIX = page_store.PDF
QR_PREFIX = "BHXHSH|1"
MARK_TITLE = "BẢN ĐIỆN TỬ CHUYỂN ĐỔI TỪ VĂN BẢN GIẤY"
CONFORMANCE = "PDF/A-2b"


class ResultInvalid(RecordsError):
    """A metadata document does not follow result.schema.json."""


@dataclass(frozen=True)
class IssuedPaper:
    """One paper's signed result, stored but not yet named by its row."""

    paper_id: int
    result_code: str
    page_shas: tuple[str, ...]
    pdf_sha256: str
    pdf_size: int
    metadata_sha256: str
    superseded_pdf: str | None  # the worker's PDF this one replaces
    # the fields the metadata document was built from: an officer's correction that
    # commits while the PDFs are being signed must not be lost from what is signed
    fields_sha256: str = ""
    document: dict[str, Any] | None = None  # the metadata document, to travel in the record


# -- the schema -----------------------------------------------------------------------
@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """result.schema.json, shipped in the package."""
    text = resources.files("appliance.records").joinpath("result.schema.json").read_text(
        encoding="utf-8")
    value: dict[str, Any] = json.loads(text)
    return value


def validate(document: Mapping[str, Any]) -> None:
    """Raise ResultInvalid, naming the first offending place, unless the document
    follows the schema; run before a document is stored and before it is exported."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(dict(document)), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(document)"
        raise ResultInvalid(f"result metadata invalid at {where}: {first.message}")


# -- pieces of the document -----------------------------------------------------------
def iso(at: float | datetime) -> str:
    """A time as ISO 8601 with its offset, in Vietnam time (what officers read)."""
    when = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    return when.astimezone(codes.VIETNAM).isoformat(timespec="seconds")


def pages_digest(page_shas: Sequence[str]) -> str:
    """One hash for a paper's pages in order: sha256 of their hashes joined by '\\n'.

    Carried in the QR code instead of every page's hash, so the code stays small
    enough to read from a print whatever the number of pages.
    """
    return hashlib.sha256("\n".join(page_shas).encode("ascii")).hexdigest()


def qr_payload(dossier_code: str, result_code: str, procedure_code: str,
               page_shas: Sequence[str]) -> str:
    """What the QR code above page 1 says: `BHXHSH|1|dossier|result|procedure|digest`."""
    return "|".join((QR_PREFIX, dossier_code, result_code, procedure_code,
                     pages_digest(page_shas)))


def mark_lines(config: Config, officer: str, at: float, dossier_code: str,
               result_code: str) -> list[str]:
    """The conversion mark (Decree 137/2024/NĐ-CP Art. 4): converted from paper, when,
    the full name of who converted it, and where."""
    when = datetime.fromtimestamp(at, codes.VIETNAM).strftime("%d/%m/%Y %H:%M:%S")
    device = config.device
    return [
        MARK_TITLE,
        f"Thời điểm chuyển đổi: {when} (UTC+07:00)",
        f"Người chuyển đổi: {officer}",
        f"Cơ quan: {device.agency_name} ({device.agency_code}), thiết bị {device.id}",
        f"Mã hồ sơ: {dossier_code} - Mã kết quả số hóa: {result_code}",
    ]


def _box(value: object) -> list[float] | None:
    if isinstance(value, list | tuple) and len(value) == 4 and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def fields_of(stored: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A paper's fields as signed off: value, where it came from (OCR or an officer's
    correction, with who and when), and the OCR's own reading beside a correction."""
    detailed = stored.get("fields") if isinstance(stored.get("fields"), dict) else {}
    values = stored.get("values") if isinstance(stored.get("values"), dict) else {}
    out: dict[str, dict[str, Any]] = {}
    for name, f in (detailed or {}).items():
        if not isinstance(f, dict):
            continue
        corrected_by = _text(f.get("corrected_by"))
        corrected_at = f.get("corrected_at")
        entry: dict[str, Any] = {
            "value": _text(f.get("value")),
            "source": ("officer" if corrected_by or f.get("source") == "officer"
                       else "qr" if f.get("source") == "qr" else "ocr"),
            "corrected_by": corrected_by,
            "corrected_at": (iso(corrected_at) if isinstance(corrected_at, int | float)
                             else _text(corrected_at)),
            "status": _text(f.get("status")),
            "confidence": f.get("confidence") if isinstance(f.get("confidence"), int | float)
            else None,
            "page": f.get("page") if isinstance(f.get("page"), int) else None,
            "box": _box(f.get("box")),
        }
        if "ocr_value" in f:
            entry["ocr_value"] = _text(f.get("ocr_value"))
        out[str(name)] = entry
    for name, value in (values or {}).items():
        out.setdefault(str(name), {"value": _text(value), "source": "ocr",
                                   "corrected_by": None})
    return out


def _scanned(conn: sqlite3.Connection, config: Config, dossier_id: int, paper_id: int,
             fallback_at: float) -> dict[str, Any]:
    """Who stored the paper's pages and when the last one was stored (audit trail)."""
    actors: list[str] = []
    last = None
    for entry in audit.entries(conn, dossier_id):
        if entry.action == audit.AuditAction.SCAN and entry.detail.get("paper_id") == paper_id:
            if entry.actor not in actors:
                actors.append(entry.actor)
            last = entry.at
    return {"by": actors or [config.device.id], "at": iso(last or fallback_at)}


def metadata_document(config: Config, dossier: Any, paper: Any, *, result_code: str,
                      officer: str, at: float, pdf: bytes, mark: Sequence[str], qr: str,
                      scanned: Mapping[str, Any], key_source: str,
                      certificate: bytes) -> dict[str, Any]:
    """The metadata of one signed paper (`bhxh.digitization.result/1`)."""
    device = config.device
    page_shas = [p.sha256 for p in paper.pages]
    fields = paper.fields if isinstance(paper.fields, dict) else {}
    paper_type = fields.get("paper_type")
    return {
        "schema": RESULT_SCHEMA,
        "dossier_code": dossier.code, "result_code": result_code,
        "procedure_code": dossier.procedure_code,
        "agency_code": device.agency_code, "agency_name": device.agency_name,
        "device_id": device.id,
        "paper": {"ordinal": paper.ordinal, "title": paper.title,
                  "paper_type": paper_type if isinstance(paper_type, str) else None},
        "fields": fields_of(fields),
        "page_count": len(paper.pages),
        "pages": [{"ordinal": p.ordinal, "sha256": p.sha256, "width": p.width,
                   "height": p.height, "dpi": p.dpi, "blank": p.blank} for p in paper.pages],
        "pages_digest": pages_digest(page_shas),
        "file": {"name": f"{result_code}.pdf", "media_type": "application/pdf",
                 "sha256": hashlib.sha256(pdf).hexdigest(), "size": len(pdf),
                 "conformance": CONFORMANCE,
                 "signature": {"format": "PAdES-B-B", "field": pdfsign.FIELD_NAME,
                               "signer": officer, "signed_at": iso(at),
                               "certificate_sha256": hashlib.sha256(certificate).hexdigest(),
                               "key_source": key_source}},
        "scanned": dict(scanned),
        "checked": {"by": [officer], "at": iso(at)},
        "signed": {"by": [officer], "at": iso(at)},
        "mark": {"text": list(mark), "qr": qr},
        "metadata": {"FileCode": dossier.code, "OrganId": device.agency_code,
                     "DocOrdinal": paper.ordinal, "TypeName": paper.title,
                     "PageAmount": len(paper.pages), "Language": "vi",
                     "OrganName": device.agency_name,
                     "Description": "Bản điện tử chuyển đổi từ văn bản giấy"},
    }


def encode(document: Mapping[str, Any]) -> bytes:
    """Canonical bytes (sorted keys, UTF-8), so the same document hashes the same; the
    record names their sha256 (signing.result_digest), hence one encoder for both."""
    return signing.encode_document(document)


# -- keys -----------------------------------------------------------------------------
def key_spec(config: Config) -> pdfsign.KeySpec:
    """The configured signing key (records.* in the configuration), else the device's
    own key, made in the data folder on first use."""
    rc = config.records
    if rc.signing_key or rc.pkcs11_module:
        return pdfsign.KeySpec(
            signing_key=rc.signing_key, signing_cert=rc.signing_cert,
            passphrase=rc.signing_passphrase, pkcs11_module=rc.pkcs11_module,
            pkcs11_token=rc.pkcs11_token, pkcs11_key=rc.pkcs11_key, pkcs11_pin=rc.pkcs11_pin)
    device = config.device
    return pdfsign.ensure_device_key(Path(config.paths.data_dir) / "signing",
                                     f"{device.id} {device.agency_code}", device.agency_name)


# -- building one paper ---------------------------------------------------------------
def build_pdf(files: FileStore, conn: sqlite3.Connection, paper: Any, *, title: str,
              author: str, mark: Sequence[str], qr: str, signature_lines: Sequence[str],
              at: float) -> pdfa.PdfResult:
    """The unsigned PDF/A of a paper from its stored page masters and OCR lines."""
    rows = page_store.paper_pages(conn, paper.id)
    pdf_pages = []
    for row in rows:
        image: Image.Image = page_store.load_image(files, row.sha256)
        lines = [] if row.text is None else [
            pdfa.TextLine(ln.text, tuple(float(v) for v in ln.box))  # type: ignore[arg-type]
            for ln in row.text.lines]
        pdf_pages.append(pdfa.PdfPage(image, row.dpi, lines,
                                      0 if row.text is None else row.text.rotation))
    info = pdfa.DocInfo(title=title, author=author,
                        subject="Bản điện tử chuyển đổi từ văn bản giấy",
                        created=datetime.fromtimestamp(at, UTC))
    return pdfa.assemble_pdfa(pdf_pages, info, band=pdfa.MarkBand(mark, qr, signature_lines))


def _issue_paper(conn: sqlite3.Connection, config: Config, files: FileStore, signer: Any,
                 spec: pdfsign.KeySpec, dossier: Any, paper: Any, officer: str,
                 at: float) -> IssuedPaper:
    result_code = codes.result_code(config.codes, dossier.code, paper.ordinal)
    page_shas = tuple(p.sha256 for p in paper.pages)
    mark = mark_lines(config, officer, at, dossier.code, result_code)
    qr = qr_payload(dossier.code, result_code, dossier.procedure_code, page_shas)
    when = datetime.fromtimestamp(at, codes.VIETNAM).strftime("%d/%m/%Y %H:%M:%S")
    built = build_pdf(files, conn, paper, title=f"{paper.title} - {result_code}",
                      author=officer, mark=mark, qr=qr, at=at,
                      signature_lines=["Ký số bởi:", officer, f"Ngày ký: {when}",
                                       "(UTC+07:00)", config.device.agency_name])
    if built.signature_box is None:  # pragma: no cover - a band is always asked for
        raise RecordsError("the PDF has no signature box")
    signed = pdfsign.sign_pdf(built.pdf, signer, box=built.signature_box, officer=officer,
                              when=datetime.fromtimestamp(at, UTC),
                              location=config.device.agency_name)
    certificate = signer.signing_cert.dump()
    document = metadata_document(
        config, dossier, paper, result_code=result_code, officer=officer, at=at, pdf=signed,
        mark=mark, qr=qr, scanned=_scanned(conn, config, dossier.id, paper.id, at),
        key_source=spec.source, certificate=certificate)
    validate(document)
    pdf_sha = files.put(signed, PDF_SUFFIX)
    meta = encode(document)
    try:
        files.put_derived(pdf_sha, RESULT_SUFFIX, meta)
    except BaseException:
        # Not in `issued` yet, so issue()'s discard would not see it: a signed PDF
        # that no row names must not stay on a full disk until a sweep a day later.
        if not _named(conn, pdf_sha):
            files.remove(pdf_sha, PDF_SUFFIX)
        raise
    return IssuedPaper(paper.id, result_code, page_shas, pdf_sha, len(signed),
                       hashlib.sha256(meta).hexdigest(),
                       paper.pdf_sha256 if paper.pdf_sha256 != pdf_sha else None,
                       fields_digest(paper.fields), document)


def issue(conn: sqlite3.Connection, config: Config, dossier_id: int, officer: str,
          at: float, files: FileStore | None = None) -> list[IssuedPaper]:
    """Build, sign and store every paper's result (files only; no row is written).

    Done before sign-off's transaction, so the database is not held while PDFs are
    built and signed (about a second a paper on a Pi).
    """
    from appliance.records import dossiers  # dossiers calls this module: import late

    dossier = dossiers.get(conn, dossier_id)
    if dossier.status != "submitted":
        raise InvalidState(f"dossier {dossier.code} is {dossier.status}, not submitted")
    files = files or FileStore(config.paths.files, sealer=sealer_of(conn))
    spec = key_spec(config)
    issued: list[IssuedPaper] = []
    try:
        with pdfsign.open_signer(spec) as signer:
            for paper in dossier.papers:
                issued.append(_issue_paper(conn, config, files, signer, spec, dossier, paper,
                                           officer.strip(), at))
    except BaseException:
        discard(conn, files, issued)
        raise
    # No officer's name here: logs must hold no personal data (who signed is in the
    # audit trail and the record).
    log.info("dossier %s: %d paper(s) built as PDF/A and signed (%s key)",
             dossier.code, len(issued), spec.source)
    return issued


def fields_digest(fields: Mapping[str, Any]) -> str:
    """sha256 of a paper's stored fields in canonical JSON (what was signed from)."""
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False, sort_keys=True)
                          .encode("utf-8")).hexdigest()


def apply(conn: sqlite3.Connection, issued: Sequence[IssuedPaper]) -> None:
    """Name the signed PDFs in the papers' rows (inside sign-off's transaction).

    Refuses when a paper's pages changed since its PDF was built (a page moved or
    deleted meanwhile): what is signed must be exactly what is stored.
    """
    for item in issued:
        now_shas = tuple(r["sha256"] for r in conn.execute(
            "SELECT sha256 FROM pages WHERE paper_id=? ORDER BY ordinal", (item.paper_id,)))
        if now_shas != item.page_shas:
            raise InvalidState(f"paper {item.paper_id} changed while it was being signed")
        if item.fields_sha256:
            from appliance.records import dossiers  # dossiers calls this module

            row = conn.execute("SELECT fields_json FROM papers WHERE id=?",
                               (item.paper_id,)).fetchone()
            if fields_digest(dossiers.paper_fields(conn, item.paper_id, row[0])) != \
                    item.fields_sha256:
                raise InvalidState(f"paper {item.paper_id}: a field was corrected while "
                                   "it was being signed; sign again")
        conn.execute("UPDATE papers SET pdf_sha256=?, pdf_size=? WHERE id=?",
                     (item.pdf_sha256, item.pdf_size, item.paper_id))


def _named(conn: sqlite3.Connection, pdf_sha: str) -> bool:
    return conn.execute("SELECT 1 FROM papers WHERE pdf_sha256=? LIMIT 1",
                        (pdf_sha,)).fetchone() is not None


def discard(conn: sqlite3.Connection, files: FileStore, issued: Sequence[IssuedPaper]) -> None:
    """Remove results that no row names (sign-off did not commit)."""
    for item in issued:
        if not _named(conn, item.pdf_sha256):
            files.remove(item.pdf_sha256, PDF_SUFFIX)
            files.remove(item.pdf_sha256, RESULT_SUFFIX)


def settle(conn: sqlite3.Connection, files: FileStore, issued: Sequence[IssuedPaper]) -> None:
    """After the commit: remove the worker's superseded PDFs no row names any more."""
    for item in issued:
        old = item.superseded_pdf
        if old and not _named(conn, old):
            files.remove(old, PDF_SUFFIX)


@contextmanager
def issuing(conn: sqlite3.Connection, config: Config, dossier_id: int, officer: str,
            at: float, *, enabled: bool = True) -> Iterator[list[IssuedPaper]]:
    """`issue` before sign-off's transaction, `discard` or `settle` after it.

    Use as `with issuing(...) as issued, transaction(conn):` so the transaction has
    ended (committed or rolled back) before the files are tidied.
    """
    if not enabled:
        yield []
        return
    files = FileStore(config.paths.files, sealer=sealer_of(conn))
    issued = issue(conn, config, dossier_id, officer, at, files)
    try:
        yield issued
    except BaseException:
        discard(conn, files, issued)
        raise
    try:
        settle(conn, files, issued)
    except Exception as e:  # noqa: BLE001 - the record is committed; a stray file is not fatal
        log.warning("superseded PDF not removed after sign-off: %s", e)


def check_record_size(body_json: str, config: Config, dossier_code: str) -> None:
    """Refuse a record body the sync wire could never carry (records.max_record_chars,
    the wire's 512 KiB by default; records does not import sync, so the limit comes
    through the configuration). Called inside sign-off's transaction: raising rolls
    it back and `issuing` removes the PDFs just signed, so nothing is issued."""
    limit = config.records.max_record_chars
    if len(body_json) > limit:
        raise RecordTooLarge(f"dossier {dossier_code}: its signed record would be "
                             f"{len(body_json)} characters, over the limit of {limit} "
                             "(records.max_record_chars): split the dossier")


def load(files: FileStore, pdf_sha256: str) -> tuple[bytes, dict[str, Any]]:
    """A paper's signed PDF and its metadata document, both verified."""
    pdf = files.read(pdf_sha256, PDF_SUFFIX)
    document = json.loads(files.read_derived(pdf_sha256, RESULT_SUFFIX))
    if document.get("file", {}).get("sha256") != pdf_sha256:
        raise ResultInvalid(f"metadata of {pdf_sha256} names another PDF")
    return pdf, document
