"""`appliance bench fleet`: many devices draining at once into one broker and several
receivers that share one subscription; records/s, duplicates and lost records.

Each simulated device is a real `appliance sync` publisher with its own identity (its
device id, which is its MQTT client id and the device named in its records' topic and
body), its own outbox (its own SQLite file) and its own at-rest key, filled with signed
records made through the records module. The publishers run as threads in a few worker
processes (one process per device would need 200 Python interpreters on the box that
measures); the receivers are separate processes, as `appliance central` would be,
sharing the MQTT v5 subscription $share/<group>/... and one database (SQLite by default,
PostgreSQL with --postgres-dsn).

Timed from the moment every worker lets its devices go (they connect at once, as a
fleet coming back after an outage would) until the last device has marked its last
record delivered. Then the central database and every outbox are compared:
duplicates: rows beyond one per (device, record id), served or held (must be 0);
lost: records of an outbox not served by the central with the same sha256, or whose
stored body or file does not hash to what the device sent (must be 0);
false_delivered: outbox rows marked delivered that the central does not serve (must
be 0); redelivered: copies the receivers absorbed as duplicates (information: the
price of at-least-once on the wire).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.bench.local import free_port

DRAIN_TIMEOUT_SECONDS = 900.0
SHARE_GROUP = "fleet-receivers-of-the-bench"
MOSQUITTO = "/usr/sbin/mosquitto"
# Devices per publisher process: threads share one interpreter lock, so not too many.
DEVICES_PER_WORKER = 50


@dataclass(frozen=True)
class FleetResult:
    devices: int
    receivers: int
    engine: str
    records: int
    file_bytes: int
    seconds: float
    duplicates: int
    lost: int
    false_delivered: int
    redelivered: int
    dead_letters: int

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "records_per_s": self.records_per_s}

    def summary(self) -> str:
        return (f"{self.devices} devices x {self.records // max(1, self.devices)} records "
                f"({self.file_bytes:,} B file each) into {self.receivers} receivers sharing "
                f"one subscription ({self.engine}): {self.records_per_s:,.1f} records/s "
                f"({self.records} in {self.seconds:.1f} s); duplicates {self.duplicates}, "
                f"lost {self.lost}, falsely delivered {self.false_delivered}; "
                f"{self.redelivered} redelivered copies absorbed, "
                f"{self.dead_letters} dead letters")


# --- broker -------------------------------------------------------------------------


def start_broker(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private mosquitto on a free loopback port, tuned as provisioning's broker is."""
    if not Path(MOSQUITTO).exists():
        raise RuntimeError(f"{MOSQUITTO} not found: install mosquitto or pass --port")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text("\n".join([
        "user root" if os.geteuid() == 0 else "",
        "allow_anonymous true",
        "persistence false",
        "max_queued_messages 1000000",
        "max_inflight_messages 100",
        "set_tcp_nodelay true",
        f"log_dest file {folder / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        f"listener {port} 127.0.0.1",
    ]) + "\n", encoding="utf-8")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("mosquitto did not start") from None
            time.sleep(0.05)


# --- configuration and outboxes -----------------------------------------------------


def central_config(host: str, port: int, workdir: Path, postgres_dsn: str) -> Any:
    """The receivers' side: shared subscription, one database, one pair of keys."""
    from appliance.sync import acksig
    from appliance.system import config as config_mod

    keys = workdir / "keys"
    private, public = keys / "central-ack.key", keys / "central-ack.pub"
    if not private.exists():
        acksig.generate_key(private, public)
    return config_mod.with_overrides(
        config_mod.Config(),
        mqtt={"host": host, "port": port, "central_public_key": str(public)},
        central={"database": str(workdir / "central" / "central.sqlite3"),
                 "signing_key": str(private), "postgres_dsn": postgres_dsn,
                 "share_group": SHARE_GROUP,
                 # A record's chunks and the record may reach different receivers.
                 "max_transfers_per_device": 256},
    )


def device_config(central: Any, workdir: Path, index: int) -> Any:
    from appliance.system import config as config_mod

    device_id = f"fleet-{index:04d}"
    return config_mod.with_overrides(
        central, device={"id": device_id},
        paths={"data_dir": str(workdir / "devices" / device_id)},
        mqtt={"ack_timeout_seconds": 30.0})


