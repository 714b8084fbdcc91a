"""One picture of the device's health, shared by `appliance status`, /api/status and
the technician screen, so a technician sees the same figures an automated check sees.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from appliance.store import outbox
from appliance.store.db import connect, get_state
from appliance.system.config import Config

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def model_summary(models_dir: Path = MODELS_DIR) -> list[dict[str, Any]]:
    """Names and checksums from the manifest, without loading any model."""
    manifest = models_dir / "manifest.json"
    if not manifest.exists():
        return []
    data = json.loads(manifest.read_text(encoding="utf-8"))
    entries = data.get("models", data) if isinstance(data, dict) else data
    if isinstance(entries, dict):
        entries = [dict(v, name=k) for k, v in entries.items()]
    return [{"name": e.get("name"), "file": e.get("file"), "sha256": e.get("sha256")}
            for e in entries]


def snapshot(conn: sqlite3.Connection, config: Config) -> dict[str, Any]:
    """Backlog, delivery and process states from the shared database and the data disk."""
    at = time.time()
    stats = outbox.stats(conn, now=at)

    def state(key: str) -> str | None:
        found = get_state(conn, key)
        return found[0] if found else None

    heartbeat = state("worker.heartbeat")
    try:
        heartbeat_age = round(max(0.0, at - float(heartbeat)), 1) if heartbeat else None
    except ValueError:
        heartbeat_age = None
    try:
        disk_free: int | None = shutil.disk_usage(config.paths.data_dir).free
    except OSError:
        disk_free = None
    return {
        "device_id": config.device.id,
        "agency_code": config.device.agency_code,
        "queue_depth": stats["queue_depth"],
        "oldest_undelivered_age_s": stats["oldest_undelivered_age_seconds"],
        "last_delivery_at": stats["last_delivery_at"],
        "delivered": stats["delivered_count"],
        "sync_state": state("sync.state") or "not_started",
        "sync_last_error": state("sync.last_error"),
        "scanner_state": state("scanner.state") or "unknown",
        "ocr_state": state("ocr.state") or "unknown",
        "worker_heartbeat_age_s": heartbeat_age,
        "disk_free_bytes": disk_free,
        "checked_at": at,
    }


def collect(config: Config) -> dict[str, Any]:
    """Everything `appliance status --json` prints, models included."""
    conn = connect(config.paths.database)
    try:
        return {**snapshot(conn, config), "models": model_summary()}
    finally:
        conn.close()
