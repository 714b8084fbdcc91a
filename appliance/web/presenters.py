"""How a dossier or a job looks to the screens and the API, written once.

Pure functions of what the records hold (and the request's language): the kiosk page
and the JSON API must say the same thing, or a citizen would see one message and an
end-to-end test another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import url_for
from markupsafe import Markup

from appliance.records import procedures
from appliance.records.corrections import MAX_VALUE, FieldCorrection
from appliance.records.dossiers import Dossier
from appliance.records.errors import InvalidCorrection
from appliance.store.jobs import Job, JobState
from appliance.web.i18n import current_language, t, t_or


def dossier_json(d: Dossier) -> dict[str, Any]:
    return {
        "id": d.public_id,  # never the row id (issue 8)
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
                        "flags": [f.value for f in pg.flags],
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
    return {"id": d.public_id, "code": d.code, "status": d.status}


def signed_json(d: Dossier, record_id: str) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "code": d.code,
        "status": d.status,
        "delivery": d.delivery,
        "papers": [{"id": p.id, "ordinal": p.ordinal, "title": p.title,
                    "result_code": p.result_code} for p in d.papers],
    }


def correction_json(c: FieldCorrection, dossier_public_id: str) -> dict[str, Any]:
    """A stored correction as the API answers it: the value now stored (NFC, as the
    review screen shows it), what it replaced, the OCR's own reading kept beside it,
    who and when, and the audit line that records it."""
    return {"dossier_id": dossier_public_id, "paper_id": c.paper_id, "field": c.field,
            "value": c.value, "previous": c.previous, "ocr_value": c.ocr_value,
            "corrected_by": c.corrected_by, "corrected_at": c.corrected_at,
            "reason": c.reason, "audit_seq": c.audit_seq}


def procedures_json() -> list[dict[str, Any]]:
    lang = current_language()
    return [{"code": p.code, "name": p.name(lang),
             "papers": [vi if lang == "vi" else en for vi, en in p.papers]}
            for p in procedures.CATALOGUE]


def procedure_name(d: Dossier) -> str:
    proc = procedures.find(d.procedure_code)
    return proc.name(current_language()) if proc else d.procedure_code


def procedure_name_of(code: str) -> str:
    proc = procedures.find(code)
    return proc.name(current_language()) if proc else code


def expected_papers(d: Dossier) -> list[str]:
    proc = procedures.find(d.procedure_code)
    lang = current_language()
    return [vi if lang == "vi" else en for vi, en in proc.papers] if proc else []


def job_message(job: Job, stalled: bool = False) -> str:
    """One sentence for the citizen: what is happening now, or what to do next."""
    if job.state in (JobState.QUEUED, JobState.RUNNING) and stalled:
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


def job_json(job: Job, stalled: bool = False,
             dossier_public_id: str | None = None) -> dict[str, Any]:
    """`dossier_id` is the dossier's public id: a browser never sees row ids."""
    return {
        "id": job.id,
        "kind": job.kind,
        "dossier_id": dossier_public_id,
        "state": job.state.value,
        "progress": job.progress,
        "error_key": job.error_key,
        "message": job_message(job, stalled),
        "stalled": bool(stalled and job.state in (JobState.QUEUED, JobState.RUNNING)),
    }


@dataclass(frozen=True)
class PaperChoice:
    """A paper the procedure asks for, as the kiosk offers it before a scan."""

    code: str
    title_vi: str  # what the record keeps, whatever the screen's language
    label: str  # in the screen's language
    mandatory: bool
    scanned: bool


def _catalogue() -> Any:
    """The catalogue of paper types, or None when it cannot be loaded (the kiosk then
    falls back to the built-in procedure list rather than refusing to scan)."""
    try:
        from appliance.records import catalogue

        return catalogue.default()
    except Exception:  # noqa: BLE001 - a broken catalogue file must not stop the kiosk
        return None


def paper_choices(d: Dossier) -> list[PaperChoice]:
    """The procedure's papers in its order, each marked scanned once a paper with its
    title is in the dossier; an "other paper" choice is always last."""
    lang = current_language()
    present = {p.title for p in d.papers}
    out: list[PaperChoice] = []
    cat = _catalogue()
    proc = cat.procedure(d.procedure_code) if cat is not None else None
    if proc is not None:
        for req in proc.papers:
            ptype = cat.paper(req.paper)
            if ptype is None:
                continue
            out.append(PaperChoice(ptype.code, ptype.name_vi, ptype.name(lang), req.mandatory,
                                   ptype.name_vi in present))
        other = cat.paper("other")
        if other is not None and all(c.code != other.code for c in out):
            out.append(PaperChoice(other.code, other.name_vi, other.name(lang), False,
                                   other.name_vi in present))
        return out
    fallback = procedures.find(d.procedure_code)
    for n, (vi, en) in enumerate(fallback.papers if fallback else ()):
        out.append(PaperChoice(f"p{n + 1}", vi, vi if lang == "vi" else en, n == 0,
                               vi in present))
    return out


def next_choice(choices: list[PaperChoice]) -> PaperChoice | None:
    """What the citizen most likely places next: the first mandatory paper not yet
    scanned, else the first paper not scanned, else the last (another page of it)."""
    for wanted in (lambda c: c.mandatory and not c.scanned, lambda c: not c.scanned):
        found = next((c for c in choices if wanted(c)), None)
        if found is not None:
            return found
    return choices[-1] if choices else None