def fill_outbox(config: Any, count: int, file_bytes: int) -> None:
    """`count` signed records of this device in its outbox: one made through the records
    module (dossier, page, PDF, sign-off), the others cloned from it with their own ids
    and files and signed again, so that filling 200 outboxes takes seconds, not hours."""
    from PIL import Image

    from appliance.records import dossiers, pages, signing
    from appliance.store import db, outbox
    from appliance.store.files import FileStore

    conn = db.connect(config.paths.database, key_file=config.paths.key_file)
    try:
        files = FileStore(config.paths.files, sealer=db.sealer_of(conn))
        dossier_id = dossiers.create(conn, config, "khac")
        stored = pages.store_page(conn, files, dossier_id, None,
                                  Image.new("RGB", (32, 32), "white"), "Tờ khai", dpi=200)
        pages.store_paper_pdf(conn, files, stored.paper_id, b"%PDF-1.7\n" + os.urandom(200),
                              {"values": {"full_name": "NGUYỄN VĂN AN"}})
        dossiers.submit(conn, dossier_id)
        record_id = dossiers.sign_off(conn, config, dossier_id, "bench", sign_results=False)
        template = json.loads(dossiers.record_of(conn, record_id).body_json)
        with db.transaction(conn):
            # Not once claimed: a sync running beside (the chaos test) then sends it
            # like the clones (see appliance/bench/outbox._template).
            conn.execute("DELETE FROM outbox WHERE record_id=? AND last_attempt_at IS NULL",
                         (record_id,))
            for _ in range(count):
                body = json.loads(json.dumps(template))
                body["record_id"] = dossiers.new_record_id()
                paper = body["papers"][0]
                if file_bytes:
                    sha = files.put(b"%PDF-1.7\n" + os.urandom(max(0, file_bytes - 9)), ".pdf")
                    paper["file"] = {**paper["file"], "sha256": sha, "size": file_bytes}
                else:
                    paper["file"] = None
                encoded = signing.encode(body)
                conn.execute(
                    "INSERT INTO records(record_id, dossier_id, body_json, sha256, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (body["record_id"], dossier_id,
                     db.seal_text(conn, encoded.body_json,
                                  db.aad("records", "body_json", body["record_id"])),
                     encoded.sha256, time.time()))
                outbox.enqueue(conn, body["record_id"])
    finally:
        conn.close()


def _fill_many(args: tuple[Any, list[int], Path, int, int]) -> None:
    central, indexes, workdir, count, file_bytes = args
    for i in indexes:
        fill_outbox(device_config(central, workdir, i), count, file_bytes)


# --- processes ----------------------------------------------------------------------


def _serve_receiver(config: Any, client_id: str, log_file: Path) -> None:
    """One receiver process; its log in the work folder (kept with --workdir)."""
    import logging

    from appliance.central.receiver import run_receiver

    logging.basicConfig(filename=str(log_file), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    run_receiver(config, stop, client_id=client_id)


def _serve_devices(configs: list[Any], ready: Any, go: Any) -> None:
    """Publisher threads for these devices, let go together; until SIGTERM."""
    from appliance.sync.publisher import run_publisher

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    ready.set()
    go.wait()
    threads = [threading.Thread(target=run_publisher, args=(c, stop), daemon=True)
               for c in configs]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(20)


def _delivered(config: Any) -> int:
    from appliance.store import db

    conn = db.connect(config.paths.database, migrate=False, key_file=config.paths.key_file)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE state='delivered'")
                   .fetchone()[0])
    finally:
        conn.close()


