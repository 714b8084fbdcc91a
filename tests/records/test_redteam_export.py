"""Red-team checks of what `appliance record export` hands out, with validators the
project did not write.

A two-paper dossier is signed off and exported; then, independently of
records/result.validate: every metadata document is validated by jsonschema against
the shipped result.schema.json, codes are matched against the formats of
/work/shared/mission/regulations.md (dossier code `<agency>-<YYMMDD>-<NNNN>` with the
Vietnamese receipt day, result code = dossier code + the paper's ordinal), every string
is NFC, hashes are recomputed, the QR code is read back with zxing-cpp from a
rendering of the signed PDF and parsed, and the signing time in the PDF is compared
with the documents'. Then configuration the authors did not try: result-code
templates that lose the ordinal or leave the export folder, an agency name typed
decomposed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import subprocess
import unicodedata
from datetime import datetime
from importlib import resources
from pathlib import Path

import pytest

from appliance.records import codes, dossiers, export, pdfsign, result
from appliance.store.db import connect
from appliance.system.config import Config, dump, with_overrides
from appliance.system.errors import ConfigError
from tests.helpers.signed_papers import scanned_forms

OFFICER = "Trần Thị Hồng Nhung"
AGENCY_RE = r"[0-9A-Z]{3}\.[0-9A-Z]{2}\.[0-9A-Z]{2}\.[0-9A-Z]{3}"
needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None,
                                   reason="poppler-utils not installed")


def _schema(name: str) -> dict:
    return json.loads(resources.files("appliance.records").joinpath(name).read_text("utf-8"))


def _validator(name: str):
    import jsonschema

    schema = _schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _strings(value, path: str = ""):
    """Every string in a JSON value, keys included, with where it is."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}/{k} (key)", k
            yield from _strings(v, f"{path}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}/{i}")


def _export(config: Config, conn, code: str, folder: Path) -> list[export.Exported]:
    files_root = config.paths.files
    from appliance.store.db import sealer_of
    from appliance.store.files import FileStore

    return export.export_dossier(conn, FileStore(files_root, sealer=sealer_of(conn)), code,
                                 folder)


def _sign_and_export(tmp: Path, config: Config, papers=((1,), (2, 3))):
    conn = connect(config.paths.database)
    forms = scanned_forms(conn, config, papers)
    record_id = dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
    dossier = dossiers.get(conn, forms.dossier_id)
    out = tmp / "out"
    written = _export(config, conn, dossier.code, out)
    record = dossiers.record_of(conn, record_id)
    conn.close()
    return dossier, record, out, written


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    config = with_overrides(Config(), paths={"data_dir": str(tmp / "data")})
    dossier, record, out, written = _sign_and_export(tmp, config)
    return config, dossier, record, out, written


# -- the exported files against the shipped schema -------------------------------------
def test_every_exported_document_follows_the_schema(exported):
    _, dossier, _, out, _ = exported
    validator = _validator("result.schema.json")
    for paper in dossier.papers:
        document = json.loads((out / f"{paper.result_code}.json").read_bytes())
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, errors


def test_the_catalogue_follows_its_schema_and_is_nfc():
    catalogue = _schema("catalogue.json")
    errors = [f"{list(e.path)}: {e.message}"
              for e in _validator("catalogue.schema.json").iter_errors(catalogue)]
    assert not errors, errors
    odd = [(p, s) for p, s in _strings(catalogue) if not unicodedata.is_normalized("NFC", s)]
    assert not odd, odd


def test_the_schema_refuses_what_it_should(exported):
    _, dossier, _, out, _ = exported
    validator = _validator("result.schema.json")
    good = json.loads((out / f"{dossier.papers[0].result_code}.json").read_bytes())
    for spoil in (lambda d: d.update(agency_code="000.00.12.h42"),
                  lambda d: d["file"]["signature"].update(signed_at="2026-11-27 05:00:00"),
                  lambda d: d["file"].update(size=0),
                  lambda d: d["mark"].update(qr="BHXHSH|2|x"),
                  lambda d: d["pages"][0].update(sha256="A" * 64),
                  lambda d: d["fields"]["full_name"].update(box=[1, 2, 3])):
        bad = json.loads(json.dumps(good))
        spoil(bad)
        assert list(validator.iter_errors(bad))
        with pytest.raises(result.ResultInvalid):
            result.validate(bad)


