"""Device-wide facts the processes share by name: which key, and which values it takes.

The worker writes the scanner and OCR states and its heartbeat, the sync service its
link state; the web and `appliance status` read them. Naming keys and values here, in
the layer that stores them, means a writer and a reader cannot drift apart over a
typo. The stored strings are the enum values, unchanged from before the enums existed,
so a database written by an older build reads the same.

An error is never packed into a state value: the scanner's state is `error` and the
message key of the fault sits under its own key, `scanner.error`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from enum import StrEnum
from typing import Any

from appliance.store.db import get_state, set_state


class StateKey(StrEnum):
    SCANNER = "scanner.state"
    SCANNER_ERROR = "scanner.error"  # message key of the last fault, while SCANNER is error
    OCR = "ocr.state"
    SYNC = "sync.state"
    SYNC_ERROR = "sync.last_error"
    WORKER_HEARTBEAT = "worker.heartbeat"  # Unix seconds of the worker's last sign of life
    # The scanner a technician chose on the panel, as a ScannerIdentity string (it
    # survives a replug); empty: scanner.device from the configuration.
    SCANNER_CHOSEN = "scanner.chosen"
    # What the scanner the worker last opened can do, as JSON (scanner.device's
    # Capabilities.to_dict(): sources, modes, resolutions, largest area, the presets it
    # honours), so the web offers only those presets; absent: nothing known yet.
    SCANNER_CAPABILITIES = "scanner.capabilities"


class ScannerState(StrEnum):
    READY = "ready"
    BUSY = "busy"
    ERROR = "error"


class OcrState(StrEnum):
    READY = "ready"
    UNAVAILABLE = "unavailable"


class SyncState(StrEnum):
    NO_BROKER = "no_broker"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    # Connected, but the broker refuses this device its ack topic: nothing is sent.
    ACKS_REFUSED = "acks_refused"


# The form /api/status has always shown for a scanner fault ("error:scanner.jammed");
# built only when read, never stored.
SCANNER_ERROR_PREFIX = "error:"


def read(conn: sqlite3.Connection, key: StateKey) -> str | None:
    found = get_state(conn, key)
    return found[0] if found else None


def set_scanner(conn: sqlite3.Connection, state: ScannerState,
                error_key: str | None = None) -> None:
    """The scanner's state and, for ERROR, the fault's message key (cleared otherwise,
    so a stale fault never shows next to a ready scanner)."""
    if state is ScannerState.ERROR and not error_key:
        raise ValueError("a scanner error needs its message key")
    set_state(conn, StateKey.SCANNER_ERROR, error_key if state is ScannerState.ERROR else "")
    set_state(conn, StateKey.SCANNER, state)


def scanner_summary(conn: sqlite3.Connection) -> str | None:
    """The scanner's state as status screens show it: `ready`, `busy` or `error:<key>`.

    A value already in the packed form (written by an older build) passes unchanged.
    """
    state = read(conn, StateKey.SCANNER)
    if state == ScannerState.ERROR:
        return SCANNER_ERROR_PREFIX + (read(conn, StateKey.SCANNER_ERROR) or "scanner.error")
    return state


def set_ocr(conn: sqlite3.Connection, state: OcrState) -> None:
    set_state(conn, StateKey.OCR, state)


def beat(conn: sqlite3.Connection, at: float | None = None) -> None:
    """The worker is alive: the web tells a citizen the worker stalled when this ages."""
    set_state(conn, StateKey.WORKER_HEARTBEAT, str(time.time() if at is None else at))


def heartbeat(conn: sqlite3.Connection) -> float | None:
    """Seconds since the epoch of the worker's last heartbeat; None if never or unreadable."""
    value = read(conn, StateKey.WORKER_HEARTBEAT)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def chosen_scanner(conn: sqlite3.Connection) -> str:
    """The identity the technician chose, or '' (then the configured device is used)."""
    return read(conn, StateKey.SCANNER_CHOSEN) or ""


def choose_scanner(conn: sqlite3.Connection, identity: str) -> None:
    """Remember the scanner the worker opens from now on ('' forgets the choice). The
    capabilities published so far were another scanner's: forgotten until the worker
    opens the chosen one (the kiosk then offers every source, as before any scan)."""
    if chosen_scanner(conn) != identity:
        set_state(conn, StateKey.SCANNER_CAPABILITIES, "")
    set_state(conn, StateKey.SCANNER_CHOSEN, identity)


def set_scanner_capabilities(conn: sqlite3.Connection, capabilities: dict[str, Any]) -> None:
    """Publish what the opened scanner can do; written only when it changed, so a scan
    costs no extra fsync when the same device is opened again."""
    value = json.dumps(capabilities, sort_keys=True, ensure_ascii=False)
    if read(conn, StateKey.SCANNER_CAPABILITIES) != value:
        set_state(conn, StateKey.SCANNER_CAPABILITIES, value)


def scanner_capabilities(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """What the worker last published about its scanner, or None when nothing usable
    is known (never opened, or written by a build with another shape)."""
    raw = read(conn, StateKey.SCANNER_CAPABILITIES)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
