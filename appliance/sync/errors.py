"""Errors of the sync layer; paho and socket errors are wrapped here at the boundary."""

from enum import StrEnum


class SyncError(Exception):
    """Base of every sync failure; the text says what and why, in English."""


class WireError(SyncError):
    """A payload does not follow the wire format (malformed, wrong version, bad field)."""


class BrokerUnavailable(SyncError):
    """The broker could not be reached or refused the connection; retried with back-off."""


class LocalFileError(SyncError):
    """A file a record names is missing or corrupt on the device; the record cannot be sent."""


class ProbeFailure(StrEnum):
    """Why a technician's broker test (sync/probe.py) failed; each value is a message
    key translated with what to do next."""

    NO_BROKER = "sync.probe.no_broker"
    DNS = "sync.probe.dns"
    REFUSED = "sync.probe.refused"
    TIMEOUT = "sync.probe.timeout"
    TLS_FILES = "sync.probe.tls_files"
    TLS = "sync.probe.tls"
    NOT_AUTHORISED = "sync.probe.not_authorised"
    BROKER_REFUSED = "sync.probe.broker_refused"
    NETWORK = "sync.probe.network"


PROBE_OK = "sync.probe.ok"
MESSAGE_KEYS: tuple[str, ...] = (PROBE_OK, *(str(k) for k in ProbeFailure))
