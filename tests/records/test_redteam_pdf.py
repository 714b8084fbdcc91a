"""Red-team checks of the signed result PDF with tools the project did not write.

A dossier is signed off with a key issued by a throw-away CA (tests/helpers/certs.py,
made at test time), then:

- pyhanko's own validator, trusting only that CA, looks at the untouched file;
- the file is tampered with after signing (incremental updates that change /Info,
  XMP, add a page, an annotation, new page content; bytes appended; one byte flipped
  inside the signed range) and the project's verifier (records/pdfsign.verify_pdf)
  must not call any of them valid;
- officers' names the authors did not try (PDF string and XML metacharacters, NFD,
  zero-width and bidi controls, emoji, the web's longest name, control characters,
  a lone surrogate) go through sign-off: the file must stay well formed (qpdf,
  pdfinfo), signed, with XMP that parses and agrees with /Info, and text pdftotext
  can read;
- the PDF/A claims of imaging/pdfa.py are checked by inspection (no veraPDF here).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from appliance.imaging import pdfa
from appliance.records import dossiers, pdfsign, result
from appliance.records.errors import RecordsError
from appliance.store.db import connect
from appliance.system.config import Config, with_overrides
from tests.helpers.certs import make_pki
from tests.helpers.signed_papers import files_of, scanned_forms

OFFICER = "Nguyễn Thị Lan"
TOOLS = ("qpdf", "pdfinfo", "pdftotext", "pdffonts", "pdftoppm")
needs_tools = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                 reason="qpdf / poppler-utils not installed")
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC = "{http://purl.org/dc/elements/1.1/}"


# -- fixtures -------------------------------------------------------------------------
@dataclass(frozen=True)
class Officer:
    ca_cert: Path
    key: Path
    cert: Path


def _officer_certificate(pki, folder: Path) -> Officer:
    """A signing certificate from the test CA, as an agency would issue one: EC P-256,
    key usage digitalSignature + nonRepudiation (pyhanko's validator asks for it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key = serialization.load_pem_private_key(pki.ca_cert.with_name("ca.key").read_bytes(),
                                                None)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Nguyen Thi Lan"),
                                     x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False,
                                         False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    key_path, cert_path = folder / "officer.key", folder / "officer.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Officer(pki.ca_cert, key_path, cert_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Officer:
    folder = tmp_path_factory.mktemp("pki")
    return _officer_certificate(make_pki(folder), folder)


def _config(data: Path, pki: Officer) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(data)},
                          records={"signing_key": str(pki.key), "signing_cert": str(pki.cert)})


def _sign_off(data: Path, pki, officer: str, seeds=((1,),)) -> tuple[bytes, dict]:
    config = _config(data, pki)
    conn = connect(config.paths.database)
    try:
        forms = scanned_forms(conn, config, seeds)
        dossiers.sign_off(conn, config, forms.dossier_id, officer)
        paper = dossiers.get(conn, forms.dossier_id).papers[0]
        return result.load(files_of(conn, config), paper.pdf_sha256)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def signed(tmp_path_factory, pki) -> bytes:
    pdf, _ = _sign_off(tmp_path_factory.mktemp("signed"), pki, OFFICER)
    return pdf


def _ca(pki) -> bytes:
    return pki.ca_cert.read_bytes()


def _pyhanko_status(pdf: bytes, pki):
    from asn1crypto import pem, x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    _, _, der = pem.unarmor(_ca(pki))
    context = ValidationContext(trust_roots=[x509.Certificate.load(der)], allow_fetching=False)
    reader = PdfFileReader(io.BytesIO(pdf))
    (sig,) = reader.embedded_signatures
    return sig, validate_pdf_signature(sig, context)


def _tool(*args: str, stdin: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=60)


