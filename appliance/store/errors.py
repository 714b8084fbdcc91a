"""Errors of the storage layer."""


class StoreError(Exception):
    """The database or the file store cannot be used; the text says which and why."""


class DiskFull(StoreError):
    """No space left: nothing was written, the caller must tell the user and stop taking input."""
