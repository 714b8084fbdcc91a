"""How a dossier or a job looks to the screens and the API, written once.

Pure functions of what the records hold (and the request's language): the kiosk page
and the JSON API must say the same thing, or a citizen would see one message and an
end-to-end test another.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from appliance.records import procedures
from appliance.records.dossiers import Dossier
from appliance.store.jobs import Job, JobState
from appliance.web.i18n import current_language, t


def dossier_json(d: Dossier) -> dict[str, Any]:
    return {
        "id": d.id,
        "code": d.code,
        "procedure": d.procedure_code,
        "status": d.status,
        "language": d.language,
        "created_at": d.created_at,
        "signed_by": d.signed_by,
        "record_id": d.record_id,
        "delivery": d.delivery,
        "papers": [
            {
                "id": p.id,
                "ordinal": p.ordinal,
                "title": p.title,
                "result_code": p.result_code,
                "pdf_sha256": p.pdf_sha256,
                "pdf_url": url_for("api.paper_pdf", sha=p.pdf_sha256) if p.pdf_sha256 else None,
                "fields": p.fields,
                "pages": [
                    {
                        "ordinal": pg.ordinal,
                        "sha256": pg.sha256,
                        "blank": pg.blank,
                        "width": pg.width,
                        "height": pg.height,
                        "dpi": pg.dpi,
                        "ocr_text": pg.ocr_text,
                        "thumbnail_url": url_for("api.page_thumbnail", sha=pg.sha256),
                        "image_url": url_for("api.page_image", sha=pg.sha256),
                    }
                    for pg in p.pages
                ],
            }
            for p in d.papers
        ],
    }


def created_json(d: Dossier) -> dict[str, Any]:
    return {"id": d.id, "code": d.code, "status": d.status}


def signed_json(d: Dossier, record_id: str) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "code": d.code,
        "status": d.status,
        "delivery": d.delivery,
        "papers": [{"id": p.id, "ordinal": p.ordinal, "title": p.title,
                    "result_code": p.result_code} for p in d.papers],
    }


def procedures_json() -> list[dict[str, Any]]:
    lang = current_language()
    return [{"code": p.code, "name": p.name(lang),
             "papers": [vi if lang == "vi" else en for vi, en in p.papers]}
            for p in procedures.CATALOGUE]


def procedure_name(d: Dossier) -> str:
    proc = procedures.find(d.procedure_code)
    return proc.name(current_language()) if proc else d.procedure_code


def expected_papers(d: Dossier) -> list[str]:
    proc = procedures.find(d.procedure_code)
    lang = current_language()
    return [vi if lang == "vi" else en for vi, en in proc.papers] if proc else []


def job_message(job: Job, stalled: bool = False) -> str:
    """One sentence for the citizen: what is happening now, or what to do next."""
    if job.state == JobState.QUEUED and stalled:
        return t("job.worker_stalled")
    if job.state == JobState.FAILED:
        return t(job.error_key or "error.generic")
    p = job.progress
    if job.state == JobState.DONE:
        return t("job.done", pages=p.get("pages", 0))
    step = p.get("step")
    if step == "scanning":
        return t("job.scanning", pages=p.get("pages", 0))
    if step == "reading":
        return t("job.reading", page=p.get("page", 0), pages=p.get("pages", 0))
    if step == "assembling":
        return t("job.assembling")
    return t("job.queued")


def job_json(job: Job, stalled: bool = False) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "dossier_id": job.dossier_id,
        "state": job.state.value,
        "progress": job.progress,
        "error_key": job.error_key,
        "message": job_message(job, stalled),
    }
