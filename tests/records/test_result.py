"""Sign-off issues each paper's result: a signed PDF/A and a metadata document.

One dossier of two papers (two pages, then one) is signed off once per module and
looked at from every side: the record names the signed PDF, the signature verifies
and breaks on one changed byte, pdftotext finds the name on page 1, pages are kept in
number and order, the QR code read from a rendering carries the codes, the metadata
follows the schema with the officer's correction in it, and the worker's superseded
PDF is gone.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from appliance.records import dossiers, pdfsign, result
from appliance.records.errors import InvalidState
from appliance.store.db import connect
from appliance.system.config import Config, with_overrides
from tests.helpers.signed_papers import CORRECTOR, files_of, scanned_forms

OFFICER = "Nguyễn Thị Lan"
needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="poppler-utils not installed")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """(config, conn, scanned forms, record id, old PDF shas) of one signed dossier."""
    tmp = tmp_path_factory.mktemp("signed")
    config = with_overrides(Config(), paths={"data_dir": str(tmp)})
    conn = connect(config.paths.database)
    forms = scanned_forms(conn, config, ((1, 2), (3,)))
    old = [p.pdf_sha256 for p in dossiers.get(conn, forms.dossier_id).papers]
    record_id = dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
    yield config, conn, forms, record_id, old
    conn.close()


def _results(signed) -> list[tuple[bytes, dict]]:
    config, conn, forms, _, _ = signed
    files = files_of(conn, config)
    return [result.load(files, p.pdf_sha256)
            for p in dossiers.get(conn, forms.dossier_id).papers]


def _device_cert(config: Config) -> bytes:
    return (Path(config.paths.data_dir) / "signing" / pdfsign.DEVICE_CERT).read_bytes()


def _tool(*args: str, stdin: bytes) -> str:
    return subprocess.run(args, input=stdin, capture_output=True, check=True,
                          timeout=60).stdout.decode("utf-8")


def test_the_record_names_the_signed_pdfs(signed):
    config, conn, forms, record_id, old = signed
    dossier = dossiers.get(conn, forms.dossier_id)
    body = json.loads(dossiers.record_of(conn, record_id).body_json)
    files = files_of(conn, config)
    for paper, entry, before in zip(dossier.papers, body["papers"], old, strict=True):
        assert entry["file"]["sha256"] == paper.pdf_sha256 != before
        pdf = files.read(paper.pdf_sha256, ".pdf")
        assert entry["file"]["size"] == paper.pdf_size == len(pdf)
        assert not files.exists(before, ".pdf"), "the worker's unsigned PDF was left behind"


def test_the_signature_verifies_and_fails_after_one_changed_byte(signed):
    config = signed[0]
    for pdf, document in _results(signed):
        check = pdfsign.verify_pdf(pdf, [_device_cert(config)])
        assert check.intact and check.valid and check.covers_whole_file, check.summary
        assert check.signer == OFFICER and check.signed_at is not None
        assert document["file"]["signature"]["signer"] == OFFICER
        for where in (len(pdf) // 3, len(pdf) - 200):  # a page image, the signed trailer
            broken = bytearray(pdf)
            broken[where] ^= 0x01
            assert not pdfsign.verify_pdf(bytes(broken), [_device_cert(config)]).intact
        other = pdfsign.ensure_device_key(Path(config.paths.data_dir) / "other", "x", "y")
        untrusted = pdfsign.verify_pdf(pdf, [Path(other.signing_cert).read_bytes()])
        assert untrusted.intact and not untrusted.valid


def test_signing_keeps_the_file_pdfa(signed):
    from pyhanko.pdf_utils.reader import PdfFileReader

    for pdf, _ in _results(signed):
        reader = PdfFileReader(io.BytesIO(pdf))
        xmp = reader.root["/Metadata"].data.decode("utf-8")
        assert 'pdfaid:part="2"' in xmp or "<pdfaid:part>2</pdfaid:part>" in xmp
        assert 'pdfaid:conformance="B"' in xmp or "<pdfaid:conformance>B" in xmp
        assert reader.root.get("/Version") in (None, "/1.7")  # never PDF 2.0 in a PDF/A-2
        info_producer = str(reader.trailer["/Info"]["/Producer"])
        assert f'pdf:Producer="{info_producer}"' in xmp or \
            f"<pdf:Producer>{info_producer}</pdf:Producer>" in xmp
        (widget,) = [a.get_object() for a in reader.root["/Pages"]["/Kids"][0]["/Annots"]]
        assert widget["/F"] & 4 and not widget["/F"] & (1 | 2 | 32)  # printed, visible
        assert set(widget["/AP"].keys()) == {"/N"}
        assert "/NeedAppearances" not in reader.root["/AcroForm"]


@needs_poppler
def test_fonts_embedded_text_found_pages_kept(signed):
    _, _, forms, _, _ = signed
    for (pdf, document), name, shas in zip(_results(signed), forms.names, forms.page_shas,
                                           strict=True):
        for row in _tool("pdffonts", "-", stdin=pdf).splitlines()[2:]:
            assert row.split()[-5:-2] == ["yes", "yes", "yes"], row
        page1 = _tool("pdftotext", "-f", "1", "-l", "1", "-", "-", stdin=pdf)
        assert name in page1
        assert "BẢN ĐIỆN TỬ CHUYỂN ĐỔI TỪ VĂN BẢN GIẤY" in page1 and OFFICER in page1
        info = _tool("pdfinfo", "-", stdin=pdf)
        assert f"Pages:           {len(shas)}" in info
        assert document["page_count"] == len(shas)
        assert [p["sha256"] for p in document["pages"]] == shas  # order kept
        assert [p["ordinal"] for p in document["pages"]] == list(range(1, len(shas) + 1))


@needs_poppler
def test_the_qr_code_carries_the_codes(signed, tmp_path):
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    _, conn, forms, _, _ = signed
    dossier = dossiers.get(conn, forms.dossier_id)
    for (pdf, document), paper in zip(_results(signed), dossier.papers, strict=True):
        out = tmp_path / paper.result_code
        subprocess.run(["pdftoppm", "-r", "150", "-f", "1", "-l", "1", "-png", "-", str(out)],
                       input=pdf, check=True, timeout=60)
        found = [r.text for r in zxingcpp.read_barcodes(Image.open(next(
            tmp_path.glob(f"{paper.result_code}*.png"))))]
        digest = hashlib.sha256("\n".join(p.sha256 for p in paper.pages).encode()).hexdigest()
        assert found == [f"BHXHSH|1|{dossier.code}|{paper.result_code}|tk1-ts|{digest}"]
        assert document["mark"]["qr"] == found[0] and document["pages_digest"] == digest


def test_metadata_follows_the_schema_with_the_correction(signed):
    _, conn, forms, _, _ = signed
    dossier = dossiers.get(conn, forms.dossier_id)
    for (pdf, document), paper in zip(_results(signed), dossier.papers, strict=True):
        result.validate(document)
        assert document["schema"] == result.RESULT_SCHEMA
        assert document["dossier_code"] == dossier.code
        assert document["result_code"] == paper.result_code
        assert document["procedure_code"] == "tk1-ts"
        assert document["paper"]["paper_type"] == "tk1-ts"
        assert document["file"]["sha256"] == hashlib.sha256(pdf).hexdigest()
        assert document["file"]["conformance"] == "PDF/A-2b"
        assert document["scanned"]["by"] == ["citizen"]
        assert document["checked"]["by"] == document["signed"]["by"] == [OFFICER]
        name = document["fields"]["full_name"]
        assert (name["source"], name["corrected_by"]) == ("ocr", None)
        number = document["fields"]["bhxh_number"]
        assert (number["source"], number["corrected_by"]) == ("officer", CORRECTOR)
        assert number["ocr_value"] != number["value"]


def test_a_bad_metadata_document_is_refused(signed):
    _, document = _results(signed)[0]
    for spoil in (lambda d: d.pop("result_code"),
                  lambda d: d["file"].update(sha256="not-a-hash"),
                  lambda d: d["fields"]["full_name"].update(source="guess"),
                  lambda d: d["pages"].clear(),
                  lambda d: d.update(extra=1),
                  lambda d: d["signed"].update(at="yesterday")):
        bad = copy.deepcopy(document)
        spoil(bad)
        with pytest.raises(result.ResultInvalid):
            result.validate(bad)


def test_signing_twice_is_refused_before_anything_is_built(signed):
    config, conn, forms, _, _ = signed
    with pytest.raises(InvalidState):
        dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)


@pytest.fixture
def fresh(tmp_path):
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path)})
    conn = connect(config.paths.database)
    yield config, conn
    conn.close()


def _stored_pdfs(config: Config) -> set[str]:
    return {p.name for p in config.paths.files.glob("*/*.pdf")}


def test_a_sign_off_that_does_not_commit_leaves_no_signed_files(fresh, monkeypatch):
    config, conn = fresh
    forms = scanned_forms(conn, config, ((4,),))
    before = _stored_pdfs(config)

    def page_moved(conn: sqlite3.Connection, issued: list) -> None:
        raise InvalidState("paper changed while it was being signed")

    monkeypatch.setattr(result, "apply", page_moved)
    with pytest.raises(InvalidState):
        dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
    assert _stored_pdfs(config) == before  # the worker's PDF kept, no signed one left
    assert not list(config.paths.files.glob("*/*.result.json"))
    dossier = dossiers.get(conn, forms.dossier_id)
    assert dossier.status == "submitted" and dossier.papers[0].result_code is None


def test_pages_changed_after_building_are_refused(fresh):
    config, conn = fresh
    forms = scanned_forms(conn, config, ((5, 6),))
    issued = result.issue(conn, config, forms.dossier_id, OFFICER, 1_790_000_000.0)
    conn.execute("DELETE FROM pages WHERE sha256=?", (forms.page_shas[0][1],))
    with pytest.raises(InvalidState):
        result.apply(conn, issued)


def test_an_unsubmitted_dossier_builds_nothing(fresh):
    config, conn = fresh
    forms = scanned_forms(conn, config, ((7,),), submit=False)
    with pytest.raises(InvalidState):
        result.issue(conn, config, forms.dossier_id, OFFICER, 1_790_000_000.0)
    assert len(_stored_pdfs(config)) == 1


def test_a_configured_key_signs_instead_of_the_device_key(tmp_path):
    from asn1crypto import pem

    from appliance.system.errors import ConfigError

    made = pdfsign.ensure_device_key(tmp_path / "issued", "Phạm Quốc Việt", "BHXH Hà Nội")
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")},
                            records={"signing_key": made.signing_key,
                                     "signing_cert": made.signing_cert})
    conn = connect(config.paths.database)
    try:
        forms = scanned_forms(conn, config, ((8,),))
        dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
        paper = dossiers.get(conn, forms.dossier_id).papers[0]
        pdf, document = result.load(files_of(conn, config), paper.pdf_sha256)
    finally:
        conn.close()
    assert not (tmp_path / "data" / "signing").exists()  # no device key was made
    cert = Path(made.signing_cert).read_bytes()
    assert pdfsign.verify_pdf(pdf, [cert]).valid
    signature = document["file"]["signature"]
    assert signature["key_source"] == "software"
    assert signature["certificate_sha256"] == hashlib.sha256(pem.unarmor(cert)[2]).hexdigest()
    with pytest.raises(ConfigError):  # a PEM key without its certificate is refused at start
        with_overrides(Config(), records={"signing_key": made.signing_key})


@pytest.mark.skipif(shutil.which("qpdf") is None, reason="qpdf not installed")
def test_qpdf_finds_no_structural_error(signed, tmp_path):
    """An independent parser over the signed files (xref, streams, the incremental
    update): no error and no warning."""
    for n, (pdf, _) in enumerate(_results(signed)):
        path = tmp_path / f"{n}.pdf"
        path.write_bytes(pdf)
        done = subprocess.run(["qpdf", "--check", str(path)], capture_output=True,
                              timeout=60)
        report = (done.stdout + done.stderr).decode("utf-8", "replace")
        assert done.returncode == 0 and "WARNING" not in report.upper(), report


def test_erasure_removes_the_signed_pdf_and_its_metadata(fresh):
    from appliance.records import erasure

    config, conn = fresh
    forms = scanned_forms(conn, config, ((9,),))
    dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
    sha = dossiers.get(conn, forms.dossier_id).papers[0].pdf_sha256
    files = files_of(conn, config)
    assert files.exists(sha, ".pdf") and files.exists(sha, result.RESULT_SUFFIX)
    erasure.erase(conn, files, forms.dossier_id, OFFICER)
    assert not files.exists(sha, ".pdf") and not files.exists(sha, result.RESULT_SUFFIX)
    assert not list(config.paths.files.glob("*/*"))  # nothing of the citizen is left