# -- codes in the regulations' formats -------------------------------------------------
def test_codes_follow_the_regulations(exported):
    config, dossier, record, out, _ = exported
    body = json.loads(record.body_json)
    match = re.fullmatch(rf"({AGENCY_RE})-(\d{{6}})-(\d{{4}})", dossier.code)
    assert match, dossier.code
    assert match.group(1) == config.device.agency_code
    received = datetime.fromtimestamp(dossier.created_at, codes.VIETNAM)
    assert match.group(2) == received.strftime("%y%m%d")  # the Vietnamese calendar day
    assert 1 <= int(match.group(3)) <= 9999
    seen = set()
    for paper, entry in zip(dossier.papers, body["papers"], strict=True):
        assert paper.result_code == f"{dossier.code}.{paper.ordinal:02d}" == entry["result_code"]
        assert entry["file"]["name"] == f"{paper.result_code}.pdf"
        assert paper.result_code not in seen
        seen.add(paper.result_code)
        document = json.loads((out / f"{paper.result_code}.json").read_bytes())
        assert document["dossier_code"] == body["dossier_code"] == dossier.code
        assert document["metadata"]["FileCode"] == dossier.code
        assert document["metadata"]["OrganId"] == config.device.agency_code
        assert len(document["metadata"]["OrganId"]) == 13


# -- hashes, times, strings -----------------------------------------------------------
def test_hashes_recomputed_from_the_exported_bytes(exported):
    _, dossier, record, out, written = exported
    body = json.loads((out / export.RECORD_FILE).read_bytes())
    assert hashlib.sha256((out / export.RECORD_FILE).read_bytes()).hexdigest() == record.sha256
    for w in written:
        data = (out / w.name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (w.size, w.sha256)
    for paper, entry in zip(dossier.papers, body["papers"], strict=True):
        pdf = (out / f"{paper.result_code}.pdf").read_bytes()
        meta = (out / f"{paper.result_code}.json").read_bytes()
        document = json.loads(meta)
        assert hashlib.sha256(pdf).hexdigest() == entry["file"]["sha256"] == \
            document["file"]["sha256"]
        assert len(pdf) == entry["file"]["size"] == document["file"]["size"]
        assert hashlib.sha256(meta).hexdigest() == entry["result_sha256"]
        assert entry["result"] == document
        shas = [p["sha256"] for p in document["pages"]]
        assert hashlib.sha256("\n".join(shas).encode()).hexdigest() == document["pages_digest"]
        assert document["page_count"] == len(shas) == entry["page_count"]


def test_the_signature_in_the_pdf_matches_the_documents(exported):
    from pyhanko.pdf_utils.reader import PdfFileReader

    config, dossier, record, out, _ = exported
    body = json.loads(record.body_json)
    cert = (Path(config.paths.data_dir) / "signing" / pdfsign.DEVICE_CERT).read_bytes()
    for paper in dossier.papers:
        pdf = (out / f"{paper.result_code}.pdf").read_bytes()
        document = json.loads((out / f"{paper.result_code}.json").read_bytes())
        check = pdfsign.verify_pdf(pdf, [cert])
        assert check.valid and check.covers_whole_file, check.summary
        signature = document["file"]["signature"]
        assert check.signer == signature["signer"] == body["signed_by"] == OFFICER
        signed_at = datetime.fromisoformat(signature["signed_at"])
        assert check.signed_at == signed_at == datetime.fromisoformat(body["signed_at"])
        assert signed_at.utcoffset().total_seconds() == 7 * 3600  # Vietnam time, said so
        (sig,) = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
        assert hashlib.sha256(sig.signer_cert.dump()).hexdigest() == \
            signature["certificate_sha256"]


def test_every_exported_string_is_nfc_and_free_of_controls(exported):
    _, _, _, out, _ = exported
    for path in sorted(out.glob("*.json")):
        value = json.loads(path.read_bytes())
        odd = [(where, s) for where, s in _strings(value)
               if not unicodedata.is_normalized("NFC", s)
               or any(unicodedata.category(c) in ("Cc", "Cs") for c in s)]
        assert not odd, (path.name, odd)


@needs_poppler
def test_the_qr_read_back_parses_into_the_documents_codes(exported, tmp_path):
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    _, dossier, _, out, _ = exported
    for paper in dossier.papers:
        document = json.loads((out / f"{paper.result_code}.json").read_bytes())
        subprocess.run(["pdftoppm", "-r", "120", "-f", "1", "-l", "1", "-png", "-singlefile",
                        str(out / f"{paper.result_code}.pdf"), str(tmp_path / "p")],
                       check=True, timeout=60)
        found = [r.text for r in zxingcpp.read_barcodes(Image.open(tmp_path / "p.png"))]
        assert found == [document["mark"]["qr"]]
        prefix, version, dossier_code, result_code, procedure, digest = found[0].split("|")
        assert (prefix, version) == ("BHXHSH", "1")
        assert (dossier_code, result_code, procedure, digest) == (
            document["dossier_code"], document["result_code"], document["procedure_code"],
            document["pages_digest"])


# -- configuration the authors did not try ---------------------------------------------
def _two_paper_export(tmp_path: Path, **overrides):
    try:
        config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")},
                                **overrides)
    except ConfigError:
        return None  # refused up front: fixed
    return _sign_and_export(tmp_path, config, ((1,), (2,)))


