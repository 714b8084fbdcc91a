"""Faults and feeder behaviour through SANE's own `test` backend (real libsane)."""

from __future__ import annotations

import threading
import time

import pytest

from appliance.scanner import device
from appliance.scanner import errors as E
from appliance.scanner.identity import ScannerIdentity
from appliance.scanner.settings import PRESETS, ScanSettings, Source

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _test_devices_reset(request):
    """The test backend keeps option values per device across opens: put the drill
    options back after each test so no slowness or fault leaks into the next."""
    yield
    if "sane_rig" not in request.fixturenames:
        return
    for name in ("test:0", "test:1"):
        with device.open_scanner(name) as scanner:
            scanner.set_option("read_return_value", "Default")
            scanner.set_option("read_delay", False)


def test_lists_test_devices_with_identity(sane_rig):
    devices = {d.name: d for d in device.list_devices()}
    assert "test:0" in devices
    info = devices["test:0"]
    assert info.backend == "test"
    assert info.identity == ScannerIdentity("Noname", "frontend-tester", "", "test", "test:0")
    assert ScannerIdentity.from_string(info.identity.to_string()) == info.identity


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
    *E.BY_SANE_STATUS.items(),
    # A read that ends before any data: python-sane's "no data", an I/O error.
    ("SANE_STATUS_EOF", E.ScannerIOError),
])
@pytest.mark.parametrize("source", ["flatbed", "adf"])
def test_read_status_becomes_typed_error(sane_rig, status, cls, source):
    with device.open_scanner("test:1", resolution=50) as scanner:
        scanner.set_option("read_return_value", status)
        try:
            with pytest.raises(cls) as caught:
                list(scanner.scan(source))
        finally:
            # The test backend keeps option values per device across opens.
            scanner.set_option("read_return_value", "Default")
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
    """Device lists as SANE gives them (values, not a fake scanner): a replugged USB
    scanner is found under its new bus numbers, by new or legacy identity string."""
    devices = [device.DeviceInfo("fujitsu:libusb:001:007", "FUJITSU", "fi-7160", "scanner"),
               device.DeviceInfo("test:0", "Noname", "frontend-tester", "virtual device")]
    replugged = [device.DeviceInfo("fujitsu:libusb:003:012", "FUJITSU", "fi-7160", "scanner")]
    wanted = devices[0].identity.to_string()
    assert device.resolve_device(wanted, replugged) == replugged[0]
    assert device.resolve_device("fujitsu|FUJITSU|fi-7160|fujitsu:libusb",
                                 replugged) == replugged[0]
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


def test_cancel_stops_a_feeder_batch_at_the_page_boundary(sane_rig):
    cancel = threading.Event()
    kept = []
    with device.open_scanner("test:0", resolution=50) as scanner:
        with pytest.raises(E.ScannerCancelled) as caught:
            for page in scanner.scan("adf", cancel=cancel):
                kept.append(page)
                if len(kept) == 3:
                    cancel.set()  # the screen's "stop" while page 3 is being stored
        assert caught.value.pages_done == 3
        assert caught.value.key == "scanner.cancelled"
        # The batch is over; "scan on" takes the 7 sheets still in the test
        # backend's 10-sheet feeder: nothing was lost or scanned twice.
        assert len(list(scanner.scan("adf"))) == 7
    assert [p.info["page"] for p in kept] == [1, 2, 3]


def test_cancel_before_the_first_page(sane_rig):
    cancel = threading.Event()
    cancel.set()
    with device.open_scanner("test:0", resolution=50) as scanner, \
            pytest.raises(E.ScannerCancelled) as caught:
        list(scanner.scan("flatbed", cancel=cancel))
    assert caught.value.pages_done == 0


def test_progress_is_reported_on_the_callers_thread(sane_rig):
    seen: list[tuple[int, int, int, str]] = []

    def progress(p: device.PageProgress) -> None:
        seen.append((p.page, p.lines, p.total_lines, threading.current_thread().name))

    with device.open_scanner("test:0", resolution=75) as scanner:
        scanner.set_option("read_delay", True)
        scanner.set_option("read_delay_duration", 20000)
        (page,) = list(scanner.scan("flatbed", progress=progress))
    me = threading.current_thread().name
    assert seen and all(name == me for *_, name in seen)
    lines = [n for _, n, _, _ in seen]
    assert lines == sorted(lines)
    assert seen[-1][1:3] == (page.height, page.height)  # the last report: all lines
    assert len(seen) >= 3  # reported while the page was still being read