def missing_papers(choices: list[PaperChoice]) -> list[str]:
    return [c.label for c in choices if c.mandatory and not c.scanned]


def paper_title(title: str) -> str:
    """A stored (Vietnamese) paper title in the screen's language."""
    if current_language() == "vi":
        return title
    cat = _catalogue()
    if cat is not None:
        for ptype in cat.papers:
            if ptype.name_vi == title:
                return str(ptype.name_en)
    for proc in procedures.CATALOGUE:
        for vi, en in proc.papers:
            if vi == title:
                return en
    if title.startswith("Giấy tờ số "):
        return t("kiosk.paper_number", n=title.rsplit(" ", 1)[-1])
    return title


def qr_svg(text: str) -> Markup:
    """The text as a QR code in inline SVG (no script, no style attribute: the CSP holds);
    made on the device, since the kiosk has no network."""
    import segno

    return Markup(segno.make(text, error="m", micro=False).svg_inline(
        scale=6, border=4, svgclass="qr", lineclass="qr-line", omitsize=True))


def size(n: float) -> str:
    """A number of bytes as a person reads it, with the decimal mark of the screen's
    language: MiB below 1 GiB, where the figures that matter (a disk near the scan
    floor, one full to the last byte) would all round to 0.0 GiB."""
    gib = n / 1024**3
    text = f"{gib:.1f} GiB" if gib >= 1 else f"{n / 1024**2:.0f} MiB"
    return text.replace(".", ",") if current_language() == "vi" else text


def age(seconds: float | None) -> str:
    """How long something has waited, in the screen's language."""
    if seconds is None:
        return ""
    s = max(int(seconds), 0)
    if s < 60:
        return t("age.seconds", n=s)
    if s < 3600:
        return t("age.minutes", n=s // 60)
    if s < 86400:
        return t("age.hours", n=s // 3600, m=(s % 3600) // 60)
    return t("age.days", n=s // 86400)


# -- the officer's review screen -------------------------------------------------------
# A field's status as the review screen marks it: the CSS class and the badge's key.
FIELD_MARKS: dict[str, tuple[str, str | None]] = {
    "valid": ("ok", None),
    "uncertain": ("warn", "officer.field_unsure_badge"),
    "problem": ("err", "officer.field_invalid_badge"),
    "missing": ("err", "officer.field_missing_badge"),
    "empty": ("none", None),
}
# Flags that say how a value was found rather than what is wrong with it.
_QUIET_FLAGS = frozenset({"bhxh.from_card"})


def _kind_label(kind: str) -> str:
    return t_or("kind." + kind, kind.replace("_", " "))


def field_reason(flags: tuple[str, ...] | list[str], reason: str | None) -> str | None:
    """Why a field is marked, in the screen's language: the validator's flags are stable
    codes with a sentence each; an unknown flag falls back to the validator's own
    (English) sentence rather than to nothing."""
    texts = [t_or("flag." + f, "") for f in flags if f not in _QUIET_FLAGS]
    texts = [x for x in texts if x]
    if texts:
        return " ".join(dict.fromkeys(texts))
    return reason or None


def refusal_reason(kind: str, refusal: InvalidCorrection) -> str:
    """Why records.corrections refused an officer's value, in the screen's language.

    The refusal says why in stable codes: the validator's flags (flag.<code>, which
    also name a value that contradicts another, such as a date of birth against the
    CCCD number an officer set), else the rule it broke (correction.<code>). The
    officer reads Vietnamese, the log keeps the English sentence. Nothing is judged
    again here, so the screen can never give another reason than the one that refused.
    """
    told = field_reason(refusal.flags, None) if refusal.flags else None
    if told:
        return told
    if refusal.code in ("empty", "extra_text", "bad_characters"):
        return t("correction." + refusal.code)
    if refusal.code == "too_long":
        return t("correction.too_long", n=MAX_VALUE)
    return t("correction.not_kind", kind=_kind_label(kind))


def box_attr(box: tuple[int, int, int, int] | None) -> str:
    """A field's box for the page overlay (data-box): x0 y0 x1 y1 in image pixels."""
    return " ".join(str(int(c)) for c in box) if box else ""


def review_rows(stored: dict[str, Any], fields: tuple[Any, ...]) -> list[Any]:
    """The fields the review screen lists: every field found or mandatory (empty
    optional ones left out), then any value a paper stored before fields had boxes
    (only "values", "problems", "uncertain"): still shown and marked, without a box."""
    from appliance.records.corrections import ReviewField

    rows = [f for f in fields if f.status != "empty"]
    have = {f.name for f in rows}
    detailed = stored.get("fields") if isinstance(stored.get("fields"), dict) else {}
    values = stored.get("values") if isinstance(stored.get("values"), dict) else {}
    problems = set(stored.get("problems") or ())
    uncertain = set(stored.get("uncertain") or ())
    reasons = stored.get("reasons") if isinstance(stored.get("reasons"), dict) else {}
    kinds = {f.name: f.kind for f in fields}
    for name in [*values, *sorted(problems - set(values))]:
        if name in have or name in detailed:
            continue
        value = values.get(name)
        status = ("problem" if name in problems else "uncertain" if name in uncertain
                  else "valid")
        rows.append(ReviewField(str(name), kinds.get(name, "text"), False,
                                value if isinstance(value, str) else None,
                                value if isinstance(value, str) else None, "ocr", status,
                                reasons.get(name), (), None, None, None, None))
        have.add(name)
    return rows