def test_a_result_template_without_the_ordinal_cannot_lose_a_paper(tmp_path):
    made = _two_paper_export(tmp_path, codes={"result": "{dossier_code}-KQ"})
    if made is None:
        return
    dossier, _, out, written = made
    assert len({p.result_code for p in dossier.papers}) == 2
    assert len(list(out.glob("*.pdf"))) == 2 and len({w.name for w in written}) == 5


def test_export_never_writes_outside_its_folder(tmp_path):
    made = _two_paper_export(tmp_path, codes={"result": "../{dossier_code}.{ordinal:02d}"})
    if made is None:
        return
    _, _, out, _ = made
    outside = [p for p in tmp_path.iterdir() if p.is_file()]
    assert not outside, outside


def test_a_decomposed_agency_name_comes_out_nfc(tmp_path):
    nfd = unicodedata.normalize("NFD", "Bảo hiểm xã hội quận Ba Đình")
    made = _two_paper_export(tmp_path, device={"agency_name": nfd})
    if made is None:
        return
    _, _, out, _ = made
    for path in sorted(out.glob("*.json")):
        odd = [(w, s) for w, s in _strings(json.loads(path.read_bytes()))
               if not unicodedata.is_normalized("NFC", s)]
        assert not odd, (path.name, odd[:3])


def test_the_export_command_refuses_a_metadata_document_edited_on_disk(tmp_path, capsys):
    """The stored metadata is sealed: an edit on disk (a different signer) never reaches
    an export; the command exits 1 and writes nothing for that paper."""
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")})
    config.paths.files.parent.mkdir(parents=True, exist_ok=True)
    config_file = tmp_path / "appliance.toml"
    config_file.write_text(dump(config), encoding="utf-8")
    conn = connect(config.paths.database)
    try:
        forms = scanned_forms(conn, config, ((4,),))
        dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
        paper = dossiers.get(conn, forms.dossier_id).papers[0]
        code = dossiers.get(conn, forms.dossier_id).code
    finally:
        conn.close()
    stored = next(config.paths.files.glob(f"*/{paper.pdf_sha256}{result.RESULT_SUFFIX}"))
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    export.add_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(["--config", str(config_file), "export", code, str(out)])
    assert export.cmd(args) == export.EXIT_FAILED
    assert "unreadable" in capsys.readouterr().out
    assert not (out / f"{paper.result_code}.json").exists()
