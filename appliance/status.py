"""One picture of the device's health, shared by `appliance status`, /api/status and
the technician screen, so a technician sees the same figures an automated check sees.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from typing import Any

from appliance.ocr.errors import OcrError
from appliance.ocr.manifest import Manifest, default_models_dir
from appliance.store import outbox
from appliance.store import state as device_state
from appliance.store.db import connect
from appliance.store.state import StateKey
from appliance.system.config import Config


def disk_below_scan_floor(config: Config) -> bool:
    """Whether the data disk has less free space than health.scan_min_free_mb: the
    pages, PDF and record of what is already scanned must still fit, so new scans stop
    first. The kiosk refuses new scans and the worker leaves queued ones waiting (none
    is dropped) on this one test, so the two can never disagree about "full". An
    unreadable disk is not "full" here; the store reports its own errors."""
    floor = config.health.scan_min_free_mb * 1024 * 1024
    if floor <= 0:
        return False
    try:
        return shutil.disk_usage(config.paths.data_dir).free < floor
    except OSError:
        return False


def snapshot(conn: sqlite3.Connection, config: Config) -> dict[str, Any]:
    """Backlog, delivery and process states from the shared database and the data disk."""
    at = time.time()
    stats = outbox.stats(conn, now=at)

    def state(key: StateKey) -> str | None:
        return device_state.read(conn, key)

    beat = device_state.heartbeat(conn)
    heartbeat_age = round(max(0.0, at - beat), 1) if beat is not None else None
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
        # Messages the sync service set aside (unreadable, unverifiable): none is normal.
        "sync_dead_letters": int(outbox.dead_letter_counts(conn).get("total", 0)),
        "sync_state": state(StateKey.SYNC) or "not_started",
        "sync_last_error": state(StateKey.SYNC_ERROR),
        "scanner_state": device_state.scanner_summary(conn) or "unknown",
        "ocr_state": state(StateKey.OCR) or "unknown",
        "worker_heartbeat_age_s": heartbeat_age,
        "disk_free_bytes": disk_free,
        "checked_at": at,
    }


def collect(config: Config) -> dict[str, Any]:
    """Everything `appliance status --json` prints, models included."""
    conn = connect(config.paths.database, key_file=config.paths.key_file)
    try:
        return {**snapshot(conn, config), "models": model_summary()}
    finally:
        conn.close()


def model_summary() -> list[dict[str, str]]:
    """Names and checksums from the manifest, without loading any model."""
    try:
        manifest = Manifest.load(default_models_dir())
    except OcrError:
        return []
    return [{"name": e.name, "file": e.file, "sha256": e.sha256} for e in manifest.entries]