# -- the untouched file, by pyhanko's validator -----------------------------------------
def test_pyhanko_validates_the_untouched_file_against_the_ca(signed, pki):
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    sig, status = _pyhanko_status(signed, pki)
    assert status.intact and status.valid and status.trusted, status.summary()
    assert status.bottom_line, status.summary()
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.modification_level in (None, ModificationLevel.NONE)
    assert status.md_algorithm == "sha256"
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    assert "Nguyen Thi Lan" in status.signing_cert.subject.human_friendly
    # the byte range starts at 0, ends at the end of the file, skips only /Contents
    start, len1, start2, len2 = (int(v) for v in sig.sig_object["/ByteRange"])
    assert start == 0 and start2 + len2 == len(signed) and start2 > len1
    assert re.fullmatch(rb"<[0-9a-fA-F]+>", signed[len1:start2])
    check = pdfsign.verify_pdf(signed, [_ca(pki)])
    assert check.intact and check.valid and check.covers_whole_file, check.summary
    assert check.signer == OFFICER


# -- tampering after signing ----------------------------------------------------------
def _incremental(pdf: bytes, change) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _change_info_title(writer) -> None:
    from pyhanko.pdf_utils.generic import pdf_string

    info = writer.trailer["/Info"]
    info["/Title"] = pdf_string("Giấy chứng tử (FORGED)")
    info["/Author"] = pdf_string("Kẻ giả mạo")
    writer.update_container(info)


def _change_xmp(writer) -> None:
    from pyhanko.pdf_utils import generic

    xmp = writer.root["/Metadata"].get_object().data.replace(
        "Nguyễn Thị Lan".encode(), "Kẻ giả mạo".encode())
    stream = generic.StreamObject({generic.pdf_name("/Type"): generic.pdf_name("/Metadata"),
                                   generic.pdf_name("/Subtype"): generic.pdf_name("/XML")},
                                  stream_data=xmp)
    writer.root["/Metadata"] = writer.add_object(stream)
    writer.update_root()
    # pyhanko's writer would regenerate the XMP from its own metadata on write: an
    # attacker's tool writes the forged packet as it is
    writer._update_meta = lambda: None


def _add_page(writer) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PageObject

    content = writer.add_object(generic.StreamObject(stream_data=b"0 0 1 rg 0 0 50 50 re f"))
    box = generic.ArrayObject([generic.NumberObject(v) for v in (0, 0, 200, 200)])
    writer.insert_page(PageObject(contents=content, media_box=box))


def _add_annotation(writer) -> None:
    from pyhanko.pdf_utils import generic

    page = writer.root["/Pages"]["/Kids"][0].get_object()
    annot = writer.add_object(generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
        generic.pdf_name("/Subtype"): generic.pdf_name("/FreeText"),
        generic.pdf_name("/Rect"): generic.ArrayObject(
            [generic.NumberObject(v) for v in (100, 100, 400, 140)]),
        generic.pdf_name("/Contents"): generic.pdf_string("HỌ TÊN: KẺ GIẢ MẠO"),
        generic.pdf_name("/DA"): generic.pdf_string("/Helv 12 Tf 0 g")}))
    page["/Annots"].append(annot)
    writer.update_container(page)


def _replace_content(writer) -> None:
    from pyhanko.pdf_utils import generic

    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = writer.add_object(
        generic.StreamObject(stream_data=b"q 1 1 1 rg 0 0 600 900 re f Q"))
    writer.update_container(page)


@pytest.mark.parametrize("change", [_add_page, _add_annotation, _replace_content],
                         ids=["page-added", "annotation-added", "page-content-replaced"])
def test_a_visible_change_after_signing_is_not_valid(signed, pki, change):
    tampered = _incremental(signed, change)
    check = pdfsign.verify_pdf(tampered, [_ca(pki)])
    assert check.intact  # the signed revision itself is untouched
    assert not check.valid and not check.covers_whole_file, check.summary


def test_info_rewritten_after_signing_is_not_valid(signed, pki):
    tampered = _incremental(signed, _change_info_title)
    info = _tool("pdfinfo", "-", stdin=tampered).stdout.decode()
    assert "FORGED" in info  # what every viewer now shows as the document's title
    check = pdfsign.verify_pdf(tampered, [_ca(pki)])
    assert not check.covers_whole_file
    assert not check.valid, check.summary


