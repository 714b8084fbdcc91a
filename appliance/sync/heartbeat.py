"""The device's status heartbeat: `appliance doctor`'s verdicts, sent to the central office.

Why: the central office watches many appliances it cannot walk up to. Every
``STATUS_INTERVAL_SECONDS`` sync publishes, retained, on
``{prefix}/devices/{device_id}/status`` the same ``doctor.Check`` records the CLI
prints and the technician panel shows (``doctor.local_checks``): name, ok/warn/fail/
skip, a short summary and the next step. A monitor subscribing late still gets the
last one (retained), and its ``at`` tells how fresh it is.

Two rules keep it harmless to delivery: the checks are looked at in a thread of their
own (``systemctl``/``timedatectl`` may be slow), never in the network loop, and only
the local ones run (no scanner listing, no second broker connection); the broker line
is what sync knows (this message came through it), the database and models lines are
the last ``appliance doctor`` round's with its time, the scanner's that or the worker's
state from its last use of the scanner, whichever is newer.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

from appliance.store import outbox
from appliance.system import doctor
from appliance.system.config import Config

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

STATUS_INTERVAL_SECONDS = 60.0
STATUS_VERSION = 1


def status_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/devices/{device_id}/status"


def status_message(config: Config, checks: list[doctor.Check], at: float,
                   dead_letters: dict[str, int] | None = None) -> bytes:
    """The heartbeat's JSON: who, when, the worst verdict, every check, and the messages
    sync set aside by kind ({"total": n, ...}: none is normal; the central office sees
    here a device that is being sent junk or forged acks)."""
    return json.dumps({"v": STATUS_VERSION, "device_id": config.device.id, "at": at,
                       "verdict": doctor.worst(checks).value,
                       "checks": [c.to_dict() for c in checks],
                       "dead_letters": dead_letters or {"total": 0}},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def dead_letter_counts(config: Config) -> dict[str, int]:
    """The device's dead-letter counters, read-only (the heartbeat runs beside sync's
    own writes; WAL readers do not block them)."""
    path = config.paths.database
    if not path.exists():
        return {"total": 0}
    conn = doctor.open_read_only(path)
    conn.row_factory = sqlite3.Row
    try:
        return outbox.dead_letter_counts(conn) or {"total": 0}
    finally:
        conn.close()


class Heartbeat:
    """Called from sync's network loop (``tick``); the checks run in a thread."""

    def __init__(self, config: Config, interval: float = STATUS_INTERVAL_SECONDS) -> None:
        self.config = config
        self.interval = interval
        self.topic = status_topic(config.mqtt.topic_prefix, config.device.id)
        self.provisioned = doctor.config_path_of(None).parent / doctor.PROVISION_CERT
        self.next_at = 0.0
        self.ready: bytes | None = None
        self.lock = threading.Lock()
        self.worker: threading.Thread | None = None

    def look(self) -> None:
        m = self.config.mqtt
        broker = doctor.Check("broker", doctor.Verdict.OK,
                              f"{m.host}:{m.port} connected (this status came through it)",
                              summary_msg=doctor.msg("tech.doctor.summary.broker.connected",
                                                     address=f"{m.host}:{m.port}"))
        try:
            checks = doctor.local_checks(self.config, self.provisioned, {"broker": broker})
            payload = status_message(self.config, checks, time.time(),
                                     dead_letter_counts(self.config))
        except Exception:  # noqa: BLE001 - a heartbeat bug must not stop delivery
            log.exception("status heartbeat: the checks failed")
            return
        with self.lock:
            self.ready = payload

    def tick(self, client: mqtt.Client) -> None:
        """Publish a finished round; start the next one when due. Never blocks."""
        with self.lock:
            payload, self.ready = self.ready, None
        if payload is not None:
            client.publish(self.topic, payload, qos=1, retain=True)
        now = time.monotonic()
        if now >= self.next_at and (self.worker is None or not self.worker.is_alive()):
            self.next_at = now + self.interval
            self.worker = threading.Thread(target=self.look, name="status-heartbeat",
                                           daemon=True)
            self.worker.start()
