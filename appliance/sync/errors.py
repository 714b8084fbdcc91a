"""Errors of the sync layer; paho and socket errors are wrapped here at the boundary."""


class SyncError(Exception):
    """Base of every sync failure; the text says what and why, in English."""


class WireError(SyncError):
    """A payload does not follow the wire format (malformed, wrong version, bad field)."""


class BrokerUnavailable(SyncError):
    """The broker could not be reached or refused the connection; retried with back-off."""


class LocalFileError(SyncError):
    """A file a record names is missing or corrupt on the device; the record cannot be sent."""
