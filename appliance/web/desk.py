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
"""

from __future__ import annotations

import logging
import sqlite3
import unicodedata
from typing import Any

from appliance.extraction.text import fold
from appliance.records import corrections, dossiers, queries
from appliance.web.errors import WebError

log = logging.getLogger(__name__)

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
