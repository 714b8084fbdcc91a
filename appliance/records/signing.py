"""The signed record: the body sign-off commits, the sync service sends and central keeps.

Built by one pure function so that sign-off, the benchmarks and the tests cannot
disagree about its shape, and encoded one way (sorted keys, no spaces, UTF-8) so its
sha256 is the same wherever it is recomputed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from appliance.system.config import DeviceConfig

if TYPE_CHECKING:
    from appliance.records.dossiers import Dossier

RECORD_SCHEMA = "bhxh.digitization.record/1"


@dataclass(frozen=True)
class EncodedRecord:
    body_json: str
    sha256: str


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def encode_document(document: Mapping[str, Any]) -> bytes:
    """A metadata document's canonical bytes (sorted keys, UTF-8): the one form stored
    beside the signed PDF (records/result.py), written by `appliance record export` and
    hashed into the record, so the three can never disagree."""
    return json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")


def result_digest(document: Mapping[str, Any]) -> str:
    """sha256 of a metadata document's canonical bytes (`encode_document`)."""
    return hashlib.sha256(encode_document(document)).hexdigest()


def record_body(dossier: Dossier, *, record_id: str, device: DeviceConfig,
                result_codes: Mapping[int, str], officer: str,
                signed_at: float, audit: list[dict[str, Any]] | None = None,
                documents: Mapping[int, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The record of a checked dossier; `result_codes` maps each paper's id to its code.

    `audit` is the dossier's audit trail up to and including the sign-off
    (records/audit.py): it travels inside the signed body so the central office holds
    who scanned, viewed and corrected the dossier, each entry with its chain hashes.

    `documents` maps each paper's id to its metadata document (records/result.py,
    result.schema.json): it travels whole in the paper's "result", with the sha256 of
    its canonical bytes ("result_sha256"), so the central office keeps the metadata
    other procedures reuse, exactly as `appliance record export` writes it, without
    opening the PDF. The PDF itself travels as the paper's "file" (by its sha256).
    """
    papers = []
    for paper in dossier.papers:
        code = result_codes[paper.id]
        document = (documents or {}).get(paper.id)
        extra: dict[str, Any] = {} if document is None else {
            "result": dict(document), "result_sha256": result_digest(document)}
        papers.append({**extra,
            "ordinal": paper.ordinal,
            "result_code": code,
            "title": paper.title,
            "page_count": len(paper.pages),
            "blank_pages": [p.ordinal for p in paper.pages if p.blank],
            "file": {"sha256": paper.pdf_sha256, "size": paper.pdf_size,
                     "media_type": "application/pdf", "name": f"{code}.pdf"},
            "fields": paper.fields,
            # Decree 30/2020 Annex VI names, so other procedures can reuse the data.
            "metadata": {
                "FileCode": dossier.code, "OrganId": device.agency_code,
                "DocOrdinal": paper.ordinal, "TypeName": paper.title,
                "PageAmount": len(paper.pages), "Language": "vi",
                "OrganName": device.agency_name,
                "Description": "Bản điện tử chuyển đổi từ giấy",
            },
        })
    body: dict[str, Any] = {
        "schema": RECORD_SCHEMA, "record_id": record_id,
        "device_id": device.id, "agency_code": device.agency_code,
        "dossier_code": dossier.code, "procedure_code": dossier.procedure_code,
        "signed_by": officer, "signed_at": iso(signed_at), "created_at": iso(dossier.created_at),
        "papers": papers,
    }
    if audit is not None:
        body["audit"] = audit
    return body


def encode(body: Mapping[str, Any]) -> EncodedRecord:
    """The canonical bytes of a body and their sha256, which central checks on arrival."""
    body_json = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return EncodedRecord(body_json, hashlib.sha256(body_json.encode("utf-8")).hexdigest())
