"""One MQTT connection attempt for a technician: does the broker take this device?

The sync service retries for ever and logs in English; a technician at the counter
needs one answer now: connected in so many milliseconds, or which of the things that
can go wrong did (no broker configured, name not found, port closed, no answer, TLS
files unreadable, certificate refused, credentials refused), as a message key the
technician panel translates, with the next step. It connects exactly as the sync
service does (`client.make_client` with the configured TLS files) but with a clean,
non-persistent session and its own client id, so probing never takes over or
disturbs the sync service's session on the broker.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import asdict, dataclass
from typing import Any

import paho.mqtt.client as mqtt

from appliance.sync.client import close, make_client
from appliance.sync.errors import PROBE_OK, BrokerUnavailable, ProbeFailure
from appliance.system.config import MqttConfig


@dataclass(frozen=True)
class ProbeResult:
    """What a probe found: `ok` and the connect time, or the failure key and the raw
    detail (English, for the log and for a technician who reads it to support)."""

    ok: bool
    host: str
    port: int
    tls: bool
    seconds: float
    key: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _refusal_key(reason: str) -> ProbeFailure:
    text = reason.lower()
    if "not authori" in text or "bad user" in text or "banned" in text:
        return ProbeFailure.NOT_AUTHORISED
    return ProbeFailure.BROKER_REFUSED


def probe(cfg: MqttConfig, client_id: str, timeout: float = 5.0) -> ProbeResult:
    """Connect, wait for CONNACK, disconnect; never raises for a broker problem."""
    started = time.perf_counter()

    def result(key: str, detail: str = "") -> ProbeResult:
        return ProbeResult(key == PROBE_OK, cfg.host, cfg.port, cfg.tls,
                           round(time.perf_counter() - started, 4), str(key), detail)

    if not cfg.host:
        return result(ProbeFailure.NO_BROKER, "mqtt.host is empty")
    try:
        client = make_client(cfg, client_id)
    except BrokerUnavailable as e:
        return result(ProbeFailure.TLS_FILES, str(e))
    answer: dict[str, str] = {}

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        answer["reason"] = "" if not reason.is_failure else str(reason)
        answer["done"] = "1"

    client.on_connect = on_connect
    client.connect_timeout = timeout
    try:
        client.connect(cfg.host, cfg.port, keepalive=max(cfg.keepalive, 5),
                       clean_start=True)
    except socket.gaierror as e:
        return result(ProbeFailure.DNS, f"{cfg.host}: {e}")
    except ConnectionRefusedError as e:
        return result(ProbeFailure.REFUSED, f"{cfg.host}:{cfg.port}: {e}")
    except TimeoutError as e:
        return result(ProbeFailure.TIMEOUT, f"{cfg.host}:{cfg.port}: {e}")
    except ssl.SSLError as e:
        return result(ProbeFailure.TLS, f"{cfg.host}:{cfg.port}: {e.reason or e}")
    except ConnectionResetError as e:
        # Reset during the TLS handshake: the broker does not speak TLS on this port,
        # or refused this device's certificate.
        key = ProbeFailure.TLS if cfg.tls else ProbeFailure.NETWORK
        return result(key, f"{cfg.host}:{cfg.port}: {e}")
    except (OSError, ValueError) as e:
        return result(ProbeFailure.NETWORK, f"{cfg.host}:{cfg.port}: {e}")
    try:
        deadline = time.monotonic() + timeout
        while "done" not in answer:
            if time.monotonic() > deadline:
                return result(ProbeFailure.TIMEOUT, f"no CONNACK within {timeout:.0f} s")
            rc = client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS and "done" not in answer:
                # The broker closed the link before answering: with TLS that is the
                # client certificate refused, otherwise the broker dropped us.
                key = ProbeFailure.TLS if cfg.tls else ProbeFailure.BROKER_REFUSED
                return result(key, f"closed before CONNACK: {mqtt.error_string(rc)}")
        if answer["reason"]:
            return result(_refusal_key(answer["reason"]), answer["reason"])
        return result(PROBE_OK)
    except ssl.SSLError as e:
        return result(ProbeFailure.TLS, str(e.reason or e))
    except OSError as e:
        return result(ProbeFailure.NETWORK, str(e))
    finally:
        close(client)
