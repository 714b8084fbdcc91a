"""The worker's one error type, and every message key a failed job can carry.

A job's `error_key` is shown to the citizen, translated; `MESSAGE_KEYS` lists all of
them from the layers that define them (the scanner's faults, the queue's "worker
restarted", the worker's own), so the translation test checks the real list instead
of reading source files.
"""

from __future__ import annotations

from enum import StrEnum

from appliance.scanner.errors import ALL_KEYS as SCANNER_KEYS
from appliance.store.jobs import WORKER_RESTARTED


class FailureKey(StrEnum):
    """Keys the worker itself gives a failed job."""

    GENERIC = "error.generic"
    DISK_FULL = "error.disk_full"
    NO_PAGE = "scanner.no_documents"  # the batch ended before the first page


MESSAGE_KEYS: tuple[str, ...] = tuple(sorted(
    {*(str(k) for k in FailureKey), *SCANNER_KEYS, WORKER_RESTARTED}))


class JobFailed(Exception):
    """A step failed; `key` is what the kiosk shows (translated), the message what the
    log says. Other layers' errors are turned into this at the pipeline's one boundary."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
