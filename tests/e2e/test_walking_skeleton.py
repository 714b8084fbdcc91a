"""One dossier from the scanner to the central office, through every real process.

mosquitto, the eSCL scanner emulator (through sane-airscan and python-sane), the
worker with onnxruntime OCR, the sync service, the central receiver and the web
server under gunicorn all run as separate processes; the test only speaks HTTP to
the web and reads the receiver's own database at the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.central.receiver import list_records
from appliance.records import dossiers
from appliance.store.db import connect
from appliance.system import config as config_mod
from tests.helpers.mosquitto import start_mosquitto
from tests.helpers.processes import (
    Processes,
    demo_scanner_sane,
    free_port,
    http,
    start_scanning_appliance,
    wait_for,
)

pytestmark = pytest.mark.timeout(420)


@dataclass
class Appliance:
    base: str
    config: config_mod.Config
    procs: Processes
    tmp: Path
    mqtt_port: int


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    web_port, scanner_port, mqtt_port = free_port(), free_port(), free_port()
    config = config_mod.with_overrides(
        config_mod.Config(),
        paths={"data_dir": str(tmp_path / "device")},
        web={"bind": f"127.0.0.1:{web_port}"},
        scanner={"sane_config_dir": demo_scanner_sane(tmp_path, scanner_port)},
        mqtt={"host": "127.0.0.1", "port": mqtt_port, "ack_timeout_seconds": 3.0,
              "chunk_bytes": 32768},
        central={"database": str(tmp_path / "central" / "central.sqlite3")},
    )
    procs = Processes.for_config(tmp_path, config)
    try:
        base = start_scanning_appliance(procs, web_port, scanner_port, 2, "sync", "central")
        yield Appliance(base, config, procs, tmp_path, mqtt_port)
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()


def scan_and_sign(app: Appliance) -> tuple[str, str]:
    """Drive the kiosk and officer API: new dossier, ADF scan, submit, sign off."""
    status, dossier = http("POST", f"{app.base}/api/dossiers", {"procedure": "tk1-ts"})
    assert status == 201, dossier
    dossier_id = dossier["id"]  # the public id: the API never shows row ids
    status, job = http("POST", f"{app.base}/api/dossiers/{dossier_id}/scans", {"source": "adf"})
    assert status == 202, job

    def job_finished() -> dict | None:
        _, body = http("GET", f"{app.base}/api/jobs/{job['job_id']}")
        return body if body["state"] in ("done", "failed") else None

    finished = wait_for(job_finished, 240, "the scan and OCR job", interval=0.5)
    assert finished["state"] == "done", (finished, app.procs.logs())
    _, dossier = http("GET", f"{app.base}/api/dossiers/{dossier_id}")
    [paper] = dossier["papers"]
    assert len(paper["pages"]) == 2
    assert paper["pdf_sha256"]
    status, body = http("POST", f"{app.base}/api/dossiers/{dossier_id}/submit")
    assert status == 200, body
    status, signed = http("POST", f"{app.base}/api/dossiers/{dossier_id}/sign",
                          {"officer": "Nguyễn Thị Lan"})
    assert status == 200, signed
    return dossier_id, signed["record_id"]


def device_record(app: Appliance, record_id: str) -> dict[str, str]:
    """The signed record as the device keeps it, opened with its key (sealed at rest)."""
    conn = connect(app.config.paths.database, migrate=False)
    try:
        record = dossiers.record_of(conn, record_id)
        return {"body_json": record.body_json, "sha256": record.sha256}
    finally:
        conn.close()


def wait_delivered(app: Appliance, dossier_id: str, timeout: float = 90) -> None:
    def delivered() -> bool:
        _, body = http("GET", f"{app.base}/api/dossiers/{dossier_id}")
        return body["delivery"] == "delivered"

    wait_for(delivered, timeout, "the central acknowledgement", interval=0.5)


def assert_received_once(app: Appliance, record_id: str, dossier_id: str) -> None:
    row = device_record(app, record_id)
    received = [r for r in list_records(app.config.central.database)
                if r["record_id"] == record_id]
    assert len(received) == 1, received
    assert received[0]["sha256"] == row["sha256"]
    assert hashlib.sha256(row["body_json"].encode()).hexdigest() == row["sha256"]
    _, dossier = http("GET", f"{app.base}/api/dossiers/{dossier_id}")
    assert received[0]["dossier_code"] == dossier["code"]
    codes = [p["result_code"] for p in dossier["papers"]]
    assert codes and all(codes)
    assert received[0]["result_codes"] == codes
    # The paper's PDF arrived whole: the receiver verified it against the same hash.
    assert received[0]["files"] == [p["pdf_sha256"] for p in dossier["papers"]]


def test_dossier_travels_from_scanner_to_central(appliance: Appliance) -> None:
    broker = start_mosquitto(appliance.tmp / "broker", port=appliance.mqtt_port)
    try:
        dossier_id, record_id = scan_and_sign(appliance)
        wait_delivered(appliance, dossier_id)
        assert_received_once(appliance, record_id, dossier_id)
        _, status = http("GET", f"{appliance.base}/api/status")
        assert status["queue_depth"] == 0
        assert status["last_delivery_at"] is not None
    finally:
        broker.stop()


def test_broker_started_after_dossier_finished_arrives_once(appliance: Appliance) -> None:
    dossier_id, record_id = scan_and_sign(appliance)
    _, status = http("GET", f"{appliance.base}/api/status")
    assert status["queue_depth"] == 1
    _, dossier = http("GET", f"{appliance.base}/api/dossiers/{dossier_id}")
    assert dossier["delivery"] != "delivered"
    broker = start_mosquitto(appliance.tmp / "broker", port=appliance.mqtt_port)
    try:
        wait_delivered(appliance, dossier_id, timeout=120)
        assert_received_once(appliance, record_id, dossier_id)
    finally:
        broker.stop()