def test_xmp_rewritten_after_signing_is_not_valid(signed, pki):
    from pyhanko.pdf_utils.reader import PdfFileReader

    tampered = _incremental(signed, _change_xmp)
    xmp = PdfFileReader(io.BytesIO(tampered)).root["/Metadata"].data.decode()
    assert "Kẻ giả mạo" in xmp and "Nguyễn Thị Lan" not in xmp
    check = pdfsign.verify_pdf(tampered, [_ca(pki)])
    assert not check.covers_whole_file
    assert not check.valid, check.summary


def test_bytes_appended_after_signing_are_not_valid(signed, pki):
    check = pdfsign.verify_pdf(signed + b"\n% appended after signing\n", [_ca(pki)])
    assert not check.covers_whole_file
    assert not check.valid, check.summary


@needs_tools
def test_a_forged_stamp_over_the_paper_is_not_valid(signed, pki, tmp_path):
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.stamp import TextStampStyle

    attacker = pdfsign.ensure_device_key(tmp_path / "attacker", "attacker", "nobody")
    signer = signers.SimpleSigner.load(attacker.signing_key, attacker.signing_cert)
    stamp = TextStampStyle(stamp_text="HO TEN: KE GIA MAO", background=None)
    out = io.BytesIO()
    class _IgnoresTheLock(signers.PdfSigner):
        """An attacker's tool: pyhanko itself refuses to sign over the officer's
        certification (DocMDP: no changes), another tool would not ask."""

        def _enforce_certification_constraints(self, reader: object) -> None:
            return None

    _IgnoresTheLock(signers.PdfSignatureMetadata(field_name="Sig2"), signer=signer,
                    stamp_style=stamp,
                    new_field_spec=fields.SigFieldSpec("Sig2", on_page=0,
                                                       box=(50, 300, 550, 600))
                    ).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(signed)), output=out)
    tampered = out.getvalue()
    text = _tool("pdftotext", "-f", "1", "-l", "1", "-", "-", stdin=tampered).stdout.decode()
    assert "KE GIA MAO" in text  # drawn on page 1, over the scanned paper
    check = pdfsign.verify_pdf(tampered, [_ca(pki)])
    assert not check.valid, check.summary
    # And not only for our verifier: pyhanko's own verdict (what a viewer shows) sees
    # the officer's certification broken by the change.
    from asn1crypto import pem, x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    _, _, der = pem.unarmor(_ca(pki))
    officer = PdfFileReader(io.BytesIO(tampered)).embedded_signatures[0]
    status = validate_pdf_signature(officer, ValidationContext(
        trust_roots=[x509.Certificate.load(der)], allow_fetching=False))
    assert not status.bottom_line, status.summary()


def test_one_flipped_byte_anywhere_in_the_signed_range_breaks_it(signed, pki):
    sig, _ = _pyhanko_status(signed, pki)
    _, len1, start2, _ = (int(v) for v in sig.sig_object["/ByteRange"])
    places = {
        "header": 12,
        "xmp": signed.index(b"<pdfaid:part>"),
        "info": signed.index(b"/CreationDate"),
        "font": signed.index(b"/FontFile2"),
        "image": signed.index(b"/DCTDecode") + 200,
        "before-contents": len1 - 30,
        "byte-range": signed.index(b"/ByteRange", start2) + 14,
        "signing-time": signed.index(b"/M (D", start2) + 8,
        "signer-name": signed.index(b"/Name (", start2) + 12,
        "final-trailer": len(signed) - 20,
    }
    for what, where in places.items():
        broken = bytearray(signed)
        broken[where] ^= 0x01
        check = pdfsign.verify_pdf(bytes(broken), [_ca(pki)])
        assert not check.valid, (what, check.summary)
        assert not (check.intact and check.covers_whole_file), (what, check.summary)


def test_a_flipped_byte_in_the_signature_value_is_not_valid(signed, pki):
    sig, _ = _pyhanko_status(signed, pki)
    _, len1, _, _ = (int(v) for v in sig.sig_object["/ByteRange"])
    broken = bytearray(signed)
    broken[len1 + 200] = ord("0") if broken[len1 + 200] != ord("0") else ord("1")
    check = pdfsign.verify_pdf(bytes(broken), [_ca(pki)])
    assert not check.valid, check.summary


