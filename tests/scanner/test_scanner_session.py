"""ScannerSession through real libsane: one scanner for the life of a worker."""

from __future__ import annotations

import pytest

from appliance.scanner import device
from appliance.scanner import errors as E
from appliance.scanner.identity import ScannerIdentity
from appliance.scanner.session import ScannerSession

pytestmark = pytest.mark.timeout(60)


def test_first_scanner_is_pinned_by_identity(sane_rig):
    first = device.list_devices()[0]
    with ScannerSession("") as session:
        assert len(list(session.scan("flatbed"))) == 1
        assert session.identity == first.identity
        assert ScannerIdentity.looks_like(session.identity.to_string())


def test_paper_faults_keep_the_handle(sane_rig):
    with ScannerSession(sane_rig.jammer_name) as session:
        with pytest.raises(E.ScannerJammed):
            list(session.scan("adf"))
        handle = session.scanner()
        assert not handle.closed  # a jam is the officer's to clear, not a reconnect
        assert len(list(session.scan("flatbed"))) == 1
        assert session.scanner() is handle and session.reopened == 0


def test_io_error_drops_the_handle_and_the_next_scan_reopens(sane_rig):
    with ScannerSession("test:1", resolution=50) as session:
        session.scanner().set_option("read_return_value", "SANE_STATUS_IO_ERROR")
        try:
            with pytest.raises(E.ScannerIOError) as caught:
                list(session.scan("flatbed"))
            # Still listed and opens again: a hiccup, not a vanished device.
            assert not isinstance(caught.value, E.ScannerGone)
            assert session.reopened == 1
        finally:
            session.scanner().set_option("read_return_value", "Default")
        assert len(list(session.scan("flatbed"))) == 1


def test_unknown_and_unreachable_scanners(sane_rig):
    with ScannerSession("scanner:vendor=Nobody&model=Nothing") as session, \
            pytest.raises(E.ScannerNotFound):
        session.scanner()
    # Never seen answering: an I/O error, not "gone".
    with ScannerSession(sane_rig.down_name) as session, pytest.raises(E.ScannerIOError) as c:
        session.scanner()
    assert not isinstance(c.value, E.ScannerGone)


def test_capabilities_through_the_session(sane_rig):
    with ScannerSession(sane_rig.demo_name) as session:
        caps = session.capabilities()
    assert caps.sources == ("flatbed", "adf", "duplex")
    assert set(caps.presets) == {"cccd", "a4_form", "feeder_batch", "duplex"}
    assert caps.resolutions == (100, 200, 300) and not caps.resolution_range
