"""Measure what the durable outbox costs against raw paho publishing, on one broker, in one run.

Raw: N messages of S bytes at QoS 1, timed to the last PUBACK (what a fire-and-forget
publisher would call "sent"). Outbox: N records, each with one S-byte file, timed from
the publisher's start to the last receiver ack committed on the device. The ratio is
the price of "delivered means on the central disk": two fsynced commits on the device
and two on the receiver per record, plus the ack's round trip.

The records are made through the records module (dossier, page, PDF, sign-off), as on
a kiosk, without a scanner or OCR.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from appliance.central.receiver import run_receiver
from appliance.records import dossiers, pages
from appliance.store import db, outbox
from appliance.store.files import FileStore
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchResult:
    records: int
    size: int
    raw_msgs_per_s: float
    outbox_records_per_s: float

    @property
    def ratio(self) -> float:
        return self.outbox_records_per_s / self.raw_msgs_per_s

    def summary(self) -> str:
        return (f"{self.records} x {self.size} B on loopback: raw paho QoS 1 "
                f"{self.raw_msgs_per_s:,.0f} msg/s; outbox end-to-end (acked by the receiver) "
                f"{self.outbox_records_per_s:,.1f} records/s; ratio {self.ratio:.4f} "
                f"(1 : {1 / self.ratio:,.0f})")


def measure_raw(host: str, port: int, count: int, size: int) -> float:
    """Messages per second from the first publish to the last PUBACK."""
    done = threading.Event()
    acked = [0]

    def on_publish(client: mqtt.Client, userdata: object, mid: int, reason: mqtt.ReasonCode,
                   props: object) -> None:
        acked[0] += 1
        if acked[0] >= count:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(20)
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    try:
        payload = os.urandom(size)
        start = time.perf_counter()
        for _ in range(count):
            client.publish("bench/raw", payload, qos=1)
        if not done.wait(120):
            raise TimeoutError(f"only {acked[0]} of {count} PUBACKs")
        return count / (time.perf_counter() - start)
    finally:
        client.disconnect()
        client.loop_stop()


def _fill_outbox(config: config_mod.Config, count: int, size: int) -> None:
    """Signed records made the way the product makes them: a dossier, one page, one
    PDF of `size` random bytes, submitted and signed off (record and outbox row in
    one transaction). Only the scanner and OCR are left out; the page is a tiny image."""
    conn = db.connect(config.paths.database)
    files = FileStore(config.paths.files)
    page = Image.new("RGB", (32, 32), "white")
    try:
        for _ in range(count):
            dossier_id = dossiers.create(conn, config, "khac")
            stored = pages.store_page(conn, files, dossier_id, None, page, "bench", dpi=200)
            pages.store_paper_pdf(conn, files, stored.paper_id, os.urandom(size), {})
            dossiers.submit(conn, dossier_id)
            dossiers.sign_off(conn, config, dossier_id, "bench")
    finally:
        conn.close()


def measure_outbox(host: str, port: int, count: int, size: int, workdir: Path) -> float:
    """Records per second from the publisher's start to the last ack committed on the device."""
    config = config_mod.with_overrides(
        config_mod.Config(),
        device={"id": f"bench-{uuid.uuid4().hex[:8]}"},
        paths={"data_dir": str(workdir / "device")},
        mqtt={"host": host, "port": port, "ack_timeout_seconds": 30.0},
        central={"database": str(workdir / "central.sqlite3")},
    )
    _fill_outbox(config, count, size)
    stop = threading.Event()
    threads = [threading.Thread(target=run_receiver, args=(config, stop),
                                kwargs={"client_id": f"bench-central-{uuid.uuid4().hex[:8]}"},
                                daemon=True)]
    threads[0].start()
    time.sleep(1.0)  # let the receiver subscribe, so nothing waits for an ack timeout
    conn = db.connect(config.paths.database)
    try:
        start = time.perf_counter()
        threads.append(threading.Thread(target=run_publisher, args=(config, stop), daemon=True))
        threads[1].start()
        deadline = time.monotonic() + 600
        while outbox.stats(conn)["delivered_count"] < count:
            if time.monotonic() > deadline:
                raise TimeoutError("outbox benchmark did not finish in 600 s")
            time.sleep(0.02)
        return count / (time.perf_counter() - start)
    finally:
        conn.close()
        stop.set()
        for t in threads:
            t.join(15)


def run_bench(host: str, port: int, count: int = 500, size: int = 2048,
              workdir: Path | None = None) -> BenchResult:
    raw = measure_raw(host, port, count, size)
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
            rec = measure_outbox(host, port, count, size, Path(tmp))
    else:
        rec = measure_outbox(host, port, count, size, workdir)
    return BenchResult(count, size, raw, rec)


def add_bench_sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--size", type=int, default=2048, help="file bytes per record")


def cmd_bench_sync(args: argparse.Namespace) -> int:
    """Needs a running broker at --host/--port (tests start their own mosquitto)."""
    result = run_bench(args.host, args.port, args.records, args.size)
    print(result.summary())
    return 0
