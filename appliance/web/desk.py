"""The officer desk's own use cases: finding a dossier by the citizen's name, and
handing a dossier back to its citizen.

A citizen at the counter gives a name more readily than a dossier code, but names are
personal data, sealed in the papers' fields: no SQL can look for them. So a search
that finds no code is tried against the names the papers hold, opened one dossier at
a time (the waiting list is short), folded (no case, no tone marks: "nguyen" finds
"NGUYỄN").

When a page is missing, or the wrong paper was scanned, the officer gives the papers
back with a reason; the dossier ends cancelled (a defined state every screen shows)
and the reason goes into its audit trail. Kept apart from usecases.py, which holds
what the kiosk and the JSON API share.

An officer's correction of a field is written here once for both of its faces, the
review screen's form and the JSON API: who it is recorded under (`signer`), what is
read of the typed value and reason, and how a refusal is told (`CorrectionRefused`:
records' reason in the request's language, nothing changed). The form shows that
refusal beside the field, the API answers it as a problem document; neither judges the
value itself, so both can only ever refuse for the reason records refused.
"""

from __future__ import annotations

import logging
import sqlite3
import unicodedata
from typing import Any

from appliance.extraction.text import fold
from appliance.records import catalogue, corrections, dossiers, queries
from appliance.records.errors import InvalidCorrection
from appliance.system.config import Config
from appliance.web import auth, presenters, usecases
from appliance.web.errors import WebError

log = logging.getLogger(__name__)

# What is read of a typed value: records refuses one over corrections.MAX_VALUE with
# its reason; this only bounds the work, it never cuts what records judges.
MAX_VALUE = 4 * corrections.MAX_VALUE
MAX_REASON = 300

# Fields that hold a person's name (records/catalogue.json), searched by the desk.
NAME_FIELDS: tuple[str, ...] = ("full_name", "mother_name", "father_name", "guardian_name",
                                "child_name", "signer_name")
MIN_NAME_SEARCH = 2


def _names(conn: sqlite3.Connection, dossier_id: int) -> list[str]:
    out = []
    for paper in dossiers.get(conn, dossier_id).papers:
        values = paper.fields.get("values") if isinstance(paper.fields, dict) else None
        for name in NAME_FIELDS:
            value = (values or {}).get(name)
            if isinstance(value, str):
                out.append(fold(value))
    return out


def search(conn: sqlite3.Connection, status: str, term: str,
           limit: int) -> list[queries.QueueRow]:
    """The officer's list in `status`: dossiers whose code holds `term`, then those
    whose papers name a person whose name holds it (folded)."""
    found = queries.officer_queue(conn, status, term, limit)
    wanted = fold(term)
    if len(wanted) < MIN_NAME_SEARCH or not any(c.isalpha() for c in wanted):
        return found
    seen = {r.id for r in found}
    for row in queries.officer_queue(conn, status, "", limit):
        if len(found) >= limit:
            break
        if row.id not in seen and any(wanted in n for n in _names(conn, row.id)):
            found.append(row)
    return found


MAX_RETURN_REASON = 300


def return_to_citizen(conn: sqlite3.Connection, dossier_id: int, officer: str,
                      reason: Any) -> None:
    """The officer hands the papers back with a reason: records.corrections cancels
    the dossier and writes the (sealed) reason in one transaction; here only the
    form's reason is checked, so an empty one is answered beside the form."""
    why = (unicodedata.normalize("NFC", reason).strip()[:MAX_RETURN_REASON]
           if isinstance(reason, str) else "")
    if not why:
        raise WebError("error.return_reason", 400)
    corrections.return_to_citizen(conn, dossier_id=dossier_id, officer=officer, reason=why)
    log.info("dossier %d returned to the citizen by an officer", dossier_id)


def returned_reason(conn: sqlite3.Connection, dossier_id: int) -> str | None:
    """Why the dossier was handed back to its citizen, if it was."""
    return corrections.returned_reason(conn, dossier_id)


def default_officer(device_id: str) -> str | None:
    """Who stands in for a typed name: the enrolled officer signed in (their own PIN
    names them, so the record and audit trail carry a person, not the counter); else,
    under the shared PIN, the counter; else nobody, and a name is asked."""
    enrolled = auth.officer_name()
    if enrolled:
        return enrolled
    return f"Cán bộ tiếp nhận ({device_id})" if auth.officer_pin() else None


def signer(typed: Any, device_id: str) -> str:
    """Who signs, corrects or returns: an enrolled officer who signed in with their own
    PIN is that officer, whatever is typed (the audit trail names who really did it);
    otherwise the typed name, else the PIN session's counter; else a name is asked
    (error.officer_required). The form and the API both ask here."""
    enrolled = auth.officer_name()
    if enrolled:
        return usecases.officer_name(enrolled)
    return usecases.officer_name(typed, default_officer(device_id))


class CorrectionRefused(WebError):
    """records.corrections refused an officer's value: 422, nothing changed.

    `text` is why, in the request's language (the rule or the validator's flag, as
    presenters.refusal_reason translates it); `value` is the value as read, for the
    form to show again. The API's problem document carries the paper, the field and
    the rule's code, so a program can point at what to fix.
    """

    def __init__(self, paper_id: int, field: str, value: str, refusal: InvalidCorrection,
                 text: str) -> None:
        super().__init__(InvalidCorrection.key, 422, f"correction of {field} refused",
                         text=text, members={"paper_id": paper_id, "field": field,
                                             "code": refusal.code or "not_kind",
                                             "flags": list(refusal.flags)})
        self.paper_id = paper_id
        self.field = field
        self.value = value


def _field_kind(conn: sqlite3.Connection, config: Config, paper_id: int, name: str) -> str:
    review = corrections.review_paper(conn, config, paper_id)
    cat = catalogue.default()
    paper = cat.paper(review.paper_type or "") or cat.fallback
    spec = paper.field(name)
    return spec.kind if spec else "text"


def correct_field(conn: sqlite3.Connection, config: Config, *, dossier_id: int,
                  paper_id: int, field: str, value: Any, officer: str,
                  reason: Any = None) -> corrections.FieldCorrection:
    """One field set to the officer's value through records.corrections (which judges
    it, keeps the OCR's reading and writes the audit line in one transaction).

    `value` and `reason` come as the face received them: a form always sends text,
    JSON may send anything, and anything but text (or no reason) is a bad request, not
    a value to judge. The value is only bounded here, never cut to fit (records refuses
    one too long); the reason is a note and is cut, as the form always did.
    """
    if not isinstance(value, str) or not (reason is None or isinstance(reason, str)):
        raise WebError("error.bad_request", 400, "value and reason must be text")
    value = value[:MAX_VALUE]
    note = usecases.clean_text(reason or "")[:MAX_REASON] or None
    try:
        return corrections.correct_field(conn, config, dossier_id=dossier_id,
                                         paper_id=paper_id, field=field, value=value,
                                         officer=officer, reason=note)
    except InvalidCorrection as e:
        # The code and flags only: the validator's sentence may quote the value typed.
        log.info("dossier %d paper %d: correction of %s refused (%s%s)", dossier_id,
                 paper_id, field, e.code or "not_kind",
                 "; " + ", ".join(e.flags) if e.flags else "")
        why = presenters.refusal_reason(_field_kind(conn, config, paper_id, field), e)
        raise CorrectionRefused(paper_id, field, value, e, why) from e
