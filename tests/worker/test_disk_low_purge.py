"""Below health.scan_min_free_mb the worker leaves queued scans waiting; the retention
run must go on all the same, since it is what gives the disk back (the local copies
of dossiers delivered longer ago than retention.delivered_days)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from appliance.records import dossiers
from appliance.store import outbox
from appliance.store.db import connect
from appliance.system.config import Config, with_overrides
from appliance.worker import run_worker
from tests.helpers.signed_papers import scanned_forms

DAY = 86400.0


def test_a_low_disk_still_purges_what_retention_lets_go(tmp_path: Path):
    # A floor no disk reaches: the worker sees the disk as low from its first turn.
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")},
                            health={"scan_min_free_mb": 10**9})
    conn = connect(config.paths.database)
    try:
        forms = scanned_forms(conn, config, ((1,),))
        record_id = dossiers.sign_off(conn, config, forms.dossier_id, "Nguyễn Thị Lan")
        assert outbox.claim_next(conn) is not None
        outbox.mark_delivered(conn, record_id,
                              {"sha256": dossiers.record_of(conn, record_id).sha256},
                              now=time.time() - (config.retention.delivered_days + 1) * DAY)
        stop = threading.Event()
        worker = threading.Thread(target=run_worker, args=(config, stop),
                                  kwargs={"engine": lambda _config: None}, daemon=True)
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while (dossiers.get(conn, forms.dossier_id).purged_at is None
                   and time.monotonic() < deadline and worker.is_alive()):
                time.sleep(0.2)
        finally:
            stop.set()
            worker.join(30)
        assert dossiers.get(conn, forms.dossier_id).purged_at is not None
    finally:
        conn.close()
