"""The job queue between the web (which asks) and the worker (the only scanner user).

A job is claimed with UPDATE … RETURNING under BEGIN IMMEDIATE so two workers never
take the same job; a job left 'running' by a worker that died is failed at the next
worker start with a reason, never silently re-run (a re-run scan would duplicate pages).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from appliance.store.db import now, transaction

# The error key of a job a dead worker left running (the kiosk translates it).
WORKER_RESTARTED = "error.worker_restarted"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobKind(StrEnum):
    """What a job asks of the worker: a citizen's scan, or a technician's look at the
    scanners (worker/test_scan.py), which only the worker may open."""

    SCAN = "scan"
    SCANNER_LIST = "scanner_list"
    SCANNER_TEST = "scanner_test"


class JobStep(StrEnum):
    """Where a running job is, in its progress; the kiosk translates `job.<step>`."""

    SCANNING = "scanning"
    READING = "reading"
    ASSEMBLING = "assembling"
    DONE = "done"


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    dossier_id: int | None
    params: dict[str, Any]
    state: JobState
    progress: dict[str, Any]
    error_key: str | None
    error_detail: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"], kind=row["kind"], dossier_id=row["dossier_id"],
            params=json.loads(row["params_json"]), state=JobState(row["state"]),
            progress=json.loads(row["progress_json"]), error_key=row["error_key"],
            error_detail=row["error_detail"],
        )


def enqueue(conn: sqlite3.Connection, kind: str, dossier_id: int | None,
            params: dict[str, Any]) -> int:
    cur = conn.execute(
        "INSERT INTO jobs(kind, dossier_id, params_json, state, created_at) VALUES (?,?,?,?,?)",
        (kind, dossier_id, json.dumps(params, ensure_ascii=False), JobState.QUEUED, now()),
    )
    return int(cur.lastrowid or 0)


def claim_next(conn: sqlite3.Connection, worker_pid: int) -> Job | None:
    with transaction(conn):
        row = conn.execute(
            "UPDATE jobs SET state=?, started_at=?, claimed_by=? WHERE id = "
            "(SELECT id FROM jobs WHERE state=? ORDER BY id LIMIT 1) RETURNING *",
            (JobState.RUNNING, now(), worker_pid, JobState.QUEUED),
        ).fetchone()
    return Job.from_row(row) if row else None


def fail_abandoned(conn: sqlite3.Connection) -> int:
    """Fail jobs a dead worker left running; the pages it stored stay."""
    with transaction(conn):
        cur = conn.execute(
            "UPDATE jobs SET state=?, finished_at=?, error_key=?, "
            "error_detail='worker restarted while the job was running' WHERE state=?",
            (JobState.FAILED, now(), WORKER_RESTARTED, JobState.RUNNING),
        )
    return cur.rowcount


def set_progress(conn: sqlite3.Connection, job_id: int, **progress: Any) -> None:
    conn.execute("UPDATE jobs SET progress_json=? WHERE id=?",
                 (json.dumps(progress, ensure_ascii=False), job_id))


def finish(conn: sqlite3.Connection, job_id: int) -> None:
    conn.execute("UPDATE jobs SET state=?, finished_at=? WHERE id=?",
                 (JobState.DONE, now(), job_id))


def fail(conn: sqlite3.Connection, job_id: int, key: str, detail: str) -> None:
    conn.execute(
        "UPDATE jobs SET state=?, finished_at=?, error_key=?, error_detail=? WHERE id=?",
        (JobState.FAILED, now(), key, detail, job_id),
    )


def get(conn: sqlite3.Connection, job_id: int) -> Job | None:
    row = conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
    return Job.from_row(row) if row else None


def active_for_dossier(conn: sqlite3.Connection, dossier_id: int) -> Job | None:
    row = conn.execute(
        "SELECT * FROM jobs WHERE dossier_id=? AND state IN (?, ?) ORDER BY id LIMIT 1",
        (dossier_id, JobState.QUEUED, JobState.RUNNING),
    ).fetchone()
    return Job.from_row(row) if row else None


def request_cancel(conn: sqlite3.Connection, job_id: int, key: str) -> bool:
    """Ask a scan to stop: a queued job fails at once with `key` (it never reaches the
    scanner); a running one is flagged, and the worker stops at the next page boundary,
    keeping the pages so far. False when the job had already ended."""
    with transaction(conn):
        cur = conn.execute(
            "UPDATE jobs SET state=?, finished_at=?, error_key=?, "
            "error_detail='cancelled before it started' WHERE id=? AND state=?",
            (JobState.FAILED, now(), key, job_id, JobState.QUEUED),
        )
        if cur.rowcount:
            return True
        cur = conn.execute(
            "UPDATE jobs SET params_json=json_set(params_json, '$.cancel', json('true')) "
            "WHERE id=? AND state=?", (job_id, JobState.RUNNING),
        )
        return bool(cur.rowcount)


def cancel_requested(conn: sqlite3.Connection, job_id: int) -> bool:
    """Whether someone asked the running job to stop (read at each page boundary)."""
    row = conn.execute("SELECT json_extract(params_json, '$.cancel') FROM jobs WHERE id=?",
                       (job_id,)).fetchone()
    return bool(row and row[0])



def active_of_kind(conn: sqlite3.Connection, kinds: tuple[str, ...]) -> Job | None:
    """The oldest queued or running job of one of `kinds` (a technician's scanner test
    waits for the one before it rather than piling up in front of citizens' scans)."""
    marks = ",".join("?" * len(kinds))
    row = conn.execute(
        f"SELECT * FROM jobs WHERE kind IN ({marks}) AND state IN (?, ?) ORDER BY id LIMIT 1",
        (*kinds, JobState.QUEUED, JobState.RUNNING),
    ).fetchone()
    return Job.from_row(row) if row else None


TEST_THUMBNAIL = "thumbnail_jpeg"  # a test scan's page, sealed, in its job's progress


def forget_test_thumbnails(conn: sqlite3.Connection, before_id: int) -> int:
    """Drop the pages of earlier test scans: a technician may test with a citizen's
    paper, and a test page is no record to keep; only the latest test's stays."""
    cur = conn.execute(
        "UPDATE jobs SET progress_json=json_remove(progress_json, '$." + TEST_THUMBNAIL
        + "') WHERE id < ? AND kind=? AND json_extract(progress_json, '$."
        + TEST_THUMBNAIL + "') IS NOT NULL", (before_id, JobKind.SCANNER_TEST))
    return cur.rowcount
