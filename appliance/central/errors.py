"""Errors of the central receiver's own store.

CentralStoreError derives from SyncError, the base the `appliance central` entry
point already reports cleanly, so the central office needs nothing of the device's
``appliance.store`` errors.
"""

from appliance.sync.errors import SyncError, WireError


class CentralStoreError(SyncError):
    """The central database cannot be opened, migrated or written."""


class ChunkRefused(SyncError):
    """A chunk breaks a limit (transfers per device, bytes held, file size): moved aside."""


class StoreDataError(WireError):
    """The database refused a value this message carries (PostgreSQL text cannot hold
    NUL, a concurrent receiver's row won a unique index): it is about the message, not
    the disk, so the receiver moves it aside like any unreadable message (a genuine
    record comes again when the device re-sends it)."""


class DecisionRefused(SyncError):
    """An operator's decision names no conflict, or a content not held under the id."""
