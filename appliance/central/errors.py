"""Errors of the central receiver's own store.

CentralStoreError derives from SyncError, the base the `appliance central` entry
point already reports cleanly, so the central office needs nothing of the device's
``appliance.store`` errors.
"""

from appliance.sync.errors import SyncError


class CentralStoreError(SyncError):
    """The central database cannot be opened, migrated or written."""


class ChunkRefused(SyncError):
    """A chunk breaks a limit (transfers per device, bytes held, file size): moved aside."""
