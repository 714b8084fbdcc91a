"""Dossier codes and digitization result codes.

Dossier code (Circular 01/2018/TT-VPCP Art. 19): <agency code>-<YYMMDD>-<NNNN>.
The sequence must never repeat for an agency and day, across reboots and across
the kiosks of one office: it is kept in SQLite (committed with the dossier) and each
device draws from its own configured slice of 1..9999.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from zoneinfo import ZoneInfo

from appliance.records.errors import SequenceExhausted
from appliance.system.config import CodesConfig, DeviceConfig

# Receipt dates are Vietnamese calendar days, whatever the device clock's zone.
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def receipt_day(at: float) -> datetime:
    return datetime.fromtimestamp(at, VIETNAM)


def next_dossier_code(
    conn: sqlite3.Connection, device: DeviceConfig, codes: CodesConfig, at: float
) -> str:
    """Draw the next code; must run inside the caller's write transaction."""
    day = receipt_day(at).strftime("%y%m%d")
    row = conn.execute(
        "SELECT last FROM code_sequences WHERE agency_code=? AND day=?",
        (device.agency_code, day),
    ).fetchone()
    seq = device.sequence_first if row is None else max(row["last"] + 1, device.sequence_first)
    if seq > device.sequence_last:
        raise SequenceExhausted(
            f"dossier sequence for {device.agency_code} on {day} used up "
            f"({device.sequence_first}-{device.sequence_last})"
        )
    conn.execute(
        "INSERT INTO code_sequences(agency_code, day, last) VALUES (?, ?, ?) "
        "ON CONFLICT(agency_code, day) DO UPDATE SET last=excluded.last",
        (device.agency_code, day, seq),
    )
    return codes.dossier.format(agency=device.agency_code, yymmdd=day, seq=seq)


def result_code(codes: CodesConfig, dossier_code: str, ordinal: int) -> str:
    """The digitization result code of one paper (structure unconfirmed: a template)."""
    return codes.result.format(dossier_code=dossier_code, ordinal=ordinal)
