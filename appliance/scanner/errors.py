"""Scanner faults as typed errors with a message key.

The kiosk shows `error.key` translated (Vietnamese first), never SANE's English
text or a stack trace; the worker decides by type what to do (a jam keeps the pages
already stored and asks the officer to clear the feeder; a busy device is retried).
python-sane raises `_sane.error` carrying only `sane_strstatus()` text, so the
mapping back to a status goes through those fixed English strings (SANE marks them
for translation but never translates them itself).
"""

from __future__ import annotations


class ScannerError(Exception):
    """Base of every scanner fault; `key` is the message key the kiosk translates.

    `reopen` says whether the handle is worth dropping and the device looked up
    again (a replug, a network scanner that restarted): true for I/O-level faults,
    false for paper faults, where the same handle works once the officer acts.
    """

    key: str = "scanner.error"
    reopen: bool = False

    def __init__(self, message: str = "", *, device: str = "", pages_done: int = 0) -> None:
        super().__init__(message or self.key)
        self.device = device
        # How many pages of the current batch had been handed over before the fault,
        # so the kiosk can say "6 pages kept, clear the jam and continue".
        self.pages_done = pages_done


class ScannerJammed(ScannerError):
    key = "scanner.jammed"


class ScannerNoDocuments(ScannerError):
    key = "scanner.no_documents"


class ScannerCoverOpen(ScannerError):
    key = "scanner.cover_open"


class ScannerBusy(ScannerError):
    key = "scanner.busy"


class ScannerIOError(ScannerError):
    key = "scanner.io_error"
    reopen = True


class ScannerGone(ScannerIOError):
    """The device was there and is no longer: unplugged, powered off, or a network
    scanner that stopped answering (its SANE name may still be listed: airscan lists
    configured devices whether or not they answer)."""

    key = "scanner.gone"


class ScannerTimeout(ScannerIOError):
    """A read gave no data within its deadline and was abandoned (cancelled; the
    handle is not reused, since the backend may still be inside sane_read)."""

    key = "scanner.timeout"


class ScannerBadPage(ScannerIOError):
    """The device returned an image of impossible size (none, or far larger than the
    area asked for): never stored as a page, because page count must be exact."""

    key = "scanner.bad_page"


class ScannerNotFound(ScannerError):
    key = "scanner.not_found"
    reopen = True


class ScannerCancelled(ScannerError):
    key = "scanner.cancelled"


class ScannerAccessDenied(ScannerError):
    key = "scanner.access_denied"


class ScannerNoMemory(ScannerError):
    key = "scanner.no_memory"


class ScannerUnsupported(ScannerError):
    key = "scanner.unsupported"


class ScannerInvalid(ScannerError):
    key = "scanner.invalid"


# sane_strstatus() texts (sanei/sane_strstatus.c) -> error class. Both spellings of
# "cancelled" occur across SANE releases.
_BY_SANE_TEXT: dict[str, type[ScannerError]] = {
    "operation not supported": ScannerUnsupported,
    "operation was cancelled": ScannerCancelled,
    "operation was canceled": ScannerCancelled,
    "device busy": ScannerBusy,
    "invalid argument": ScannerInvalid,
    "document feeder jammed": ScannerJammed,
    "document feeder out of documents": ScannerNoDocuments,
    "scanner cover is open": ScannerCoverOpen,
    "error during device i/o": ScannerIOError,
    "out of memory": ScannerNoMemory,
    "access to resource has been denied": ScannerAccessDenied,
}

# SANE_Status names (as the `test` backend's read-return-value option spells them)
# -> error class: what each status becomes when a read returns it.
BY_SANE_STATUS: dict[str, type[ScannerError]] = {
    "SANE_STATUS_UNSUPPORTED": ScannerUnsupported,
    "SANE_STATUS_CANCELLED": ScannerCancelled,
    "SANE_STATUS_DEVICE_BUSY": ScannerBusy,
    "SANE_STATUS_INVAL": ScannerInvalid,
    "SANE_STATUS_JAMMED": ScannerJammed,
    "SANE_STATUS_NO_DOCS": ScannerNoDocuments,
    "SANE_STATUS_COVER_OPEN": ScannerCoverOpen,
    "SANE_STATUS_IO_ERROR": ScannerIOError,
    "SANE_STATUS_NO_MEM": ScannerNoMemory,
    "SANE_STATUS_ACCESS_DENIED": ScannerAccessDenied,
}

ALL_KEYS: tuple[str, ...] = tuple(
    sorted({cls.key for cls in _BY_SANE_TEXT.values()}
           | {c.key for c in (ScannerNotFound, ScannerError, ScannerGone, ScannerTimeout,
                              ScannerBadPage)})
)


def error_class_for(sane_text: str) -> type[ScannerError]:
    """The error class for a SANE status text; unknown texts count as I/O errors,
    the status a kiosk can always offer "try again" for."""
    return _BY_SANE_TEXT.get(sane_text.strip().rstrip(".").lower(), ScannerIOError)


def wrap_sane_error(exc: BaseException, *, device: str = "", pages_done: int = 0,
                    context: str = "") -> ScannerError:
    """A typed error for a third-party exception; the caller raises it `from exc`."""
    text = str(exc)
    cls = error_class_for(text)
    where = f"{device}: " if device else ""
    what = f"{context}: " if context else ""
    return cls(f"{where}{what}{text}", device=device, pages_done=pages_done)