def test_the_unsigned_revision_alone_has_no_valid_signature(signed, pki):
    first_eof = signed.index(b"%%EOF") + len(b"%%EOF\n")
    check = pdfsign.verify_pdf(signed[:first_eof], [_ca(pki)])
    assert not check.valid and not check.intact


def test_a_signature_from_another_ca_is_not_trusted(signed, tmp_path):
    other = make_pki(tmp_path / "other")
    check = pdfsign.verify_pdf(signed, [other.ca_cert.read_bytes()])
    assert check.intact and not check.valid


# -- hostile officers' names through sign-off -----------------------------------------
def _xmp_values(pdf: bytes) -> dict[str, str]:
    from pyhanko.pdf_utils.reader import PdfFileReader

    data = PdfFileReader(io.BytesIO(pdf)).root["/Metadata"].data
    body = data.split(b"?>", 1)[1].rsplit(b"<?xpacket", 1)[0]
    root = ET.fromstring(body)
    return {"title": root.find(f".//{DC}title/{RDF}Alt/{RDF}li").text or "",
            "creator": root.find(f".//{DC}creator/{RDF}Seq/{RDF}li").text or ""}


def _info(pdf: bytes) -> dict[str, str]:
    from pyhanko.pdf_utils.reader import PdfFileReader

    info = PdfFileReader(io.BytesIO(pdf)).trailer["/Info"]
    return {k: str(v) for k, v in info.items()}


HOSTILE = {
    "pdf-string-injection": "Lan) /JS (app.alert(1)) /S /JavaScript \\ (x",
    "xml-metacharacters": "Lan <b>&amp;</b> ]]> <?xpacket end='w'?> \"'",
    "zero-width-and-bidi": "Nguyễn\u200b Thị\u202e Lan\u2066\u200d",
    "emoji-astral": "Lan 😀 Nguyễn 𠀋",
    "web-maximum-length": ("Nguyễn Thị Lan " * 8).strip(),
    "hex-and-angle": "<FEFF0041> Lan <</Type /Catalog>>",
}


