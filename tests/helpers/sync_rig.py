"""Sync test fixtures: a real mosquitto, device and central configs, services in
threads or as real processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.central import store as central_store
from appliance.store.db import connect, get_state
from appliance.store.files import FileStore
from appliance.store.outbox import OutboxState, dead_letter_counts, state_of
from appliance.sync import acksig
from appliance.system import config as config_mod
from appliance.system.process import stop_process
from tests.helpers.device_records import TestRecord, add_record
from tests.helpers.mosquitto import MosquittoProcess, free_port, start_mosquitto

T = TypeVar("T")

# central.store.chunk_state once every stray transfer and pending file has expired.
NO_CHUNK_STATE = {"transfers": 0, "chunks": 0, "bytes": 0, "pending_files": 0,
                  "pending_bytes": 0}


class Brokers:
    """Every broker a test starts; all are stopped at teardown, also when the test fails."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[MosquittoProcess] = []

    def start(self, port: int | None = None, **kwargs: Any) -> MosquittoProcess:
        broker = start_mosquitto(self.folder, port, **kwargs)
        self.started.append(broker)
        return broker

    def stop_all(self) -> None:
        for broker in self.started:
            broker.kill()


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Brokers]:
    b = Brokers(tmp_path / "broker")
    try:
        yield b
    finally:
        b.stop_all()


@pytest.fixture
def broker(brokers: Brokers) -> MosquittoProcess:
    return brokers.start()


def ack_keys(folder: Path) -> tuple[Path, Path]:
    """The central's ack signing key and its public half, made now (never committed)."""
    private, public = folder / "central-ack.key", folder / "central-ack.pub"
    if not private.exists():
        acksig.generate_key(private, public)
    return private, public


def make_config(tmp_path: Path, port: int, *, signed: bool = True,
                central: dict[str, Any] | None = None, **mqtt: Any) -> config_mod.Config:
    """Device and receiver in one config; with signed=True (the default, as in an office)
    the receiver signs with a key made for this test and the device verifies it."""
    settings = {"host": "127.0.0.1", "port": port, "ack_timeout_seconds": 2.0,
                "chunk_bytes": 4096, "keepalive": 10}
    central_settings: dict[str, Any] = {
        "database": str(tmp_path / "central" / "central.sqlite3")}
    if signed:
        private, public = ack_keys(tmp_path / "keys")
        settings["central_public_key"] = str(public)
        central_settings["signing_key"] = str(private)
    settings.update(mqtt)
    central_settings.update(central or {})
    return config_mod.with_overrides(
        config_mod.Config(),
        paths={"data_dir": str(tmp_path / "device")},
        mqtt=settings,
        central=central_settings,
    )


class Service:
    """run_publisher / run_receiver in a thread, stopped through its event."""

    def __init__(self, target: Callable[..., None], config: config_mod.Config) -> None:
        self.stop_event = threading.Event()
        self.notes: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(target, config), daemon=True)
        self.thread.start()

    def _run(self, target: Callable[..., None], config: config_mod.Config) -> None:
        try:
            target(config, self.stop_event, self.notes.append)
        except BaseException as e:  # reported by stop()
            self.error = e

    def running(self) -> bool:
        """Still in its loop: not returned, not raised."""
        return self.thread.is_alive() and self.error is None

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "service did not stop within 15 s"
        if self.error is not None:
            raise self.error


REPO = Path(__file__).resolve().parents[2]
CENTRAL = "appliance.central.commands.main_central"
SYNC = "appliance.sync.commands.main_sync"


def service_process(entry: str, config_file: Path, log: Path,
                    *args: str) -> subprocess.Popen[bytes]:
    """A service's `main` (`CENTRAL`, `SYNC`) as a real process in its own session,
    with `--config config_file` and `args`, its output appended to `log`."""
    module, func = entry.rsplit(".", 1)
    code = f"import sys; from {module} import {func}; sys.exit({func}())"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, "--config", str(config_file), *args],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"})


