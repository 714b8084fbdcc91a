"""The audit trail as the use cases and the faces use it (the chain lives in store/audit.py).

`append(conn, action, actor, dossier_id, detail)` is called where things happen: the
worker storing a page (scan), the officer's screens (view), a citizen's page edits
(correction), sign-off (sign), the outbox marking a record delivered (send), erasure
(delete) and the retention purge (purge). `verify` is what `appliance audit verify`
runs (records/audit_commands.py).
"""

from __future__ import annotations

import sqlite3

from appliance.store.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    Verification,
    append,
    entries,
    entry_hash,
    verify,
)
from appliance.store.db import transaction

__all__ = ["GENESIS", "AuditAction", "AuditEntry", "Verification", "append", "entries",
           "entry_hash", "verify", "viewed"]


def viewed(conn: sqlite3.Connection, actor: str, dossier_ids: set[int] | list[int],
           what: str, ref: str = "") -> None:
    """An officer opened a dossier, a page image or a PDF: one entry per dossier shown.

    Written in its own short transaction: a view must be accounted for even though the
    request that shows it writes nothing else.
    """
    with transaction(conn):
        for dossier_id in sorted(dossier_ids):
            append(conn, AuditAction.VIEW, actor, dossier_id,
                    {"what": what, "ref": ref} if ref else {"what": what})