def test_a_read_that_takes_too_long_is_abandoned_and_reported(sane_rig):
    """The test backend's slow reads (0.2 s per buffer, ~110 s for this page) stand
    in for a scanner that never finishes: the page deadline cancels the read."""
    with device.open_scanner("test:1", resolution=300, page_timeout=1.0) as scanner:
        scanner.set_option("read_delay", True)
        scanner.set_option("read_delay_duration", 200000)
        started = time.monotonic()
        with pytest.raises(E.ScannerTimeout) as caught:
            list(scanner.scan("flatbed"))
        assert time.monotonic() - started < 1.0 + device.CANCEL_GRACE_S
        assert caught.value.key == "scanner.timeout"
        assert caught.value.pages_done == 0
        # The cancelled read came back, so the handle is still good.
        scanner.set_option("read_delay", False)
        assert len(list(scanner.scan("flatbed"))) == 1


def test_a_timeout_mid_batch_keeps_the_pages_before_it(sane_rig):
    with device.open_scanner("test:1", resolution=100, page_timeout=1.5) as scanner:
        batch = scanner.scan("adf")
        first = next(batch)
        # From page 2 on, the device crawls (the option applies to the next start).
        scanner.set_option("read_delay", True)
        scanner.set_option("read_delay_duration", 200000)
        with pytest.raises(E.ScannerTimeout) as caught:
            next(batch)
    assert first.info["page"] == 1
    assert caught.value.pages_done == 1


def test_capabilities_hide_what_the_device_lacks(sane_rig):
    with device.open_scanner("test:0") as scanner:
        caps = scanner.capabilities()
        assert caps.sources == ("flatbed", "adf")  # no duplex on the test backend
        assert set(caps.presets) == set(PRESETS) - {"duplex"}
        assert caps.resolution_range and caps.resolutions == (1, 1200)
        assert caps.max_area_mm == (300.0, 300.0)
        assert "Color" in caps.modes
        with pytest.raises(E.ScannerUnsupported):
            list(scanner.scan(PRESETS["duplex"].settings))


def test_presets_scan_colour_at_their_size_and_never_below_the_floor(sane_rig):
    with device.open_scanner("test:0", resolution=200) as scanner:
        (card,) = list(scanner.scan(PRESETS["cccd"].settings))
        (form,) = list(scanner.scan(PRESETS["a4_form"].settings))
    assert card.mode == form.mode == "RGB"
    assert card.info["dpi"] == (300, 300)
    assert card.size == (1181, 826)  # 100 x 70 mm at 300 dpi
    assert form.size == (1653, 2338)  # A4 at 200 dpi, 100 % scale
    with device.open_scanner("test:0", resolution=300) as scanner:
        (form,) = list(scanner.scan(PRESETS["a4_form"].settings))
    assert form.info["dpi"] == (300, 300)  # the configured resolution is a floor


def test_geometry_follows_each_batch_not_the_last_one(sane_rig):
    """Geometry is set after source, mode and resolution, for every batch: a small
    card area does not leak into the next A4 batch, nor A4 into the next card."""
    card = ScanSettings(Source.FLATBED, 200, page_mm=(100.0, 70.0))
    with device.open_scanner("test:0", resolution=200) as scanner:
        sizes = [next(scanner.scan(s)).size for s in (card, "adf", card, "flatbed")]
    assert sizes == [(787, 551), (1653, 2338), (787, 551), (1653, 2338)]


def test_an_impossible_page_size_is_refused(sane_rig):
    """The test backend's hand-scanner mode ignores the window and returns 11 cm wide
    lines: asked for a 50 mm card, that is not "one page" and is never yielded."""
    with device.open_scanner("test:0", resolution=100) as scanner:
        scanner.set_option("hand_scanner", True)
        try:
            with pytest.raises(E.ScannerBadPage) as caught:
                list(scanner.scan(ScanSettings(Source.FLATBED, 100, page_mm=(50.0, 50.0))))
        finally:
            scanner.set_option("hand_scanner", False)
    assert caught.value.key == "scanner.bad_page"
    assert caught.value.pages_done == 0


def test_a_failing_progress_callback_stops_the_read_cleanly(sane_rig):
    """The worker's progress call writes SQLite; if that fails mid-page the read is
    cancelled and waited for, and the handle stays usable."""

    def broken(_: device.PageProgress) -> None:
        raise OSError("database is locked")

    with device.open_scanner("test:0", resolution=75) as scanner:
        scanner.set_option("read_delay", True)
        scanner.set_option("read_delay_duration", 20000)
        with pytest.raises(OSError, match="locked"):
            list(scanner.scan("flatbed", progress=broken))
        scanner.set_option("read_delay", False)
        assert len(list(scanner.scan("flatbed"))) == 1