@needs_tools
@pytest.mark.parametrize("officer", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_officer_names_keep_the_pdf_whole_and_signed(tmp_path, pki, officer):
    from pyhanko.pdf_utils.reader import PdfFileReader

    pdf, document = _sign_off(tmp_path, pki, officer)
    path = tmp_path / "paper.pdf"
    path.write_bytes(pdf)
    check = _tool("qpdf", "--check", str(path), stdin=b"")
    report = (check.stdout + check.stderr).decode("utf-8", "replace")
    assert check.returncode == 0 and "WARNING" not in report.upper(), report
    assert _tool("pdfinfo", str(path), stdin=b"").returncode == 0
    verified = pdfsign.verify_pdf(pdf, [_ca(pki)])
    assert verified.valid and verified.covers_whole_file, verified.summary
    assert verified.signer == officer == document["file"]["signature"]["signer"]
    # /Info and XMP agree (PDF/A-2 6.6.2.3) and carry the name unchanged
    info, xmp = _info(pdf), _xmp_values(pdf)
    assert info["/Author"] == xmp["creator"] == officer
    assert info["/Title"] == xmp["title"]
    # the injected text stayed text: one signature, no action, no script anywhere
    reader = PdfFileReader(io.BytesIO(pdf))
    assert len(reader.embedded_signatures) == 1
    assert not {"/OpenAction", "/AA", "/Names"} & set(reader.root.keys())
    for page in reader.root["/Pages"]["/Kids"]:
        assert "/AA" not in page.get_object()
    assert str(reader.embedded_signatures[0].sig_object["/Name"]) == officer
    # the mark on page 1 names the officer (the characters the font can draw)
    text = _tool("pdftotext", "-f", "1", "-l", "1", str(path), "-", stdin=b"").stdout.decode()
    assert unicodedata.is_normalized("NFC", text)
    flat = " ".join(text.split())
    for word in officer.split():
        drawn = "".join(c for c in word if c.isprintable())
        if drawn and all(ord(c) < 0x10000 for c in drawn):  # DejaVu has no CJK Ext. B
            assert drawn in flat, (drawn, flat[:300])


@needs_tools
def test_a_decomposed_name_is_signed_and_printed_in_nfc(tmp_path, pki):
    nfd = unicodedata.normalize("NFD", OFFICER)
    assert nfd != OFFICER
    pdf, document = _sign_off(tmp_path, pki, nfd)
    text = _tool("pdftotext", "-f", "1", "-l", "1", "-", "-", stdin=pdf).stdout.decode()
    assert OFFICER in text
    assert pdfsign.verify_pdf(pdf, [_ca(pki)]).signer == OFFICER
    assert document["file"]["signature"]["signer"] == OFFICER


def test_a_lone_surrogate_in_the_name_is_refused_cleanly(tmp_path, pki):
    try:
        pdf, document = _sign_off(tmp_path, pki, "Lan \ud800 Thị")
    except RecordsError:
        return  # refused as a records error: fine
    signer = document["file"]["signature"]["signer"]
    assert not any(unicodedata.category(c) == "Cs" for c in signer)
    assert pdfsign.verify_pdf(pdf, [_ca(pki)]).valid


def test_control_characters_in_the_name_never_give_a_broken_file(tmp_path, pki):
    """A C0 control character cannot stand in XMP: sign-off either refuses (today pyhanko
    cannot parse the XMP, a SigningError) and issues nothing, or signs a clean file."""
    config = _config(tmp_path, pki)
    conn = connect(config.paths.database)
    try:
        forms = scanned_forms(conn, config, ((1,),))
        try:
            dossiers.sign_off(conn, config, forms.dossier_id, "Lan\x1b[31m\x00 Thị")
        except RecordsError:
            dossier = dossiers.get(conn, forms.dossier_id)
            assert dossier.status == "submitted" and dossier.papers[0].result_code is None
            assert not list(config.paths.files.glob("*/*.result.json"))
            return
        paper = dossiers.get(conn, forms.dossier_id).papers[0]
        pdf, _ = result.load(files_of(conn, config), paper.pdf_sha256)
    finally:
        conn.close()
    assert _xmp_values(pdf)["creator"] == _info(pdf)["/Author"]
    assert pdfsign.verify_pdf(pdf, [_ca(pki)]).valid


# -- imaging/pdfa.py's PDF/A claims, by inspection --------------------------------------
def _assemble(title: str, author: str, *, width: int = 827, height: int = 1169, dpi: int = 100,
              mark: list[str] | None = None, signature: list[str] | None = None,
              qr: str = "BHXHSH|1|x") -> pdfa.PdfResult:
    page = pdfa.PdfPage(Image.new("RGB", (width, height), "white"), dpi,
                        [pdfa.TextLine("HỌ VÀ TÊN: ĐỖ GIA AN", (80, 80, 500, 110))])
    return pdfa.assemble_pdfa([page], pdfa.DocInfo(title, author, "Bản điện tử",
                                                   created=datetime(2026, 11, 26, tzinfo=UTC)),
                              band=pdfa.MarkBand(mark or ["BẢN ĐIỆN TỬ"], qr,
                                                 signature or ["Ký số bởi:", author]))


@needs_tools
def test_the_signed_file_keeps_its_pdfa_claims(signed):
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(signed))
    assert "/Encrypt" not in reader.trailer and "/ID" in reader.trailer
    (intent,) = reader.root["/OutputIntents"]
    intent = intent.get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    icc = intent["/DestOutputProfile"].get_object()
    assert icc["/N"] == 3 and icc.data[36:40] == b"acsp" and icc.data[16:20] == b"RGB "
    info, xmp = _info(signed), _xmp_values(signed)
    assert info["/Title"] == xmp["title"] and info["/Author"] == xmp["creator"]
    raw = reader.root["/Metadata"].data.decode()
    for key, tag in (("/Producer", "pdf:Producer"), ("/Creator", "xmp:CreatorTool")):
        assert re.search(rf'{tag}(="|>){re.escape(info[key])}', raw), (key, raw)
    fonts = _tool("pdffonts", "-", stdin=signed).stdout.decode().splitlines()[2:]
    assert fonts and all(r.split()[-5:-2] == ["yes", "yes", "yes"] for r in fonts), fonts
    for obj in (b"/JavaScript", b"/Launch", b"/EmbeddedFile", b"/Transparency"):
        assert obj not in signed


