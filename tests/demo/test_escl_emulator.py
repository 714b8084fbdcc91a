"""The eSCL emulator at the HTTP level, and the demo-scanner command as a process."""

from __future__ import annotations

import io
import signal
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from PIL import Image, ImageStat

from appliance.demo.escl_emulator import EXIT_VANISHED, NS_PWG, NS_SCAN, EsclEmulator
from tests.scanner.conftest import FOLDER_COLOURS, make_pages
from tests.scanner.demo_scanner import start_demo_scanner, stop_process

pytestmark = pytest.mark.timeout(60)

SETTINGS = f"""<?xml version="1.0" encoding="UTF-8"?>
<scan:ScanSettings xmlns:scan="{NS_SCAN}" xmlns:pwg="{NS_PWG}">
  <pwg:Version>2.0</pwg:Version>
  <pwg:ScanRegions><pwg:ScanRegion>
    <pwg:ContentRegionUnits>escl:ThreeHundredthsOfInches</pwg:ContentRegionUnits>
    <pwg:XOffset>0</pwg:XOffset><pwg:YOffset>0</pwg:YOffset>
    <pwg:Width>2480</pwg:Width><pwg:Height>3508</pwg:Height>
  </pwg:ScanRegion></pwg:ScanRegions>
  <pwg:InputSource>{{source}}</pwg:InputSource>
  <scan:Duplex>{{duplex}}</scan:Duplex>
  <scan:ColorMode>{{mode}}</scan:ColorMode>
  <pwg:DocumentFormat>image/jpeg</pwg:DocumentFormat>
  <scan:XResolution>{{dpi}}</scan:XResolution><scan:YResolution>{{dpi}}</scan:YResolution>
</scan:ScanSettings>"""


def _request(method, url, body=None):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "text/xml"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def emulator():
    emu = EsclEmulator(adf_pages=2)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def test_capabilities_and_status(emulator):
    status, _, body = _request("GET", f"{emulator.url}/ScannerCapabilities")
    assert status == 200
    root = ET.fromstring(body)
    assert root.tag == f"{{{NS_SCAN}}}ScannerCapabilities"
    assert root.find(f"{{{NS_SCAN}}}Platen/{{{NS_SCAN}}}PlatenInputCaps") is not None
    assert root.find(f"{{{NS_SCAN}}}Adf/{{{NS_SCAN}}}AdfSimplexInputCaps") is not None
    status, _, body = _request("GET", f"{emulator.url}/ScannerStatus")
    assert status == 200
    assert ET.fromstring(body).findtext(f"{{{NS_SCAN}}}AdfState") == "ScannerAdfLoaded"


def test_feeder_job_lifecycle(emulator):
    body = SETTINGS.format(source="Feeder", mode="Grayscale8", dpi=100, duplex="false").encode()
    status, headers, _ = _request("POST", f"{emulator.url}/ScanJobs", body)
    assert status == 201
    location = headers["Location"]
    assert "/eSCL/ScanJobs/" in location
    seeds = []
    for _ in range(2):
        status, headers, data = _request("GET", f"{location}/NextDocument")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        image = Image.open(io.BytesIO(data))
        assert image.mode == "L"
        assert image.size == (827, 1169)  # A4 at 100 dpi
        seeds.append(headers["X-Synthetic-Seed"])
    assert len(set(seeds)) == 2
    status, _, _ = _request("GET", f"{location}/NextDocument")
    assert status == 404
    _, _, body = _request("GET", f"{emulator.url}/ScannerStatus")
    assert ET.fromstring(body).findtext(f"{{{NS_SCAN}}}AdfState") == "ScannerAdfEmpty"
    assert _request("DELETE", location)[0] == 200
    assert _request("DELETE", location)[0] == 404


def test_flatbed_gives_one_page_and_bad_jobs_are_refused(emulator):
    body = SETTINGS.format(source="Platen", mode="RGB24", dpi=200, duplex="false").encode()
    _, headers, _ = _request("POST", f"{emulator.url}/ScanJobs", body)
    status, _, data = _request("GET", f"{headers['Location']}/NextDocument")
    assert status == 200 and Image.open(io.BytesIO(data)).size == (1653, 2339)
    assert _request("GET", f"{headers['Location']}/NextDocument")[0] == 404
    bad = SETTINGS.format(source="Platen", mode="RGB24", dpi=1200, duplex="false").encode()
    assert _request("POST", f"{emulator.url}/ScanJobs", bad)[0] == 409
    assert _request("POST", f"{emulator.url}/ScanJobs", b"<not xml")[0] == 409


def test_stop_frees_the_port():
    emu = EsclEmulator().start()
    port = emu.port
    emu.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/eSCL/ScannerStatus", timeout=2)


def test_demo_scanner_command_serves_until_sigterm():
    proc, url = start_demo_scanner("--adf-pages", "2", command=True)
    try:
        status, _, _ = _request("GET", f"{url}/ScannerCapabilities")
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        stop_process(proc)


def _job(emu, source="Feeder", duplex=False, dpi=100):
    body = SETTINGS.format(source=source, mode="RGB24", dpi=dpi,
                           duplex=str(duplex).lower()).encode()
    status, headers, _ = _request("POST", f"{emu.url}/ScanJobs", body)
    assert status == 201, status
    return headers["Location"]


