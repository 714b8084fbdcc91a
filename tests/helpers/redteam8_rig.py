"""The eighth review's rig: `appliance central` as real processes on SQLite or on a real
PostgreSQL, fed hand-made messages through a real mosquitto.

Why its own module: the earlier red-team helpers start receivers on SQLite, or on
PostgreSQL in a thread; the eighth review compares the two engines on the same input
with real processes (several sharing one subscription, some killed -9), so the
configuration for either engine, the processes, their logs and the counters read the
same way for both are written once here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from appliance.central import store as central_store
from appliance.sync import wire
from appliance.system import config as config_mod
from tests.helpers.junk_flood import receiver_connections, stop
from tests.helpers.sync_rig import (
    central_read,
    make_config,
    start_central,
    wait_for,
    write_config_file,
)

ENGINES = ("sqlite", "postgresql")
DEVICE = "dev-8"


def engine_config(tmp_path: Path, port: int, engine: str, pg_server: Any = None,
                  **central: Any) -> config_mod.Config:
    """The receivers' configuration on `engine`; PostgreSQL gets a fresh database on
    `pg_server` and a key file beside the (unused) SQLite path."""
    settings: dict[str, Any] = dict(central)
    if engine == "postgresql":
        settings["postgres_dsn"] = pg_server.create_database()
    return make_config(tmp_path, port, central=settings)


def counters(config: config_mod.Config) -> dict[str, int]:
    """The receivers' counters, either engine; {} while the database cannot be read."""
    return central_read(config, central_store.counters, {})


def served_ids(config: config_mod.Config) -> dict[str, str]:
    """record id -> sha256 of every served record (either engine)."""
    return central_read(config, lambda conn: {
        r["record_id"]: r["sha256"] for r in central_store.list_records(conn)}, {})


def served_bodies(config: config_mod.Config) -> dict[str, str]:
    """record id -> body as stored (opened with the key), every served record."""
    return central_read(config, lambda conn: {
        r["record_id"]: r["body_json"] for r in central_store.list_records(conn)}, {})


def all_rows(config: config_mod.Config, sql: str) -> list[dict[str, Any]]:
    return central_read(config, lambda conn: [dict(r) for r in conn.execute(sql)], [])


class Receivers:
    """`appliance central` processes on one configuration, each with its own client id,
    folder and log; stopped by PID at the end whatever happened."""

    def __init__(self, tmp_path: Path, config: config_mod.Config) -> None:
        self.config = config
        self.folder = tmp_path / "receivers"
        self.folder.mkdir(exist_ok=True)
        self.config_file = write_config_file(self.folder, config)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def log(self, n: int) -> Path:
        return self.folder / f"central-{n}.log"

    def log_text(self, n: int) -> str:
        try:
            return self.log(n).read_text(errors="replace")
        except OSError:
            return ""

    def start(self, n: int) -> subprocess.Popen[bytes]:
        before = receiver_connections(self.log(n)) if self.log(n).exists() else 0
        proc = start_central(self.config_file, self.log(n), "--client-id", f"rt8-c{n}")
        self.procs[n] = proc
        wait_for(lambda: receiver_connections(self.log(n)) > before or proc.poll() is not None,
                 60, f"receiver {n} connected")
        assert proc.poll() is None, f"receiver {n} exited at start:\n{self.log_text(n)[-3000:]}"
        return proc

    def kill9(self, n: int) -> None:
        proc = self.procs[n]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def running(self, n: int) -> bool:
        return self.procs[n].poll() is None

    def exited(self) -> dict[int, str]:
        """Receivers that exited on their own: their number and the end of their log."""
        return {n: self.log_text(n)[-2500:] for n, p in self.procs.items()
                if p.poll() is not None}

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop(proc)


def body(record_id: str, code: str, device_id: str = DEVICE) -> str:
    return json.dumps({"record_id": record_id, "device_id": device_id, "dossier_code": code,
                       "papers": [{"result_code": f"{record_id}-1"}]})


def record(record_id: str, code: str = "HS-1", device_id: str = DEVICE) -> wire.RecordMessage:
    """A well-formed record message of a hand-made body (correct sha256, this device)."""
    text = body(record_id, code, device_id)
    return wire.RecordMessage(record_id, hashlib.sha256(text.encode("utf-8")).hexdigest(),
                              text, batch=True)


def single(msg: wire.RecordMessage) -> bytes:
    return wire.encode_record(dataclasses.replace(msg, batch=False))


def pack(msgs: list[wire.RecordMessage]) -> bytes:
    """A binary "records" pack, as a device that heard "acks" sends it."""
    return wire.encode_record_pack(msgs)


def records_topic(device_id: str = DEVICE) -> str:
    return wire.records_topic("bhxh", device_id)


__all__ = ["DEVICE", "ENGINES", "Receivers", "all_rows", "body", "counters", "engine_config",
           "pack", "record", "records_topic", "served_bodies", "served_ids", "single"]