def _wait_subscribed(central: Any, host: str, port: int, receivers: int) -> int:
    """Publish junk on a records topic until each receiver could have set one aside;
    returns the dead letters counted so far (the baseline)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from appliance.central import store as central_store
    from appliance.central.db import open_configured

    def dead() -> int:
        try:
            conn = open_configured(central.central)
        except Exception:  # noqa: BLE001 - the receivers may be creating it
            return 0
        try:
            return central_store.counters(conn).get("dead_letters", 0)
        finally:
            conn.close()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)
    client.connect(host, port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 60
        while dead() < receivers:
            if time.monotonic() > deadline:
                raise TimeoutError("the receivers did not subscribe within 60 s")
            client.publish(f"{central.mqtt.topic_prefix}/devices/probe-0/records", b"[",
                           qos=1).wait_for_publish(5)
            time.sleep(0.3)
        time.sleep(0.5)
        return dead()
    finally:
        client.disconnect()
        client.loop_stop()


# --- verification -------------------------------------------------------------------


def _device_records(config: Any) -> tuple[dict[str, str], set[str]]:
    """(record id -> sha256 of every record in the outbox, ids marked delivered)."""
    from appliance.store import db

    conn = db.connect(config.paths.database, migrate=False, key_file=config.paths.key_file)
    try:
        rows = conn.execute("SELECT r.record_id, r.sha256, o.state FROM outbox o "
                            "JOIN records r USING (record_id)").fetchall()
    finally:
        conn.close()
    return ({r["record_id"]: r["sha256"] for r in rows},
            {r["record_id"] for r in rows if r["state"] == "delivered"})


def verify(central: Any, devices: list[Any]) -> dict[str, int]:
    """Compare every outbox with the central database (see the module docstring)."""
    from appliance.central import store as central_store
    from appliance.central.db import open_configured

    conn = open_configured(central.central)
    try:
        rows = conn.execute("SELECT device_id, record_id, sha256, status, copies "
                            "FROM records").fetchall()
        served = {(r["device_id"], r["record_id"]): r for r in central_store.list_records(conn)}
        duplicates = len(rows) - len({(r["device_id"], r["record_id"]) for r in rows})
        redelivered = sum(int(r["copies"]) - 1 for r in rows)
        lost = false_delivered = 0
        for config in devices:
            sent, delivered = _device_records(config)
            device_id = config.device.id
            for record_id, sha in sent.items():
                got = served.get((device_id, record_id))
                ok = (got is not None and got["sha256"] == sha
                      and hashlib.sha256(got["body_json"].encode()).hexdigest() == sha
                      and all(_file_ok(conn, f) for f in got["files"]))
                lost += not ok
                false_delivered += record_id in delivered and not ok
        dead = central_store.counters(conn).get("dead_letters", 0)
    finally:
        conn.close()
    return {"duplicates": duplicates, "lost": lost, "false_delivered": false_delivered,
            "redelivered": redelivered, "dead_letters": dead}


def _file_ok(conn: Any, sha: str) -> bool:
    from appliance.central import store as central_store

    data = central_store.get_file(conn, sha)
    return data is not None and hashlib.sha256(data).hexdigest() == sha


# --- the run ------------------------------------------------------------------------


def run_fleet(*, devices: int = 200, records_per_device: int = 10, file_bytes: int = 2048,
              receivers: int = 3, host: str = "127.0.0.1", port: int = 0,
              postgres_dsn: str = "", workdir: Path | None = None) -> FleetResult:
    """Fill `devices` outboxes, start the broker (port 0: a private mosquitto) and the
    receivers, let every device drain at once, and verify the central database."""
    tmp = None if workdir else tempfile.mkdtemp(prefix="bench-fleet-")
    root = Path(workdir or tmp or ".")
    ctx = multiprocessing.get_context("spawn")
    broker = None
    procs: list[Any] = []
    try:
        if not port:
            broker, port = start_broker(root / "broker")
        central = central_config(host, port, root, postgres_dsn)
        configs = [device_config(central, root, i) for i in range(devices)]
        workers = max(1, (devices + DEVICES_PER_WORKER - 1) // DEVICES_PER_WORKER)
        groups = [list(range(devices))[w::workers] for w in range(workers)]
        parts = max(1, min(devices, os.cpu_count() or 1))
        fillers = [ctx.Process(target=_fill_many,
                               args=((central, list(range(devices))[n::parts], root,
                                      records_per_device, file_bytes),))
                   for n in range(parts)]
        for f in fillers:
            f.start()
        for f in fillers:
            f.join()
            if f.exitcode != 0:
                raise RuntimeError("filling the outboxes failed")
        for n in range(receivers):
            p = ctx.Process(target=_serve_receiver,
                            args=(central, f"fleet-central-{n}", root / f"receiver-{n}.log"),
                            daemon=True)
            p.start()
            procs.append(p)
        baseline = _wait_subscribed(central, host, port, receivers)
        go = ctx.Event()
        readies = []
        for g in groups:
            ready = ctx.Event()
            p = ctx.Process(target=_serve_devices, args=([configs[i] for i in g], ready, go),
                            daemon=True)
            p.start()
            procs.append(p)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(120):
                raise TimeoutError("a publisher worker did not start in 120 s")
        start = time.perf_counter()
        go.set()
        pending = list(configs)
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} devices not drained in "
                                   f"{DRAIN_TIMEOUT_SECONDS:.0f} s")
            if not all(p.is_alive() for p in procs):
                raise RuntimeError("a receiver or a publisher worker exited during the run")
            pending = [c for c in pending if _delivered(c) < records_per_device]
            if pending:
                time.sleep(0.1)
        seconds = time.perf_counter() - start
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(30)
        checks = verify(central, configs)
        return FleetResult(devices=devices, receivers=receivers,
                           engine="postgresql" if postgres_dsn else "sqlite",
                           records=devices * records_per_device, file_bytes=file_bytes,
                           seconds=seconds, duplicates=checks["duplicates"],
                           lost=checks["lost"], false_delivered=checks["false_delivered"],
                           redelivered=checks["redelivered"],
                           dead_letters=checks["dead_letters"] - baseline)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        if broker is not None:
            broker.kill()
            broker.wait()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def add_bench_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--records-per-device", type=int, default=10)
    parser.add_argument("--file-bytes", type=int, default=2048,
                        help="bytes of each record's file (0: metadata only)")
    parser.add_argument("--receivers", type=int, default=3)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0,
                        help="broker port; 0 (default) starts a private mosquitto")
    parser.add_argument("--postgres-dsn", default="",
                        help="postgresql:// URL of an empty database; default: SQLite")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def cmd_bench_fleet(args: argparse.Namespace) -> int:
    """0 when every record arrived once; 1 when any was duplicated, lost or falsely
    delivered (the figures are printed either way)."""
    result = run_fleet(devices=args.devices, records_per_device=args.records_per_device,
                       file_bytes=args.file_bytes, receivers=args.receivers, host=args.host,
                       port=args.port, postgres_dsn=args.postgres_dsn)
    print(json.dumps(result.as_dict()) if args.json else result.summary())
    return 0 if result.duplicates == result.lost == result.false_delivered == 0 else 1
