"""Device state by name: a scanner fault keeps its key apart, status shows the old form."""

from __future__ import annotations

import pytest

from appliance import status
from appliance.store import state
from appliance.store.db import connect, get_state, set_state
from appliance.store.state import ScannerState, StateKey
from appliance.system.config import Config, with_overrides


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "device.sqlite3")
    yield c
    c.close()


def test_a_scanner_fault_is_not_packed_into_the_state(conn, tmp_path):
    state.set_scanner(conn, ScannerState.ERROR, "scanner.jammed")
    assert get_state(conn, "scanner.state")[0] == "error"
    assert get_state(conn, "scanner.error")[0] == "scanner.jammed"
    # what /api/status and the technician screen have always shown
    assert state.scanner_summary(conn) == "error:scanner.jammed"
    config: Config = with_overrides(Config(), paths={"data_dir": str(tmp_path)})
    assert status.snapshot(conn, config)["scanner_state"] == "error:scanner.jammed"
    state.set_scanner(conn, ScannerState.READY)
    assert state.scanner_summary(conn) == "ready"
    assert state.read(conn, StateKey.SCANNER_ERROR) == ""


def test_values_written_by_an_older_build_read_the_same(conn):
    set_state(conn, "scanner.state", "error:scanner.cover_open")
    assert state.scanner_summary(conn) == "error:scanner.cover_open"
    assert state.heartbeat(conn) is None
    set_state(conn, "worker.heartbeat", "not a number")
    assert state.heartbeat(conn) is None
    state.beat(conn, at=1234.5)
    assert state.heartbeat(conn) == 1234.5


def test_an_error_needs_its_key(conn):
    with pytest.raises(ValueError):
        state.set_scanner(conn, ScannerState.ERROR)
