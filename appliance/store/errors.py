"""Errors of the storage layer."""

import errno
import sqlite3


class StoreError(Exception):
    """The database or the file store cannot be used; the text says which and why."""


class DiskFull(StoreError):
    """No space left: nothing was written, the caller must tell the user and stop taking input."""


# SQLite's "database or disk is full" (SQLITE_FULL), as sqlite3 reports it.
_SQLITE_FULL = 13


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` means the data disk is full, whichever layer noticed: the file
    store (DiskFull), an OS write (ENOSPC, EDQUOT) or SQLite (SQLITE_FULL). The long
    running services wait and retry on these instead of exiting: a restart every few
    seconds frees no space and, under systemd, only adds noise and risk."""
    if isinstance(error, DiskFull):
        return True
    if isinstance(error, StoreError) and error.__cause__ is not None:
        return is_disk_full(error.__cause__)  # "cannot open database ...: disk is full"
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return (isinstance(code, int) and code & 0xFF == _SQLITE_FULL) or \
            "disk is full" in str(error)
    return False
