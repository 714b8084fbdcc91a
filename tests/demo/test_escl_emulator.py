"""The eSCL emulator at the HTTP level, and the demo-scanner command as a process."""

from __future__ import annotations

import io
import signal
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from appliance.demo.escl_emulator import NS_PWG, NS_SCAN, EsclEmulator
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
    body = SETTINGS.format(source="Feeder", mode="Grayscale8", dpi=100).encode()
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
    body = SETTINGS.format(source="Platen", mode="RGB24", dpi=200).encode()
    _, headers, _ = _request("POST", f"{emulator.url}/ScanJobs", body)
    status, _, data = _request("GET", f"{headers['Location']}/NextDocument")
    assert status == 200 and Image.open(io.BytesIO(data)).size == (1653, 2339)
    assert _request("GET", f"{headers['Location']}/NextDocument")[0] == 404
    bad = SETTINGS.format(source="Platen", mode="RGB24", dpi=1200).encode()
    assert _request("POST", f"{emulator.url}/ScanJobs", bad)[0] == 409
    assert _request("POST", f"{emulator.url}/ScanJobs", b"<not xml")[0] == 409


def test_stop_frees_the_port():
    emu = EsclEmulator().start()
    port = emu.port
    emu.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/eSCL/ScannerStatus", timeout=2)


def test_demo_scanner_command_serves_until_sigterm():
    proc, url = start_demo_scanner("--adf-pages", "2")
    try:
        status, _, _ = _request("GET", f"{url}/ScannerCapabilities")
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        stop_process(proc)
