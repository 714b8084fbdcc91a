"""The citizen's consent to the processing of their personal data, and leaving the kiosk.

Law 91/2025/QH15: consent counts only when the person was told the data types, the
purpose, the controller and their rights; the kiosk shows that notice before the first
scan and records here that it was accepted, in which language and which version of the
notice, with the dossier. Nothing is scanned for a dossier without it.

Ending a citizen's session (idle reset, a new procedure, cancel) must leave their
dossier in a state an officer can see (cancelled) and must stop a scan they queued
from running later on whatever lies on the glass: queued jobs are failed in the same
write transaction, so the worker either claimed a job before (it runs into a cancelled
dossier) or never will.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from appliance.records.errors import DossierNotFound
from appliance.store.db import now, transaction

# Bumped whenever the notice's text changes, so a record names the words agreed to.
NOTICE_VERSION = "2026-1"
SESSION_ENDED = "error.session_ended"


@dataclass(frozen=True)
class Consent:
    dossier_id: int
    notice_version: str
    language: str
    accepted_at: float


def record(conn: sqlite3.Connection, dossier_id: int, language: str,
           version: str = NOTICE_VERSION) -> None:
    """Keep the acceptance with the dossier (once: a second acceptance changes nothing)."""
    with transaction(conn):
        if conn.execute("SELECT 1 FROM dossiers WHERE id=?", (dossier_id,)).fetchone() is None:
            raise DossierNotFound(f"dossier {dossier_id} not found")
        conn.execute(
            "INSERT INTO consents(dossier_id, notice_version, language, accepted_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(dossier_id) DO NOTHING",
            (dossier_id, version, language, now()))


def get(conn: sqlite3.Connection, dossier_id: int) -> Consent | None:
    row = conn.execute("SELECT * FROM consents WHERE dossier_id=?", (dossier_id,)).fetchone()
    if row is None:
        return None
    return Consent(int(row["dossier_id"]), str(row["notice_version"]), str(row["language"]),
                   float(row["accepted_at"]))


def end_session(conn: sqlite3.Connection, dossier_id: int) -> bool:
    """The citizen has left: fail the dossier's queued scans and cancel it if still open.

    Returns True when a scan was already running (the worker finishes it into the
    cancelled dossier, where an officer can still see what it stored).
    """
    with transaction(conn):
        row = conn.execute("SELECT status FROM dossiers WHERE id=?", (dossier_id,)).fetchone()
        if row is None:
            return False
        conn.execute(
            "UPDATE jobs SET state='failed', finished_at=?, error_key=?, "
            "error_detail='the citizen left before the scan started' "
            "WHERE dossier_id=? AND state='queued'", (now(), SESSION_ENDED, dossier_id))
        running = conn.execute("SELECT 1 FROM jobs WHERE dossier_id=? AND state='running'",
                               (dossier_id,)).fetchone() is not None
        if row["status"] == "open":
            conn.execute("UPDATE dossiers SET status='cancelled' WHERE id=?", (dossier_id,))
    return running


def cancel_queued_scan(conn: sqlite3.Connection, dossier_id: int) -> bool:
    """Withdraw a scan nobody has started (the worker is down); True if one was queued."""
    with transaction(conn):
        cur = conn.execute(
            "UPDATE jobs SET state='failed', finished_at=?, error_key='error.scan_withdrawn', "
            "error_detail='withdrawn before the worker started it' "
            "WHERE dossier_id=? AND state='queued'", (now(), dossier_id))
    return cur.rowcount > 0
