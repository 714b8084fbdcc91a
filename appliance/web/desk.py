"""The officer desk's own use case: handing a dossier back to its citizen.

The citizen stands at the counter: a page is missing, or the wrong paper was scanned.
The officer gives the papers back with a reason; the dossier ends cancelled (a defined
state every screen shows) and the reason goes into its audit trail. Kept apart from
usecases.py, which holds what the kiosk and the JSON API share.
"""

from __future__ import annotations

import logging
import sqlite3
import unicodedata
from typing import Any

from appliance.records import audit, dossiers
from appliance.store.db import aad, open_text, seal_text, transaction
from appliance.web import usecases
from appliance.web.errors import WebError

log = logging.getLogger(__name__)

RETURN_OP = "returned_to_citizen"
MAX_RETURN_REASON = 300


def return_to_citizen(conn: sqlite3.Connection, dossier_id: int, officer: str,
                      reason: Any) -> None:
    """The officer hands the papers back (a page missing, the wrong paper): a submitted
    dossier ends cancelled, which every screen shows, and the reason goes into its audit
    trail, sealed like every free text an officer types (it may name the citizen).

    The audit line is written after the state change: a dossier that could not be
    cancelled (signed meanwhile, a scan running) gets no line saying it was returned.
    """
    why = (unicodedata.normalize("NFC", reason).strip()[:MAX_RETURN_REASON]
           if isinstance(reason, str) else "")
    if not why:
        raise WebError("error.return_reason", 400)
    d = dossiers.get(conn, dossier_id)
    if d.status != "submitted":
        raise WebError("error.invalid_state", 409)
    usecases.cancel(conn, dossier_id, officer=True)
    where = f"return:{dossier_id}"
    with transaction(conn):
        audit.append(conn, audit.AuditAction.CORRECTION, officer, dossier_id, {
            "op": RETURN_OP, "reason": seal_text(conn, why, aad("audit_log", "value", where)),
            "sealed_as": where})
    log.info("dossier %d returned to the citizen by an officer", dossier_id)


def returned_reason(conn: sqlite3.Connection, dossier_id: int) -> str | None:
    """Why the dossier was handed back to its citizen, if it was."""
    for entry in reversed(audit.entries(conn, dossier_id)):
        if entry.detail.get("op") == RETURN_OP:
            where = str(entry.detail.get("sealed_as", ""))
            return open_text(conn, str(entry.detail.get("reason", "")),
                             aad("audit_log", "value", where))
    return None