def _pages(location):
    out = []
    while True:
        status, headers, data = _request("GET", f"{location}/NextDocument")
        if status != 200:
            return out, status
        out.append((headers, Image.open(io.BytesIO(data))))


def _adf_state(emu):
    _, _, body = _request("GET", f"{emu.url}/ScannerStatus")
    return ET.fromstring(body).findtext(f"{{{NS_SCAN}}}AdfState")


def test_duplex_gives_two_images_per_sheet_and_simplex_refuses_it():
    with EsclEmulator(adf_pages=2) as emu:
        caps = ET.fromstring(_request("GET", f"{emu.url}/ScannerCapabilities")[2])
        assert caps.find(f".//{{{NS_SCAN}}}AdfDuplexInputCaps") is not None
        pages, status = _pages(_job(emu, duplex=True))
        assert len(pages) == 4 and status == 404
        assert len({h["X-Synthetic-Seed"] for h, _ in pages}) == 4
        assert _adf_state(emu) == "ScannerAdfEmpty"
    with EsclEmulator(adf_pages=2, duplex=False) as emu:
        caps = ET.fromstring(_request("GET", f"{emu.url}/ScannerCapabilities")[2])
        assert caps.find(f".//{{{NS_SCAN}}}AdfDuplexInputCaps") is None
        body = SETTINGS.format(source="Feeder", mode="RGB24", dpi=100, duplex="true")
        assert _request("POST", f"{emu.url}/ScanJobs", body.encode())[0] == 409


def test_pages_folder_in_order_at_the_asked_resolution(tmp_path):
    folder = make_pages(tmp_path / "pages", dpi=100)
    with EsclEmulator(pages_dir=folder) as emu:
        pages, _ = _pages(_job(emu, dpi=200))
        assert [h["X-Page-Source"] for h, _ in pages] == [
            f"page-{n:02d}.png" for n in range(1, len(FOLDER_COLOURS) + 1)]
        for (_, image), colour in zip(pages, FOLDER_COLOURS, strict=True):
            assert image.size == (1653, 2339)  # A4 at 200 dpi from a 100 dpi original
            median = ImageStat.Stat(image).median
            assert all(abs(a - b) < 40 for a, b in zip(median, colour, strict=True))
        # Flatbed: the folder's images in turn, one per job.
        flat = [_pages(_job(emu, source="Platen"))[0][0][0]["X-Page-Source"]
                for _ in range(2)]
        assert flat == ["page-01.png", "page-02.png"]
        # Duplex with 5 images: 3 sheets, the last back blank.
        pages, _ = _pages(_job(emu, duplex=True))
        assert [h["X-Page-Source"] for h, _ in pages][-1] == "blank"
        assert len(pages) == 6
    with pytest.raises(ValueError):
        EsclEmulator(pages_dir=tmp_path)  # no images there


def test_jam_and_empty_feeder_show_in_status():
    with EsclEmulator(adf_pages=4, jam_after=1) as emu:
        pages, status = _pages(_job(emu))
        assert len(pages) == 1 and status == 404
        assert _adf_state(emu) == "ScannerAdfJam"
    with EsclEmulator(adf_pages=0) as emu:
        pages, _ = _pages(_job(emu))
        assert pages == [] and _adf_state(emu) == "ScannerAdfEmpty"


def test_slow_and_hung_pages():
    with EsclEmulator(adf_pages=3, page_delay=0.5, hang_at=2) as emu:
        location = _job(emu)
        started = time.monotonic()
        assert _request("GET", f"{location}/NextDocument")[0] == 200
        assert time.monotonic() - started >= 0.5
        # Image 2 hangs until the client gives up and deletes the job.
        result: list[int] = []
        waiter = threading.Thread(
            target=lambda: result.append(_request("GET", f"{location}/NextDocument")[0]))
        waiter.start()
        waiter.join(1.5)
        assert waiter.is_alive()
        assert _request("DELETE", location)[0] == 200
        waiter.join(5)
        assert result == [404]


def test_vanishing_mid_batch():
    emu = EsclEmulator(adf_pages=4, vanish_after=2).start()
    try:
        location = _job(emu)
        assert _request("GET", f"{location}/NextDocument")[0] == 200
        assert _request("GET", f"{location}/NextDocument")[0] == 200
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _request("GET", f"{location}/NextDocument")
        assert emu.gone.wait(5)
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _request("GET", f"{emu.url}/ScannerStatus")
    finally:
        emu.stop()


def test_emulator_process_exits_when_it_vanishes():
    proc, url = start_demo_scanner("--adf-pages", "3", "--vanish-after", "1")
    try:
        emu_url = url
        body = SETTINGS.format(source="Feeder", mode="RGB24", dpi=100, duplex="false")
        _, headers, _ = _request("POST", f"{emu_url}/ScanJobs", body.encode())
        assert _request("GET", f"{headers['Location']}/NextDocument")[0] == 200
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _request("GET", f"{headers['Location']}/NextDocument")
        assert proc.wait(timeout=10) == EXIT_VANISHED
    finally:
        stop_process(proc)
