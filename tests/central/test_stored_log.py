"""The receiver says a record is stored only once its batch is committed.

Before, the "stored" line was written while the record was still in the open batch:
a batch rolled back (a failing disk, a lost connection) left a log that claimed records
the central office did not have, which is what an operator reads first after an incident.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time

import pytest

from appliance.central.db import open_configured
from appliance.central.receiver import _Receiver
from appliance.sync import wire
from tests.helpers.sync_rig import make_config

pytestmark = pytest.mark.timeout(60)

DEVICE = "kiosk-09"


def _record(record_id: str) -> wire.RecordMessage:
    body = json.dumps({"record_id": record_id, "device_id": DEVICE, "dossier_code": "D-1",
                       "papers": [{"ordinal": 1, "result_code": "X.01", "file": None}]})
    return wire.RecordMessage(record_id, hashlib.sha256(body.encode()).hexdigest(), body,
                              batch=True)


def _stored_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("stored ")]


@pytest.mark.parametrize("packed", [True, False], ids=["pack", "single"])
def test_stored_is_logged_after_the_commit_not_before(tmp_path, caplog, packed):
    caplog.set_level(logging.INFO, logger="appliance.central")
    config = make_config(tmp_path, 1)
    conn = open_configured(config.central)
    try:
        rx = _Receiver(config, conn, threading.Event(), lambda _m: None, "central-test")
        topic = wire.records_topic(rx.prefix, DEVICE)

        def send(ids: list[str]) -> None:
            records = [_record(i) for i in ids]
            if packed:
                payload = wire.join_record_pack([wire.pack_item(r) for r in records])
                rx.process(topic, payload, False, 1, 1, time.monotonic())
            else:
                for n, r in enumerate(records):
                    rx.process(topic, wire.encode_record(r), False, n + 1, 1,
                               time.monotonic())

        send(["r-1", "r-2"])
        assert rx.batch is not None
        assert _stored_lines(caplog) == [], "logged as stored before the COMMIT"
        rx.abandon()  # the batch rolls back: nothing was stored
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0
        assert _stored_lines(caplog) == []

        send(["r-1", "r-2"])
        rx.flush()
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 2
        lines = _stored_lines(caplog)
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"stored 2 new record(s) from {DEVICE}")
        assert "r-1" in lines[0] and "r-2" in lines[0]
    finally:
        conn.close()