def test_xmp_stays_well_formed_with_a_control_character(tmp_path):
    try:
        built = _assemble("Tờ khai\x0cTK1-TS", OFFICER)  # a form feed, as OCR engines emit
    except pdfa.PdfaError:
        return  # refused: fine
    xmp = _xmp_values(built.pdf)  # parses
    assert xmp["title"] == _info(built.pdf)["/Title"]


def test_xmp_and_info_agree_on_a_title_with_a_carriage_return():
    built = _assemble("Tờ khai\r\nTK1-TS", OFFICER)
    assert _xmp_values(built.pdf)["title"] == _info(built.pdf)["/Title"]


@needs_tools
def test_ocr_text_comes_out_nfc_whatever_it_went_in_as(tmp_path):
    nfd = unicodedata.normalize("NFD", "HỌ VÀ TÊN: ĐỖ GIA AN")
    page = pdfa.PdfPage(Image.new("RGB", (827, 400), "white"), 100,
                        [pdfa.TextLine(nfd, (80, 80, 500, 110))])
    built = pdfa.assemble_pdfa([page], pdfa.DocInfo("t", "a"))
    text = _tool("pdftotext", "-", "-", stdin=built.pdf).stdout.decode()
    assert "HỌ VÀ TÊN: ĐỖ GIA AN" in text and unicodedata.is_normalized("NFC", text)


def _words(pdf: bytes) -> list[tuple[float, float, float, float, str]]:
    out = _tool("pdftotext", "-f", "1", "-l", "1", "-bbox", "-", "-", stdin=pdf).stdout.decode()
    return [(float(a), float(b), float(c), float(d), w) for a, b, c, d, w in re.findall(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
        out)]


@needs_tools
def test_the_band_text_of_a_usual_name_stays_clear_of_the_qr_code():
    mark = ["BẢN ĐIỆN TỬ CHUYỂN ĐỔI TỪ VĂN BẢN GIẤY",
            "Thời điểm chuyển đổi: 27/11/2026 05:45:32 (UTC+07:00)",
            f"Người chuyển đổi: {OFFICER}",
            "Cơ quan: Bảo hiểm xã hội quận Ba Đình (000.00.12.H42), thiết bị kiosk-01",
            "Mã hồ sơ: 000.00.12.H42-261127-0001 - Mã kết quả số hóa: "
            "000.00.12.H42-261127-0001.01"]
    built = _assemble("t", OFFICER, width=1011, height=638, dpi=300, mark=mark)
    width = built.page_sizes[0][0]
    qr_left = width - pdfa.BAND_PAD - (pdfa.BAND_HEIGHT - 2 * pdfa.BAND_PAD)
    over = [w for w in _words(built.pdf) if w[2] > qr_left + 0.5]
    assert not over, over


@needs_tools
def test_the_longest_allowed_name_stays_inside_its_areas():
    long_name = ("Nguyễn Thị Lan " * 8).strip()  # 119 characters, under MAX_OFFICER_NAME
    mark = ["BẢN ĐIỆN TỬ CHUYỂN ĐỔI TỪ VĂN BẢN GIẤY", f"Người chuyển đổi: {long_name}"]
    # a CCCD card scanned at 300 dpi: the page is widened to MIN_BAND_WIDTH
    built = _assemble("t", long_name, width=1011, height=638, dpi=300, mark=mark,
                      signature=["Ký số bởi:", long_name])
    width, height = built.page_sizes[0]
    qr_left = width - pdfa.BAND_PAD - (pdfa.BAND_HEIGHT - 2 * pdfa.BAND_PAD)
    sig_x0, _, sig_x1, _ = built.signature_box
    words = _words(built.pdf)
    assert words
    over_qr = [w for w in words if w[2] > qr_left + 0.5]
    in_sig_rows = [w for w in words if w[0] < sig_x1 - 1]  # words that start in the box
    out_of_box = [w for w in in_sig_rows if w[2] > sig_x1 + 0.5]
    assert not over_qr, over_qr
    assert not out_of_box, out_of_box
