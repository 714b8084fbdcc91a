"""The sane-airscan backend against the eSCL emulator: the network-scanner path."""

from __future__ import annotations

import hashlib
import time

import pytest
from PIL import ImageStat

from appliance.imaging.pages import is_blank
from appliance.scanner import device
from appliance.scanner import errors as E
from appliance.scanner.identity import ScannerIdentity
from appliance.scanner.session import ScannerSession
from appliance.scanner.settings import PRESETS
from tests.scanner.conftest import FOLDER_COLOURS
from tests.scanner.demo_scanner import start_demo_scanner, stop_process

pytestmark = pytest.mark.timeout(60)


def _a4_at_200(image):
    width, height = image.size
    return abs(width - 1654) <= 2 and abs(height - 2339) <= 2


def test_emulators_are_listed_with_stable_identity(sane_rig):
    devices = {d.name: d for d in device.list_devices()}
    demo = devices[sane_rig.demo_name]
    assert demo.backend == "airscan"
    assert demo.model == "BHXH Demo Scanner"
    # The airscan entry index (e0, e1 ...) is not part of the identity.
    assert demo.identity.hint == "airscan:BHXH Demo Scanner"
    assert demo.identity.model == "BHXH Demo Scanner"
    assert sane_rig.down_name in devices  # configured devices are listed even when down


def test_flatbed_one_synthetic_page(sane_rig):
    with device.open_scanner(sane_rig.demo_name, resolution=200) as scanner:
        assert scanner.sources() == ["flatbed", "adf", "duplex"]
        pages = list(scanner.scan("flatbed"))
    assert len(pages) == 1
    assert pages[0].mode == "RGB"
    assert _a4_at_200(pages[0])
    assert not is_blank(pages[0])


def test_feeder_batch_arrives_page_by_page(sane_rig):
    digests = []
    with device.open_scanner(sane_rig.demo_name, resolution=200) as scanner:
        batch = scanner.scan("adf")
        assert not isinstance(batch, list)  # a generator: page n is stored before n+1
        for page in batch:
            assert _a4_at_200(page), page.size
            assert page.info["dpi"] == (200, 200)
            digests.append(hashlib.sha256(page.tobytes()).hexdigest())
    assert len(digests) == 3
    assert len(set(digests)) == 3  # every page is a different synthetic form


def test_jam_mid_batch_keeps_earlier_pages(sane_rig):
    kept = []
    with device.open_scanner(sane_rig.jammer_name) as scanner:
        with pytest.raises(E.ScannerJammed) as caught:
            for page in scanner.scan("adf"):
                kept.append(page)
        assert caught.value.pages_done == 2
        assert caught.value.key == "scanner.jammed"
        # Cleared and refilled: the next batch starts again.
        again = scanner.scan("adf")
        assert _a4_at_200(next(again))
        again.close()
    assert len(kept) == 2
    assert all(_a4_at_200(p) for p in kept)


def test_empty_feeder_is_no_documents(sane_rig):
    with (device.open_scanner(sane_rig.empty_name) as scanner,
          pytest.raises(E.ScannerNoDocuments) as caught):
        list(scanner.scan("adf"))
    assert caught.value.pages_done == 0


def test_unreachable_scanner_is_io_error(sane_rig):
    with pytest.raises(E.ScannerIOError):
        device.open_scanner(sane_rig.down_name)


def test_open_by_identity_and_resolution_rounds_up(sane_rig):
    identity = next(d.identity.to_string() for d in device.list_devices()
                    if d.name == sane_rig.demo_name)
    with device.open_scanner(identity, resolution=150) as scanner:
        assert scanner.info.name == sane_rig.demo_name
        (page,) = list(scanner.scan("flatbed"))
    # The emulator offers 100/200/300 dpi: 150 is never rounded down below the ask.
    assert page.info["dpi"] == (200, 200)
    with (device.open_scanner(sane_rig.demo_name, resolution=600) as scanner,
          pytest.raises(E.ScannerUnsupported)):
        list(scanner.scan("flatbed"))


def _colour(image):
    return tuple(round(v) for v in ImageStat.Stat(image.convert("RGB")).median)


def _is(colour, wanted, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(colour, wanted, strict=True))


def test_feeder_serves_a_folder_of_real_pages_in_order(sane_rig):
    with device.open_scanner(sane_rig.name("Folder Scanner"), resolution=200) as scanner:
        pages = list(scanner.scan("adf"))
    assert len(pages) == len(FOLDER_COLOURS)
    for page, colour in zip(pages, FOLDER_COLOURS, strict=True):
        assert _is(_colour(page), colour), (_colour(page), colour)
        assert _a4_at_200(page)  # 100 dpi originals, rescaled: 100 % scale kept


def test_duplex_gives_front_then_back_of_each_sheet(sane_rig):
    with device.open_scanner(sane_rig.name("Folder Scanner"), resolution=200) as scanner:
        assert "duplex" in scanner.capabilities().presets
        pages = list(scanner.scan(PRESETS["duplex"].settings))
    # 5 images = 3 sheets: the last back is blank, and kept (never dropped).
    assert len(pages) == 6
    assert [p.info["side"] for p in pages] == ["front", "back"] * 3
    assert [p.info["page"] for p in pages] == [1, 2, 3, 4, 5, 6]
    for page, colour in zip(pages, FOLDER_COLOURS, strict=False):
        assert _is(_colour(page), colour), (_colour(page), colour)
    assert is_blank(pages[5])


