"""One MQTT connection, driven from the caller's own thread.

Both services call `client.loop()` themselves instead of paho's background thread:
callbacks then run in the thread that owns the SQLite connection, so the outbox is
never touched from two threads, and a database error raised in a callback propagates
out of `loop()` before paho sends the PUBACK (the broker keeps the message).

A fresh paho client is made for every connection attempt: paho's in-memory queue dies
with the process anyway, and resending from the outbox is the only retry that counts.
The session itself (clean_start=False with an expiry) lives on the broker, so acks
published while a device was offline still reach it when the broker kept them.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt import properties as paho_properties
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.sync.errors import BrokerUnavailable
from appliance.system.config import MqttConfig
from appliance.system.notify import pause

log = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
CONNACK_TIMEOUT_SECONDS = 10.0
# QoS 1 messages sent and not yet PUBACKed, at most (paho's default is 20): a window
# this deep keeps the link busy while the broker answers; the publisher also bounds
# the bytes they hold (sync/publisher.py).
MAX_INFLIGHT = 1000
# How often a subscription the broker refused (its SUBACK) is asked for again: the ACL
# being fixed and reloaded at the central office. A SUBSCRIBE costs the broker nothing.
SUBSCRIBE_RETRY_SECONDS = 30.0


def read_property_text(buffer: bytes | bytearray, maxlen: int) -> tuple[str, int]:
    """A UTF-8 string of an MQTT v5 property, and the bytes it took: paho's own reader,
    except that U+FEFF is kept.

    Why: MQTT 5.0 (1.5.4) says U+FEFF "MUST NOT be skipped over or stripped off by a
    packet receiver", and mosquitto forwards it in a user property, a content type or a
    response topic. paho refused it as a malformed packet, before any callback, and
    dropped the connection: the message was never set aside nor PUBACKed, so the
    broker sent it again first at every reconnect, and one publish by anyone allowed
    on a topic a service reads cut that service off for good (red team 15). What the
    standard does forbid (a string that is not UTF-8, encoded surrogates, U+0000, a
    length past the properties) is still a malformed packet. Installed in place of
    paho.mqtt.properties.readUTF when this module loads: Properties.unpack, which
    paho calls for every packet, looks it up there.
    """
    if maxlen < 2 or len(buffer) < 2:
        raise MalformedPacket("Not enough data to read string length")
    length = int.from_bytes(buffer[:2], "big")
    if length > maxlen - 2 or length > len(buffer) - 2:
        raise MalformedPacket("Length delimited string too long")
    try:
        # Python's decoder refuses encoded surrogates (D800-DFFF) as MQTT-1.5.4-1 does.
        text = bytes(buffer[2:2 + length]).decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedPacket(f"[MQTT-1.5.4-1] string property is not UTF-8: {e}") from e
    if "\0" in text:
        raise MalformedPacket("[MQTT-1.5.4-2] Null found in UTF-8 data")
    return text, length + 2


paho_properties.readUTF = read_property_text  # type: ignore[assignment]


def make_client(cfg: MqttConfig, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho client for MQTT v5 with QoS-1 flow control and, if configured, mutual TLS.

    manual_ack: the caller sends each PUBACK itself (client.ack) once what the message
    carries is committed; the receiver uses it for group commit.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    client.max_inflight_messages_set(MAX_INFLIGHT)
    if cfg.tls:
        try:
            client.tls_set(
                ca_certs=cfg.ca_file or None,
                certfile=cfg.cert_file or None,
                keyfile=cfg.key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError, ValueError) as e:
            raise BrokerUnavailable(f"cannot load TLS files: {e}") from e
    return client


def open_session(
    client: mqtt.Client,
    cfg: MqttConfig,
    is_connected: Callable[[], bool],
    refused: Callable[[], str | None],
    *,
    max_packet: int,
    receive_maximum: int | None = None,
    session_expiry: int = SESSION_EXPIRY_SECONDS,
) -> None:
    """Connect with a persistent session and pump the loop until CONNACK.

    `is_connected` and `refused` read what the caller's on_connect saw; a refusal,
    a socket or TLS error, or no CONNACK in time raises BrokerUnavailable.
    max_packet: the largest packet the broker may send us (MQTT v5 Maximum Packet
    Size); it discards a larger message for this client as if sent. Why: paho reads a
    whole packet into memory before any check of ours, about three times its size at
    the peak: a broker at its defaults (MQTT's own limit, 256 MB) forwarded a message
    that made the kernel kill a service under its MemoryMax, and sent it again at
    every restart. Not just above the largest message we read, though: mosquitto (up
    to 2.0.18 at least) keeps the in-flight slot of each message it discards for this
    limit, so 100 messages just over it froze a device's acks for as long as its
    connection lasted (red team 17). Far above every message a broker configured as
    provisioning/mosquitto-broker.conf lets through (1.1 MB), below what the
    service's MemoryMax survives.
    receive_maximum: QoS 1 messages the broker may send before their PUBACKs (MQTT v5
    Receive Maximum); unset, the broker's own limit (mosquitto: max_inflight_messages).
    session_expiry: seconds the broker keeps the session after the connection is gone
    (0: it ends with the connection).
    """
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry
    props.MaximumPacketSize = max_packet
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive, clean_start=False,
                       properties=props)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise BrokerUnavailable(f"cannot connect to {cfg.host}:{cfg.port}: {e}") from e
    _no_delay(client)
    deadline = time.monotonic() + CONNACK_TIMEOUT_SECONDS
    while not is_connected():
        reason = refused()
        if reason:
            close(client)
            raise BrokerUnavailable(f"broker {cfg.host}:{cfg.port} refused: {reason}")
        if time.monotonic() > deadline:
            close(client)
            raise BrokerUnavailable(f"no CONNACK from {cfg.host}:{cfg.port}")
        rc = client.loop(timeout=0.1)
        if rc != mqtt.MQTT_ERR_SUCCESS and not is_connected():
            reason = refused()
            close(client)
            hint = " (TLS client certificate refused?)" if cfg.tls else ""
            raise BrokerUnavailable(
                f"connection to {cfg.host}:{cfg.port} closed before CONNACK{hint}: "
                f"{reason or mqtt.error_string(rc)}"
            )


def _no_delay(client: mqtt.Client) -> None:
    """Send small packets at once (paho leaves Nagle's algorithm on).

    An ack or a record message is a few hundred bytes that the other side waits for;
    with Nagle on, each waits for the peer's delayed TCP ACK, 40 ms on Linux, which
    capped a window of 8 records at about 100 records/s.
    """
    sock = client.socket()
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as e:
        log.debug("TCP_NODELAY not set: %s", e)


RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0


class Reconnector:
    """Connection attempts with doubling back-off, shared by the device and the receiver.

    While it waits it keeps feeding the watchdog (via `pause`), so an unreachable broker
    never makes systemd restart a healthy service.
    """

    def __init__(self, stop: threading.Event, notify: Callable[[str], None]) -> None:
        self.stop = stop
        self.notify = notify
        self.delay = RECONNECT_MIN_SECONDS

    def attempt(self, connect: Callable[[], None],
                on_failure: Callable[[BrokerUnavailable], None] | None = None) -> bool:
        try:
            connect()
        except BrokerUnavailable as e:
            log.warning("%s; retrying in %.1f s", e, self.delay)
            if on_failure is not None:
                on_failure(e)
            pause(self.stop, self.delay, self.notify)
            self.delay = min(self.delay * 2, RECONNECT_MAX_SECONDS)
            return False
        self.delay = RECONNECT_MIN_SECONDS
        return True


def close(client: mqtt.Client) -> None:
    """Disconnect politely if still connected, then make sure the socket is closed.

    The client object is dropped afterwards, so its socket must not wait for the
    garbage collector (a kiosk reconnecting for days would leak descriptors).
    """
    try:
        if client.is_connected():
            client.disconnect()
            client.loop(timeout=0.05)
        sock = client.socket()
        if sock is not None:
            sock.close()
    except (OSError, ValueError) as e:
        log.debug("closing MQTT client: %s", e)
