"""Errors of the web layer and the HTTP status each error key maps to.

Every failure a screen or the API reports is a message key plus a status: the key is
translated for the person in front of the screen, the status tells a program what
kind of mistake it made. Nothing below ever carries a stack trace to a client.
"""

from __future__ import annotations

from appliance.records.errors import (
    DossierNotFound,
    InvalidState,
    NothingScanned,
    RecordsError,
    SequenceExhausted,
    UnknownProcedure,
)
from appliance.store.errors import DiskFull, StoreError


class WebError(Exception):
    """A request the appliance refuses; `key` is translated, `status` is the HTTP code."""

    def __init__(self, key: str, status: int, detail: str = "") -> None:
        super().__init__(detail or key)
        self.key = key
        self.status = status


_RECORDS_STATUS: tuple[tuple[type[RecordsError], int], ...] = (
    (DossierNotFound, 404),
    (UnknownProcedure, 400),
    (InvalidState, 409),
    (NothingScanned, 409),
    (SequenceExhausted, 503),
)


def from_records(error: RecordsError) -> WebError:
    status = next((code for cls, code in _RECORDS_STATUS if isinstance(error, cls)), 400)
    return WebError(error.key, status, str(error))


def from_store(error: StoreError) -> WebError:
    if isinstance(error, DiskFull):
        return WebError("error.disk_full", 507, str(error))
    return WebError("error.storage", 503, str(error))
