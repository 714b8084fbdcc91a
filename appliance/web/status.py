"""Device status as one dict: what the technician page shows and /api/status returns.

The figures come from the shared database (outbox backlog, states the worker and the
sync service publish) and the data disk, so a technician sees the same numbers an
automated check sees.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from appliance.store.db import get_state


def _outbox_stats(conn: sqlite3.Connection, at: float) -> dict[str, Any]:
    """Backlog figures, normalised to this API's names whatever the store returns."""
    try:
        from appliance.store.outbox import stats
    except ImportError:  # the outbox module is younger than the web; same SQL, here
        stats = None
    if stats is not None:
        s = stats(conn, now=at)
        return {
            "depth": s.get("queue_depth", s.get("depth", 0)),
            "oldest_age_s": s.get("oldest_undelivered_age_seconds", s.get("oldest_age_s")),
            "last_delivery_at": s.get("last_delivery_at"),
            "delivered": s.get("delivered_count", s.get("delivered", 0)),
        }
    row = conn.execute(
        "SELECT SUM(state!='delivered') AS depth, SUM(state='delivered') AS delivered, "
        "MIN(CASE WHEN state!='delivered' THEN created_at END) AS oldest, "
        "MAX(delivered_at) AS last FROM outbox"
    ).fetchone()
    return {
        "depth": row["depth"] or 0,
        "oldest_age_s": max(0.0, at - row["oldest"]) if row["oldest"] is not None else None,
        "last_delivery_at": row["last"],
        "delivered": row["delivered"] or 0,
    }


def _state(conn: sqlite3.Connection, key: str) -> str | None:
    found = get_state(conn, key)
    return found[0] if found else None


def collect(conn: sqlite3.Connection, data_dir: str | Path) -> dict[str, Any]:
    at = time.time()
    out = _outbox_stats(conn, at)
    heartbeat = _state(conn, "worker.heartbeat")
    try:
        heartbeat_age: float | None = max(0.0, at - float(heartbeat)) if heartbeat else None
    except ValueError:
        heartbeat_age = None
    try:
        disk_free: int | None = shutil.disk_usage(data_dir).free
    except OSError:
        disk_free = None
    out.update({
        "sync_state": _state(conn, "sync.state") or "unknown",
        "sync_last_error": _state(conn, "sync.last_error"),
        "scanner_state": _state(conn, "scanner.state") or "unknown",
        "ocr_state": _state(conn, "ocr.state") or "unknown",
        "disk_free_bytes": disk_free,
        "worker_heartbeat_age_s": heartbeat_age,
        "checked_at": at,
    })
    return out
