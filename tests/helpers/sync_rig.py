"""Sync test fixtures: a real mosquitto, device and central configs, services in threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store.db import connect, get_state
from appliance.store.outbox import OutboxState, state_of
from appliance.sync import acksig
from appliance.system import config as config_mod
from tests.helpers.mosquitto import MosquittoProcess, free_port, start_mosquitto


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

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "service did not stop within 15 s"
        if self.error is not None:
            raise self.error


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


__all__ = ["Brokers", "Service", "ack_keys", "device_state", "free_port", "make_config",
           "outbox_state", "wait_for"]