def start_central(config_file: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`appliance central` as a real process (see service_process)."""
    return service_process(CENTRAL, config_file, log, *args)


class RealServices:
    """`appliance central` and `appliance sync` as real processes (real_services)."""

    def __init__(self, folder: Path, config_file: Path) -> None:
        self.logs = {name: folder / f"{name}.log" for name in ("central", "sync")}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, entry in (("central", CENTRAL), ("sync", SYNC)):
            self.procs[name] = service_process(entry, config_file, self.logs[name])

    def assert_running(self) -> None:
        """Both still running; a service that exited fails with its log."""
        for name, proc in self.procs.items():
            assert proc.poll() is None, self.logs[name].read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_process(proc, timeout=15)


@contextlib.contextmanager
def real_services(folder: Path, config: config_mod.Config) -> Iterator[RealServices]:
    """The receiver and the device's sync as the real processes systemd starts, on
    `config` (written as folder/appliance.toml), logs in folder/<name>.log, stopped by
    PID (SIGTERM, then SIGKILL) whatever happens."""
    services = RealServices(folder, write_config_file(folder, config))
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture
def services() -> Iterator[Callable[[Callable[..., None], config_mod.Config], Service]]:
    started: list[Service] = []

    def start(target: Callable[..., None], config: config_mod.Config) -> Service:
        s = Service(target, config)
        started.append(s)
        return s

    try:
        yield start
    finally:
        for s in started:
            s.stop_event.set()
        for s in started:
            s.thread.join(15)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def outbox_state(config: config_mod.Config, record_id: str) -> OutboxState | None:
    conn = connect(config.paths.database)
    try:
        return state_of(conn, record_id)
    finally:
        conn.close()


def device_state(config: config_mod.Config, key: str) -> str | None:
    conn = connect(config.paths.database)
    try:
        found = get_state(conn, key)
        return found[0] if found else None
    finally:
        conn.close()


class Attacker:
    """A bare paho client that publishes whatever a test hands it, and sniffs topics.

    It stands for anyone who can reach the broker: without ACLs, that is anyone.
    """

    def __init__(self, port: int, client_id: str = "attacker",
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        """tls: (CA, certificate, key) to connect as a client certificate's owner."""
        self.seen: list[tuple[str, bytes]] = []
        self.granted: list[list[mqtt.ReasonCode]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.seen.append((m.topic, m.payload))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.granted.append(codes)
        if tls is not None:
            self.client.tls_set(ca_certs=str(tls[0]), certfile=str(tls[1]),
                                keyfile=str(tls[2]))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"broker did not take a message on {topic}"

    def sniff(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        time.sleep(0.3)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def probe(publish: Callable[[], None], count: Callable[[], int], what: str) -> int:
    """Publish junk until the consumer has set one aside (so it is subscribed), then
    return the settled count that later assertions add to."""
    deadline = time.monotonic() + 20
    while count() < 1:
        assert time.monotonic() < deadline, f"{what} never subscribed"
        publish()
        end = time.monotonic() + 1.0
        while count() < 1 and time.monotonic() < end:
            time.sleep(0.05)
    time.sleep(0.5)
    return count()


def subscribed_receiver(start: Callable[..., Service], config: config_mod.Config,
                        attacker: Attacker) -> Service:
    """A receiver thread whose subscription is known to be active."""
    from appliance.central.receiver import run_receiver

    receiver = start(run_receiver, config)
    probe_receiver(attacker, config, "the receiver")
    return receiver


def central_read(config: config_mod.Config, read: Callable[[Any], T], default: T) -> T:
    """`read(conn)` on the central database opened as the receiver opens it (SQLite or
    PostgreSQL); `default` while it cannot be opened or read (being created, or its
    connection cut right now)."""
    from appliance.central.db import open_configured

    try:
        conn = open_configured(config.central)
    except Exception:  # noqa: BLE001 - polled until it can
        return default
    try:
        return read(conn)
    except Exception:  # noqa: BLE001 - polled until it can
        return default
    finally:
        conn.close()


def central_dead_letters(config: config_mod.Config) -> int:
    """What the central receiver has set aside; 0 while its database is not there."""
    if config.central.postgres_dsn:
        return central_read(config, lambda conn: conn.counter("dead_letters"), 0)
    if not Path(config.central.database).exists():
        return 0
    return central_store.read_counters(config.central.database).get("dead_letters", 0)


def probe_receiver(attacker: Attacker, config: config_mod.Config,
                   what: str = "central") -> int:
    """Junk on a probe device's records topic until the receiver(s) of `config` set
    one aside (see probe): they are subscribed."""
    return probe(lambda: attacker.publish("bhxh/devices/probe-1/records", b"["),
                 lambda: central_dead_letters(config), what)


def write_config_file(folder: Path, config: config_mod.Config) -> Path:
    """`config` as folder/appliance.toml, for a service started as a process."""
    path = folder / "appliance.toml"
    path.write_text(config_mod.dump(config), encoding="utf-8")
    return path


def enqueue(config: config_mod.Config, count: int = 1,
            pdf_sizes: tuple[int, ...] = (5000,)) -> list[TestRecord]:
    """Genuine signed records in the device's outbox, made through the product."""
    conn = connect(config.paths.database)
    try:
        return [add_record(conn, config.paths.files, device_id=config.device.id,
                           pdf_sizes=pdf_sizes) for _ in range(count)]
    finally:
        conn.close()


def all_delivered(config: config_mod.Config, recs: list[TestRecord]) -> bool:
    return all(outbox_state(config, r.record_id) is OutboxState.DELIVERED for r in recs)


def assert_exactly_once(config: config_mod.Config, recs: list[TestRecord]) -> None:
    """Each genuine record is served by the receiver once, byte-identical, files included,
    and is delivered on the device."""
    served = central_store.list_records(config.central.database)
    files = FileStore(config.paths.files)
    for rec in recs:
        got = [r for r in served if r["record_id"] == rec.record_id
               and r["device_id"] == config.device.id]
        assert len(got) == 1, (rec.record_id, got)
        assert got[0]["sha256"] == rec.sha256
        assert got[0]["body_json"] == rec.body_json
        assert got[0]["files"] == rec.file_shas
        for sha in rec.file_shas:
            assert central_store.get_file(config.central.database, sha) == files.read(sha, ".pdf")
        assert outbox_state(config, rec.record_id) is OutboxState.DELIVERED


def assert_exactly_once_everywhere(config: config_mod.Config,
                                   recs: list[TestRecord]) -> None:
    """On either central engine (opened as the receiver opens it): one row per record
    and no other row (no held copy, no duplicate), body and files byte-identical, and
    every delivered outbox row backed by exactly those bytes at the central."""
    from appliance.central.db import open_configured

    conn = open_configured(config.central)
    try:
        # every row, whatever device it names: the test's records are all there is
        rows = conn.execute("SELECT device_id, record_id, sha256, status FROM records"
                            ).fetchall()
        assert len(rows) == len(recs), f"{len(rows)} rows for {len(recs)} records"
        assert all(r["status"] == "served" for r in rows)
        served = {r["record_id"]: r for r in central_store.list_records(conn)}
        files = FileStore(config.paths.files)
        for rec in recs:
            got = served[rec.record_id]
            assert got["sha256"] == rec.sha256 and got["body_json"] == rec.body_json
            for sha in rec.file_shas:
                assert central_store.get_file(conn, sha) == files.read(sha, ".pdf")
        device = connect(config.paths.database)
        try:
            delivered = device.execute(
                "SELECT r.record_id, r.sha256 FROM outbox o JOIN records r USING (record_id) "
                "WHERE o.state='delivered'").fetchall()
        finally:
            device.close()
        assert len(delivered) == len(recs)
        for row in delivered:
            assert served[row["record_id"]]["sha256"] == row["sha256"]
    finally:
        conn.close()


def assert_no_false_delivery(config: config_mod.Config) -> None:
    """No outbox row is 'delivered' unless the receiver holds exactly its bytes."""
    conn = connect(config.paths.database)
    try:
        rows = conn.execute("SELECT r.record_id, r.sha256 FROM outbox o JOIN records r "
                            "USING (record_id) WHERE o.state='delivered'").fetchall()
    finally:
        conn.close()
    held = {(r["record_id"], r["sha256"])
            for r in central_store.list_records(config.central.database)
            + central_store.list_held(config.central.database)
            if r["device_id"] == config.device.id}
    for row in rows:
        assert (row["record_id"], row["sha256"]) in held, dict(row)


def device_dead_letters(config: config_mod.Config) -> dict[str, int]:
    conn = connect(config.paths.database)
    try:
        return dead_letter_counts(conn)
    finally:
        conn.close()


def central_counters(config: config_mod.Config) -> dict[str, int]:
    return central_store.read_counters(config.central.database)


__all__ = [
    "Attacker", "Brokers", "Service", "ack_keys", "all_delivered", "assert_exactly_once",
    "assert_no_false_delivery", "central_counters", "central_dead_letters", "central_read",
    "device_dead_letters", "device_state", "enqueue", "free_port", "make_config",
    "outbox_state", "probe", "probe_receiver", "service_process", "start_central",
    "subscribed_receiver", "wait_for", "write_config_file",
]
