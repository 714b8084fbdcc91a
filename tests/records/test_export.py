"""`appliance record export CODE DIR`: the signed PDFs, their metadata and the record
of one dossier, each checked before it is written; refusals exit 1 with a reason."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest

from appliance.records import dossiers, export, pdfsign, result
from appliance.store.db import connect
from appliance.system.config import Config, dump, with_overrides
from tests.helpers.signed_papers import scanned_forms

OFFICER = "Phạm Quốc Việt"


@pytest.fixture
def setup(tmp_path):
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")})
    config.paths.files.parent.mkdir(parents=True)
    config_file = tmp_path / "appliance.toml"
    config_file.write_text(dump(config), encoding="utf-8")
    conn = connect(config.paths.database)
    yield config, conn, config_file
    conn.close()


def _run(config_file: Path, code: str, folder: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    export.add_arguments(parser)
    args = parser.parse_args(["--config", str(config_file), "export", code, str(folder),
                              *extra])
    return export.cmd(args)


def test_export_writes_what_travels(setup, tmp_path, capsys):
    config, conn, config_file = setup
    forms = scanned_forms(conn, config, ((1,), (2,)))
    record_id = dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
    dossier = dossiers.get(conn, forms.dossier_id)
    out = tmp_path / "out"
    assert _run(config_file, dossier.code, out, "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{p.result_code}.{ext}" for p in dossier.papers
                            for ext in ("pdf", "json")] + ["record.json"])
    assert {w["name"] for w in listed} == set(names)
    cert = (Path(config.paths.data_dir) / "signing" / pdfsign.DEVICE_CERT).read_bytes()
    for paper in dossier.papers:
        pdf = (out / f"{paper.result_code}.pdf").read_bytes()
        assert hashlib.sha256(pdf).hexdigest() == paper.pdf_sha256
        document = json.loads((out / f"{paper.result_code}.json").read_text("utf-8"))
        result.validate(document)
        assert document["file"]["sha256"] == paper.pdf_sha256
        assert pdfsign.verify_pdf(pdf, [cert]).valid
    record = dossiers.record_of(conn, record_id)
    assert (out / "record.json").read_text("utf-8") == record.body_json
    assert not list(out.glob(".*")), "a temporary file was left"


def test_export_refuses_what_it_cannot_vouch_for(setup, tmp_path, capsys):
    config, conn, config_file = setup
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(dump(with_overrides(Config(), paths={"data_dir": str(tmp_path / "no")})),
                         encoding="utf-8")
    assert _run(elsewhere, "000.00.12.H42-000000-9999", tmp_path / "z") == 1
    assert "no database" in capsys.readouterr().out and not (tmp_path / "no").exists()
    assert _run(config_file, "000.00.12.H42-000000-9999", tmp_path / "a") == 1
    assert "no dossier" in capsys.readouterr().out
    forms = scanned_forms(conn, config, ((3,),))
    code = dossiers.get(conn, forms.dossier_id).code
    assert _run(config_file, code, tmp_path / "b") == 1  # submitted, not signed
    assert "not signed" in capsys.readouterr().out
    dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
    paper = dossiers.get(conn, forms.dossier_id).papers[0]
    stored = config.paths.files / paper.pdf_sha256[:2] / f"{paper.pdf_sha256}.pdf"
    data = bytearray(stored.read_bytes())
    data[-40] ^= 0x01  # the sealed file no longer opens
    stored.write_bytes(bytes(data))
    assert _run(config_file, code, tmp_path / "c") == 1
    assert "unreadable" in capsys.readouterr().out
    assert not (tmp_path / "c" / f"{paper.result_code}.pdf").exists()


def test_exported_papers_are_readable_by_their_owner_only(setup, tmp_path, capsys):
    """The export is the citizen's papers in clear (sealed on the device): whatever the
    umask of the technician's shell, no other account may read them."""
    import os

    config, conn, config_file = setup
    forms = scanned_forms(conn, config, ((1,),))
    dossiers.sign_off(conn, config, forms.dossier_id, OFFICER)
    code = dossiers.get(conn, forms.dossier_id).code
    old = os.umask(0o022)  # the usual shell umask: new files 0644
    try:
        assert _run(config_file, code, tmp_path / "out") == 0
    finally:
        os.umask(old)
    out = tmp_path / "out"
    assert out.stat().st_mode & 0o777 == 0o700
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes and set(modes.values()) == {0o600}, modes


@pytest.mark.parametrize("name", ["../x.pdf", "a/b.pdf", "..", ".hidden.json", "a\\b.pdf"])
def test_a_file_name_that_is_not_plain_is_refused_and_nothing_is_written(tmp_path, name):
    """Behind the configuration's check of the code templates: whatever a code is made
    of, the export writes only plain names inside its own folder."""
    from appliance.records import export

    folder = tmp_path / "out" / "inner"
    folder.mkdir(parents=True)
    with pytest.raises(export.ExportError):
        export._write(folder, name, b"%PDF")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
