"""`appliance central`: the reference receiver standing in for BHXH's central software.

It subscribes to every device's records topic with a persistent session, stores
chunks and records in its own SQLite, verifies every hash, commits, and only then
publishes the ack that lets a device mark the record delivered. Database work runs
inside paho's on_message, before paho sends the PUBACK, so a message whose commit
failed is not acknowledged to the broker either.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from appliance.central import store as central_store
from appliance.central.store import list_records
from appliance.store.errors import StoreError
from appliance.sync import wire
from appliance.sync.client import Reconnector, close, make_client, open_session, pause
from appliance.sync.errors import BrokerUnavailable, WireError
from appliance.system.config import Config

log = logging.getLogger(__name__)

Notify = Callable[[str], None]

CLIENT_ID = "appliance-central"
LOOP_SECONDS = 0.2
DB_ERROR_PAUSE_SECONDS = 5.0

__all__ = ["CLIENT_ID", "list_records", "run_receiver"]


class _Receiver:
    def __init__(self, config: Config, conn: sqlite3.Connection, stop: threading.Event,
                 notify: Notify, client_id: str) -> None:
        self.cfg = config.mqtt
        self.conn = conn
        self.stop = stop
        self.notify = notify
        self.client_id = client_id
        self.prefix = self.cfg.topic_prefix
        self.client: mqtt.Client | None = None
        self.connected = False
        self.refusal: str | None = None
        self.dropped: str | None = None

    def on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                   reason: mqtt.ReasonCode, props: object) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
            return
        self.connected = True
        # Subscribe even when the session is present: a broker killed before its
        # autosave forgets sessions, and a repeated subscription costs nothing.
        client.subscribe(wire.records_subscription(self.prefix), qos=1)
        log.info("receiver connected to %s:%d (session present: %s)", self.cfg.host,
                 self.cfg.port, flags.session_present)

    def on_disconnect(self, client: mqtt.Client, userdata: object,
                      flags: mqtt.DisconnectFlags, reason: mqtt.ReasonCode,
                      props: object) -> None:
        self.connected = False
        self.dropped = str(reason)

    def on_message(self, client: mqtt.Client, userdata: object,
                   message: mqtt.MQTTMessage) -> None:
        device_id = wire.device_from_topic(self.prefix, message.topic)
        if device_id is None:
            log.warning("ignoring message on unexpected topic %s", message.topic)
            return
        try:
            msg = wire.decode(message.payload)
        except WireError as e:
            log.error("ignoring malformed message from %s: %s", device_id, e)
            return
        if isinstance(msg, wire.Chunk):
            central_store.put_chunk(self.conn, device_id, msg)
        elif isinstance(msg, wire.RecordMessage):
            result = central_store.put_record(self.conn, device_id, msg)
            if result.ack:
                ack = wire.Ack(msg.record_id, msg.sha256, time.time())
                client.publish(wire.acks_topic(self.prefix, device_id), wire.encode_ack(ack),
                               qos=1)
                if result.outcome is central_store.Outcome.DUPLICATE:
                    log.info("record %s from %s already stored; acknowledged again",
                             msg.record_id, device_id)
        else:
            log.warning("ignoring %s message on a records topic", type(msg).__name__)

    def connect(self) -> None:
        self.connected = False
        self.refusal = None
        self.dropped = None
        client = make_client(self.cfg, self.client_id)
        client.on_connect = self.on_connect
        client.on_disconnect = self.on_disconnect
        client.on_message = self.on_message
        open_session(client, self.cfg, lambda: self.connected, lambda: self.refusal)
        self.client = client

    def run(self) -> None:
        self.notify("READY=1")
        reconnect = Reconnector(self.stop, self.notify)
        try:
            while not self.stop.is_set():
                self.notify("WATCHDOG=1")
                if self.client is None:
                    reconnect.attempt(self.connect)
                    continue
                try:
                    rc = self.client.loop(timeout=LOOP_SECONDS)
                except (sqlite3.Error, StoreError) as e:
                    # Raised from on_message before paho sent the PUBACK: the broker
                    # keeps the message and redelivers it once the disk works again.
                    log.error("central database error, dropping the connection: %s", e)
                    close(self.client)
                    self.client = None
                    pause(self.stop, DB_ERROR_PAUSE_SECONDS, self.notify)
                    continue
                if rc != mqtt.MQTT_ERR_SUCCESS or not self.connected:
                    log.warning("receiver lost the broker: %s",
                                self.dropped or mqtt.error_string(rc))
                    close(self.client)
                    self.client = None
        finally:
            if self.client is not None:
                close(self.client)


def run_receiver(config: Config, stop: threading.Event, notify: Notify | None = None, *,
                 client_id: str = CLIENT_ID) -> None:
    """Run until `stop` is set; config.mqtt names the broker, config.central the database."""
    if not config.mqtt.host:
        raise BrokerUnavailable("mqtt.host is empty: the receiver needs a broker")
    conn = central_store.connect(config.central.database)
    try:
        _Receiver(config, conn, stop, notify or (lambda _msg: None), client_id).run()
    finally:
        conn.close()