def test_duplex_batch_from_the_synthetic_feeder(sane_rig):
    digests = []
    with device.open_scanner(sane_rig.demo_name) as scanner:
        for page in scanner.scan("duplex"):
            digests.append(hashlib.sha256(page.tobytes()).hexdigest())
    assert len(digests) == 6 == len(set(digests))  # 3 sheets, both sides, all different


def test_simplex_feeder_hides_duplex(sane_rig):
    with device.open_scanner(sane_rig.name("Simplex Scanner")) as scanner:
        caps = scanner.capabilities()
        assert caps.sources == ("flatbed", "adf")
        assert "duplex" not in caps.presets and "feeder_batch" in caps.presets
        with pytest.raises(E.ScannerUnsupported):
            list(scanner.scan("duplex"))


def test_geometry_is_set_after_the_source(sane_rig):
    """airscan resets the scan window when the source changes: a card on the glass,
    then a feeder batch, then a card again must each get their own area."""
    with device.open_scanner(sane_rig.demo_name, resolution=200) as scanner:
        card = next(scanner.scan(PRESETS["cccd"].settings))
        feeder = list(scanner.scan("adf"))
        card_again = next(scanner.scan(PRESETS["cccd"].settings))
    assert card.size == card_again.size
    assert abs(card.width - 1181) <= 2 and abs(card.height - 827) <= 2  # 100x70 mm, 300 dpi
    assert all(_a4_at_200(p) for p in feeder)


def test_slow_pages_arrive_whole_with_progress(sane_rig):
    reports = []
    started = time.monotonic()
    with device.open_scanner(sane_rig.name("Slow Scanner"), read_timeout=10) as scanner:
        pages = list(scanner.scan("adf", progress=reports.append))
    assert len(pages) == 2
    assert time.monotonic() - started >= 2.0  # 1 s per page
    assert {r.page for r in reports} == {1, 2}
    assert reports[-1].lines == pages[-1].height


def test_a_hung_scanner_is_abandoned_after_the_read_timeout(sane_rig):
    started = time.monotonic()
    with device.open_scanner(sane_rig.name("Hung Scanner"), read_timeout=2.0) as scanner:
        kept = []
        with pytest.raises(E.ScannerTimeout) as caught:
            for page in scanner.scan("adf"):
                kept.append(page)
    assert len(kept) == 1 and caught.value.pages_done == 1
    assert time.monotonic() - started < 2.0 + device.CANCEL_GRACE_S + 5


def test_scanner_vanishing_mid_batch_then_coming_back(sane_rig):
    """Switched off after 2 pages: the 2 pages are kept and the fault says "gone";
    switched on again, the same session finds it without any restart."""
    name = sane_rig.name("Vanishing Scanner")
    proc, _ = start_demo_scanner("--adf-pages", "4", "--vanish-after", "2",
                                 port=sane_rig.vanishing_port)
    try:
        with ScannerSession(name, read_timeout=20) as session:
            kept = []
            with pytest.raises(E.ScannerIOError) as caught:
                for page in session.scan("adf"):
                    kept.append(page)
            assert len(kept) == 2 and caught.value.pages_done == 2
            assert isinstance(caught.value, E.ScannerGone), caught.value
            assert caught.value.key == "scanner.gone"
            assert proc.wait(timeout=10) == 3  # the emulator process "lost power"
            with pytest.raises(E.ScannerGone):
                list(session.scan("flatbed"))  # still off
            proc, _ = start_demo_scanner("--adf-pages", "4", port=sane_rig.vanishing_port)
            assert len(list(session.scan("adf"))) == 4
            assert session.reopened >= 1
    finally:
        stop_process(proc)


def test_identity_finds_the_scanner_under_a_new_name_and_address(sane_rig):
    """Remembered by identity, a scanner is found after its SANE name changed (entry
    order) and its address changed (another port), as after a replug or DHCP."""
    demo = next(d for d in device.list_devices() if d.name == sane_rig.demo_name)
    remembered = demo.identity.to_string()
    proc, new_url = start_demo_scanner("--adf-pages", "1", "--model", "Moved Model")
    try:
        moved = [("Other Scanner", sane_rig.urls["Jam Scanner"]),
                 ("BHXH Demo Scanner", new_url)]
        sane_rig.reconfigure(moved)
        with device.open_scanner(remembered) as scanner:
            assert scanner.info.name == "airscan:e1:BHXH Demo Scanner"
            assert len(list(scanner.scan("adf"))) == 1  # the moved emulator's 1 sheet
        parsed = ScannerIdentity.from_string(remembered)
        assert parsed.find(device.list_devices()) is not None
    finally:
        sane_rig.reconfigure()
        stop_process(proc)


def test_scanner_coming_back_with_a_new_address(sane_rig):
    """Switched off mid-batch, switched on again with a new address: once airscan.conf
    says where (a technician, or airscan's discovery), the same session finds the
    same scanner by identity, without restarting anything."""
    name = sane_rig.name("Vanishing Scanner")
    proc, _ = start_demo_scanner("--adf-pages", "3", "--vanish-after", "1",
                                 "--come-back-after", "0.5", port=sane_rig.vanishing_port)
    try:
        with ScannerSession(name, read_timeout=20) as session:
            with pytest.raises(E.ScannerGone) as caught:
                list(session.scan("adf"))
            assert caught.value.pages_done == 1
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("demo scanner ready: ")
            new_url = line.split(": ", 1)[1].strip()
            assert new_url != sane_rig.vanishing_url
            moved = [(n, new_url if n == "Vanishing Scanner" else u)
                     for n, u in sane_rig.default_devices()]
            sane_rig.reconfigure(moved)
            assert len(list(session.scan("adf"))) == 3
    finally:
        sane_rig.reconfigure()
        stop_process(proc)
