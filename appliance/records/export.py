"""`appliance record export CODE DIR`: one dossier's signed results, as they travel.

For a technician, an auditor or a central office without a link: the signed PDF/A of
each paper (`<result code>.pdf`), its metadata document (`<result code>.json`,
result.schema.json) and the signed record body (`record.json`, the exact bytes whose
sha256 the central office checks; it carries each paper's metadata document too,
which must equal the stored one). Every file is read through the sealed file store
(verified against its hash) and checked again before it is written: a PDF whose
sha256 is not the one its metadata and the record name, or metadata that does not
follow the schema, stops the export with exit code 1 rather than handing out a copy
nobody can trust. Files are written to a temporary name and renamed, so a full disk
leaves no half file that looks whole.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from appliance.records import dossiers, result
from appliance.records.errors import DossierNotFound, RecordsError
from appliance.store.db import connect, sealer_of
from appliance.store.errors import StoreError
from appliance.store.files import FileStore
from appliance.system import crypto
from appliance.system.service import load_config

EXIT_FAILED = 1
RECORD_FILE = "record.json"


class ExportError(RecordsError):
    """The dossier cannot be exported (unknown, not signed, or its files fail a check)."""


@dataclass(frozen=True)
class Exported:
    """One file written: its name in the folder, size and sha256."""

    name: str
    size: int
    sha256: str


def _write(folder: Path, name: str, data: bytes) -> Exported:
    """One exported file, whole or absent, readable by its owner only: it is a
    citizen's papers and personal fields in clear (sealed on the device), so the
    umask of whoever runs the export must not make it readable to every account.
    The name comes from a code (config.codes): one that is not a plain file name is
    refused, never joined, so no template can make the export write outside `folder`."""
    if name != Path(name).name or name.startswith(".") or "\\" in name:
        raise ExportError(f"{name!r} is not a plain file name; nothing written")
    crypto.write_private_file(folder / name, data)
    return Exported(name, len(data), hashlib.sha256(data).hexdigest())


def dossier_id_by_code(conn: sqlite3.Connection, code: str) -> int:
    row = conn.execute("SELECT id FROM dossiers WHERE code=?", (code.strip(),)).fetchone()
    if row is None:
        raise ExportError(f"no dossier with code {code!r}")
    return int(row["id"])


def export_dossier(conn: sqlite3.Connection, files: FileStore, code: str,
                   folder: Path) -> list[Exported]:
    """Write a signed dossier's PDFs, metadata and record into `folder`."""
    try:
        dossier = dossiers.get(conn, dossier_id_by_code(conn, code))
    except DossierNotFound as e:
        raise ExportError(str(e)) from e
    if dossier.status != "signed" or dossier.record_id is None:
        raise ExportError(f"dossier {dossier.code} is {dossier.status}, not signed: "
                          "nothing has been issued to export")
    record = dossiers.record_of(conn, dossier.record_id)
    body = json.loads(record.body_json)
    named = {p["result_code"]: p["file"]["sha256"] for p in body.get("papers", [])}
    travelled = {p["result_code"]: p.get("result") for p in body.get("papers", [])}
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    written: list[Exported] = []
    for paper in dossier.papers:
        if not paper.result_code or not paper.pdf_sha256:
            raise ExportError(f"paper {paper.ordinal} of {dossier.code} has no result")
        try:
            pdf, document = result.load(files, paper.pdf_sha256)
        except (StoreError, OSError, ValueError) as e:
            raise ExportError(f"paper {paper.result_code}: signed result unreadable "
                              f"(erased, purged or not issued at sign-off): {e}") from e
        result.validate(document)
        if named.get(paper.result_code) != paper.pdf_sha256:
            raise ExportError(f"paper {paper.result_code}: the record names another PDF")
        sent = travelled.get(paper.result_code)
        if sent is not None and sent != document:  # records signed before it travelled
            raise ExportError(f"paper {paper.result_code}: the metadata in the record "
                              "differs from the stored metadata document")
        written.append(_write(folder, f"{paper.result_code}.pdf", pdf))
        written.append(_write(folder, f"{paper.result_code}.json", result.encode(document)))
    written.append(_write(folder, RECORD_FILE, record.body_json.encode("utf-8")))
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="record_command", required=True)
    export = sub.add_parser("export", help="write one dossier's signed PDFs, their metadata "
                                           "and the signed record into a folder")
    export.add_argument("code", metavar="CODE", help="dossier code, e.g. "
                                                     "000.00.12.H42-230512-0005")
    export.add_argument("dir", metavar="DIR", type=Path, help="folder to write into "
                                                             "(made if missing)")
    export.add_argument("--json", action="store_true", help="list the files written as JSON")


def cmd(args: argparse.Namespace) -> int:
    """0: exported; 1: the dossier cannot be exported (reason printed); 2: bad config."""
    config = load_config(getattr(args, "config", None))
    if not config.paths.database.exists():  # never make an empty store just to export
        print(f"record export: no database at {config.paths.database}")
        return EXIT_FAILED
    conn = connect(config.paths.database, key_file=config.paths.key_file)
    try:
        files = FileStore(config.paths.files, sealer=sealer_of(conn))
        written = export_dossier(conn, files, args.code, args.dir)
    except (ExportError, result.ResultInvalid) as e:
        print(f"record export: {e}")
        return EXIT_FAILED
    finally:
        conn.close()
    if getattr(args, "json", False):
        print(json.dumps([{"name": w.name, "size": w.size, "sha256": w.sha256}
                          for w in written], ensure_ascii=False))
    else:
        for w in written:
            print(f"{w.sha256}  {w.size:>9}  {args.dir / w.name}")
        print(f"exported {args.code}: {len(written)} file(s) into {args.dir}")
    return 0
