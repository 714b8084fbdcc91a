"""One picture of the device's health, shared by `appliance status` and the screens."""

from __future__ import annotations

import json
import shutil
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


def collect(config: Config) -> dict[str, Any]:
    conn = connect(config.paths.database)
    try:
        stats = outbox.stats(conn)

        def state(key: str) -> str | None:
            found = get_state(conn, key)
            return found[0] if found else None

        heartbeat = state("worker.heartbeat")
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
            "worker_heartbeat_age_s": (round(time.time() - float(heartbeat), 1)
                                       if heartbeat else None),
            "disk_free_bytes": shutil.disk_usage(config.paths.data_dir).free,
            "models": model_summary(),
        }
    finally:
        conn.close()
