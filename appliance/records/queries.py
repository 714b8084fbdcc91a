"""Read-side questions the faces ask of the records, written once, in SQL, here.

The web layer holds no SQL: a screen or an API route asks one of these functions and
gets plain values back. Nothing here writes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from appliance.store.jobs import Job

# SQLite integers are signed 64-bit: a larger id cannot name a row (and would make the
# driver raise OverflowError), so callers may use this bound to refuse it early.
MAX_ROW_ID = 2**63 - 1


@dataclass(frozen=True)
class OpenDossier:
    """An open (not yet submitted) dossier, as the flood limits need to see it."""

    id: int
    created_at: float
    pages: int
    active_job: bool


def latest_job(conn: sqlite3.Connection, dossier_id: int) -> Job | None:
    row = conn.execute(
        "SELECT * FROM jobs WHERE dossier_id=? ORDER BY id DESC LIMIT 1", (dossier_id,)
    ).fetchone()
    return Job.from_row(row) if row else None


def job_dossier(conn: sqlite3.Connection, job_id: int) -> int | None:
    """The dossier a job belongs to, or None for an unknown job."""
    if not 0 < job_id <= MAX_ROW_ID:
        return None
    row = conn.execute("SELECT dossier_id FROM jobs WHERE id=?", (job_id,)).fetchone()
    return int(row["dossier_id"]) if row else None


def retry_paper_id(job: Job) -> int | None:
    """The paper a failed scan was filling, so "scan on" appends to it: the one the job
    was asked to continue, or the one the worker named in its progress (it names the
    paper in every report, a failure's included). None: it failed before the first page.
    """
    for named in (job.params.get("paper_id"), job.progress.get("paper_id")):
        if isinstance(named, int):
            return named
    return None


def page_dossiers(conn: sqlite3.Connection, sha256: str) -> set[int]:
    """The dossiers holding a page with this content hash (a page can be scanned twice)."""
    rows = conn.execute(
        "SELECT DISTINCT pa.dossier_id FROM pages pg JOIN papers pa ON pa.id = pg.paper_id "
        "WHERE pg.sha256=?", (sha256,)).fetchall()
    return {int(r[0]) for r in rows}


def pdf_dossiers(conn: sqlite3.Connection, sha256: str) -> set[int]:
    """The dossiers holding a paper whose PDF has this content hash."""
    rows = conn.execute("SELECT DISTINCT dossier_id FROM papers WHERE pdf_sha256=?",
                        (sha256,)).fetchall()
    return {int(r[0]) for r in rows}


def open_dossiers(conn: sqlite3.Connection) -> list[OpenDossier]:
    """Every open dossier, oldest first, with its page count and whether a job is active."""
    rows = conn.execute(
        "SELECT d.id, d.created_at, "
        "(SELECT COUNT(*) FROM pages pg JOIN papers pa ON pa.id = pg.paper_id "
        " WHERE pa.dossier_id = d.id) AS pages, "
        "EXISTS (SELECT 1 FROM jobs j WHERE j.dossier_id = d.id "
        " AND j.state IN ('queued', 'running')) AS active "
        "FROM dossiers d WHERE d.status='open' ORDER BY d.id"
    ).fetchall()
    return [OpenDossier(int(r["id"]), float(r["created_at"]), int(r["pages"]),
                        bool(r["active"])) for r in rows]


@dataclass(frozen=True)
class QueueRow:
    """One dossier as the officer's lists show it: enough to choose, nothing to read."""

    id: int
    code: str
    procedure_code: str
    status: str
    submitted_at: float | None
    signed_at: float | None
    signed_by: str | None
    papers: int
    pages: int
    delivery: str | None
    public_id: str | None = None  # what the officer's links carry (issue 8)


def officer_queue(conn: sqlite3.Connection, status: str, search: str = "",
                  limit: int = 100) -> list[QueueRow]:
    """Dossiers in `status`, oldest waiting first for submitted ones (the next to check),
    newest first otherwise; `search` matches a part of the code, case-insensitively.

    One query with counts, so the list does not load every page's OCR text.
    """
    order = "d.submitted_at, d.id" if status == "submitted" else "d.id DESC"
    pattern = "%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace(
        "_", "\\_") + "%"
    rows = conn.execute(
        "SELECT d.id, d.code, d.procedure_code, d.status, d.submitted_at, d.signed_at, "
        "d.signed_by, d.public_id, "
        "(SELECT COUNT(*) FROM papers WHERE dossier_id = d.id) AS papers, "
        "(SELECT COUNT(*) FROM pages pg JOIN papers pa ON pa.id = pg.paper_id "
        " WHERE pa.dossier_id = d.id) AS pages, "
        "(SELECT o.state FROM records r JOIN outbox o USING (record_id) "
        " WHERE r.dossier_id = d.id ORDER BY r.id DESC LIMIT 1) AS delivery "
        f"FROM dossiers d WHERE d.status = ? AND d.code LIKE ? ESCAPE '\\' ORDER BY {order} "
        "LIMIT ?", (status, pattern, limit)).fetchall()
    return [QueueRow(int(r["id"]), str(r["code"]), str(r["procedure_code"]), str(r["status"]),
                     r["submitted_at"], r["signed_at"], r["signed_by"], int(r["papers"]),
                     int(r["pages"]), r["delivery"], r["public_id"]) for r in rows]


def count_status(conn: sqlite3.Connection, status: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM dossiers WHERE status=?",
                            (status,)).fetchone()[0])


def status_by_code(conn: sqlite3.Connection, code: str) -> str | None:
    """A dossier's status from its code alone, for the kiosk's lookup: nothing else of
    it (no name, no page) is ever answered to someone holding only a code."""
    row = conn.execute("SELECT status FROM dossiers WHERE code=?", (code.strip(),)).fetchone()
    return str(row["status"]) if row else None


def paper_exists(conn: sqlite3.Connection, dossier_id: int, paper_id: int) -> bool:
    """Whether a paper (named by an old job, say) still belongs to the dossier."""
    if not 0 < paper_id <= MAX_ROW_ID:
        return False
    return conn.execute("SELECT 1 FROM papers WHERE id=? AND dossier_id=?",
                        (paper_id, dossier_id)).fetchone() is not None
