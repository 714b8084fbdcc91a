"""Faults and feeder behaviour through SANE's own `test` backend (real libsane)."""

from __future__ import annotations

import pytest

from appliance.scanner import device
from appliance.scanner import errors as E

pytestmark = pytest.mark.timeout(60)


def test_lists_test_devices_with_identity(sane_rig):
    devices = {d.name: d for d in device.list_devices()}
    assert "test:0" in devices
    info = devices["test:0"]
    assert info.backend == "test"
    assert info.identity == "test|Noname|frontend-tester|test:0"


def test_flatbed_gives_one_a4_colour_page(sane_rig):
    with device.open_scanner("test:0", resolution=200) as scanner:
        pages = list(scanner.scan("flatbed"))
    assert len(pages) == 1
    assert pages[0].mode == "RGB"
    assert pages[0].size == (1653, 2338)
    assert pages[0].info["dpi"] == (200, 200)


def test_gray_mode_gives_gray_pages(sane_rig):
    with device.open_scanner("test:1", resolution=100, mode="Gray") as scanner:
        (page,) = list(scanner.scan("flatbed"))
    assert page.mode == "L"
    assert page.size == (826, 1169)


def test_feeder_gives_ten_pages_then_stops(sane_rig):
    with device.open_scanner("test:0", resolution=100) as scanner:
        assert scanner.sources() == ["flatbed", "adf"]
        pages = list(scanner.scan("adf"))
    assert len(pages) == 10


@pytest.mark.parametrize(("status", "cls"), [
    ("SANE_STATUS_JAMMED", E.ScannerJammed),
    ("SANE_STATUS_COVER_OPEN", E.ScannerCoverOpen),
    ("SANE_STATUS_DEVICE_BUSY", E.ScannerBusy),
    ("SANE_STATUS_IO_ERROR", E.ScannerIOError),
    ("SANE_STATUS_NO_DOCS", E.ScannerNoDocuments),
    ("SANE_STATUS_ACCESS_DENIED", E.ScannerAccessDenied),
])
@pytest.mark.parametrize("source", ["flatbed", "adf"])
def test_read_status_becomes_typed_error(sane_rig, status, cls, source):
    with device.open_scanner("test:1", resolution=50) as scanner:
        scanner.set_option("read_return_value", status)
        with pytest.raises(cls) as caught:
            list(scanner.scan(source))
    assert caught.value.pages_done == 0
    assert caught.value.device == "test:1"
    assert caught.value.__cause__ is not None  # the SANE error stays attached


def test_unknown_device_is_not_found(sane_rig):
    with pytest.raises(E.ScannerNotFound):
        device.open_scanner("test:99")
    with pytest.raises(E.ScannerNotFound):
        device.open_scanner("nosuchbackend:0")


def test_bad_source_and_option(sane_rig):
    with device.open_scanner("test:0") as scanner:
        with pytest.raises(E.ScannerInvalid):
            next(scanner.scan("tray"))
        with pytest.raises(E.ScannerUnsupported):
            scanner.set_option("no_such_option", 1)


def test_first_device_when_name_is_empty(sane_rig):
    first = device.list_devices()[0]
    with device.open_scanner("") as scanner:
        assert scanner.info == first


def test_resolve_device_by_identity_and_name():
    devices = [device.DeviceInfo("fujitsu:libusb:001:007", "FUJITSU", "fi-7160", "scanner"),
               device.DeviceInfo("test:0", "Noname", "frontend-tester", "virtual device")]
    replugged = [device.DeviceInfo("fujitsu:libusb:003:012", "FUJITSU", "fi-7160", "scanner")]
    wanted = devices[0].identity
    assert wanted == "fujitsu|FUJITSU|fi-7160|fujitsu:libusb"
    assert device.resolve_device(wanted, replugged) == replugged[0]
    assert device.resolve_device("test:0", devices) == devices[1]
    assert device.resolve_device("", devices) == devices[0]
    with pytest.raises(E.ScannerNotFound):
        device.resolve_device("test:0", replugged)
    with pytest.raises(E.ScannerNotFound):
        device.resolve_device("", [])


def test_pnm_backend_returns_the_file_pixel_for_pixel(sane_rig, tmp_path):
    from appliance.demo.synth import render_form_page

    original = render_form_page(4, dpi=100).image
    ppm = tmp_path / "page.ppm"
    original.save(ppm)
    with device.open_scanner("pnm:0", resolution=100) as scanner:
        scanner.set_option("filename", str(ppm))
        (page,) = list(scanner.scan("flatbed"))
    assert page.mode == "RGB"
    assert page.tobytes() == original.tobytes()


def test_stopping_early_cancels_the_batch(sane_rig):
    with device.open_scanner("test:0", resolution=50) as scanner:
        batch = scanner.scan("adf")
        next(batch)
        batch.close()
        # The device is usable again straight away.
        assert len(list(scanner.scan("flatbed"))) == 1


def test_process_survives_a_dead_peer_after_scanning(sane_rig):
    """libsane resets SIGPIPE to its default; a later write to a closed socket must
    raise EPIPE, not kill the worker (it did kill this very test run once)."""
    import socket

    with device.open_scanner("test:0", resolution=75) as scanner:
        list(scanner.scan("flatbed"))
    mine, peer = socket.socketpair()
    peer.close()
    with mine, pytest.raises(OSError):
        for _ in range(3):
            mine.send(b"x" * 64)
