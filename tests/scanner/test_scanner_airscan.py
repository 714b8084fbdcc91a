"""The sane-airscan backend against the eSCL emulator: the network-scanner path."""

from __future__ import annotations

import hashlib

import pytest

from appliance.imaging.pages import is_blank
from appliance.scanner import device
from appliance.scanner import errors as E

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
    assert demo.identity.endswith("|airscan:BHXH Demo Scanner")
    assert sane_rig.down_name in devices  # configured devices are listed even when down


def test_flatbed_one_synthetic_page(sane_rig):
    with device.open_scanner(sane_rig.demo_name, resolution=200) as scanner:
        assert scanner.sources() == ["flatbed", "adf"]
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
    identity = next(d.identity for d in device.list_devices() if d.name == sane_rig.demo_name)
    with device.open_scanner(identity, resolution=150) as scanner:
        assert scanner.info.name == sane_rig.demo_name
        (page,) = list(scanner.scan("flatbed"))
    # The emulator offers 100/200/300 dpi: 150 is never rounded down below the ask.
    assert page.info["dpi"] == (200, 200)
    with (device.open_scanner(sane_rig.demo_name, resolution=600) as scanner,
          pytest.raises(E.ScannerUnsupported)):
        list(scanner.scan("flatbed"))
