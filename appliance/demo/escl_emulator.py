"""A small eSCL (AirScan) scanner on loopback, serving synthetic BHXH form pages.

It lets the whole chain run without hardware: the demo, the field technician's
self-test and the tests drive it through the real sane-airscan backend, the same
code path as a real network scanner. Only what sane-airscan asks for is answered:
capabilities, status, job creation, NextDocument and job deletion.

Pages come from `appliance.demo.synth` at the requested resolution, one seed per
page (a counter), so every page of a batch differs. The flatbed gives one page per
job; the feeder gives `adf_pages` pages per job, as if refilled for every batch.
`jam_after=k` makes the feeder jam after k pages of each job, so tests can check
that a jam keeps the pages already delivered.

Run it in its own process (`appliance demo-scanner`), never in the process that
drives SANE: python-sane calls sane_close()/sane_exit() with the GIL held, and
airscan's close waits for this server to answer its DELETE, so a server thread in
the same process deadlocks it (seen here when a batch was closed mid-job).
"""

from __future__ import annotations

import io
import logging
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from appliance.demo.synth import render_form_page

log = logging.getLogger(__name__)

NS_SCAN = "http://schemas.hp.com/imaging/escl/2011/05/03"
NS_PWG = "http://www.pwg.org/schemas/2010/12/sm"
RESOLUTIONS: tuple[int, ...] = (100, 200, 300)
# eSCL measures in 1/300 inch. A4 is 2480 x 3508; allow Letter width too.
_MAX_WIDTH = 2550
_MAX_HEIGHT = 3508


@dataclass
class _Job:
    """One ScanJobs entry; mutable because pages are counted as they are served."""

    source: str  # "Platen" or "Feeder"
    resolution: int
    gray: bool
    region: tuple[int, int, int, int]  # x, y, width, height in 1/300 inch
    delivered: int = 0


def _input_caps(tag: str) -> str:
    resolutions = "".join(
        f"<scan:DiscreteResolution><scan:XResolution>{r}</scan:XResolution>"
        f"<scan:YResolution>{r}</scan:YResolution></scan:DiscreteResolution>"
        for r in RESOLUTIONS
    )
    return (
        f"<scan:{tag}>"
        "<scan:MinWidth>16</scan:MinWidth>"
        f"<scan:MaxWidth>{_MAX_WIDTH}</scan:MaxWidth>"
        "<scan:MinHeight>16</scan:MinHeight>"
        f"<scan:MaxHeight>{_MAX_HEIGHT}</scan:MaxHeight>"
        f"<scan:MaxScanRegions>1</scan:MaxScanRegions>"
        "<scan:SettingProfiles><scan:SettingProfile>"
        "<scan:ColorModes><scan:ColorMode>RGB24</scan:ColorMode>"
        "<scan:ColorMode>Grayscale8</scan:ColorMode></scan:ColorModes>"
        "<scan:DocumentFormats><pwg:DocumentFormat>image/jpeg</pwg:DocumentFormat>"
        "<scan:DocumentFormatExt>image/jpeg</scan:DocumentFormatExt></scan:DocumentFormats>"
        f"<scan:SupportedResolutions><scan:DiscreteResolutions>{resolutions}"
        "</scan:DiscreteResolutions></scan:SupportedResolutions>"
        "</scan:SettingProfile></scan:SettingProfiles>"
        f"<scan:MaxOpticalXResolution>{max(RESOLUTIONS)}</scan:MaxOpticalXResolution>"
        f"<scan:MaxOpticalYResolution>{max(RESOLUTIONS)}</scan:MaxOpticalYResolution>"
        f"</scan:{tag}>"
    )


def _first_text(root: ET.Element, local_name: str, default: str) -> str:
    # Namespace prefixes vary between clients (pwg:InputSource vs scan:InputSource).
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == local_name and el.text:
            return el.text.strip()
    return default


class EsclEmulator:
    """The emulated scanner. `start()` serves on a background thread until `stop()`;
    port 0 picks a free port (read `.port` / `.url` after start)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        adf_pages: int = 3,
        jam_after: int | None = None,
        make_and_model: str = "BHXH Demo Scanner",
        first_seed: int = 1,
        degrade: bool = False,
        jpeg_quality: int = 88,
    ) -> None:
        if adf_pages < 0:
            raise ValueError("adf_pages must be >= 0")
        self.host = host
        self._requested_port = port
        self.adf_pages = adf_pages
        self.jam_after = jam_after
        self.make_and_model = make_and_model
        self.degrade = degrade
        self.jpeg_quality = jpeg_quality
        self._next_seed = first_seed
        self._uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bhxh-demo-scanner:{make_and_model}"))
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._adf_state = "ScannerAdfLoaded"
        self._pages_served = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> EsclEmulator:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = ThreadingHTTPServer((self.host, self._requested_port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="escl-emulator",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        log.info("eSCL emulator serving at %s", self.url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> EsclEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for airscan.conf (`"Name" = <url>, escl`)."""
        return f"http://{self.host}:{self.port}/eSCL"

    @property
    def pages_served(self) -> int:
        with self._lock:
            return self._pages_served

    # --- protocol --------------------------------------------------------------------

    def capabilities_xml(self) -> bytes:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<scan:ScannerCapabilities xmlns:scan="{NS_SCAN}" xmlns:pwg="{NS_PWG}">'
            "<pwg:Version>2.63</pwg:Version>"
            f"<pwg:MakeAndModel>{self.make_and_model}</pwg:MakeAndModel>"
            "<pwg:SerialNumber>BHXH-DEMO-0001</pwg:SerialNumber>"
            f"<scan:UUID>{self._uuid}</scan:UUID>"
            f"<scan:Platen>{_input_caps('PlatenInputCaps')}</scan:Platen>"
            f"<scan:Adf>{_input_caps('AdfSimplexInputCaps')}"
            "<scan:FeederCapacity>50</scan:FeederCapacity>"
            "<scan:AdfOptions><scan:AdfOption>DetectPaperLoaded</scan:AdfOption>"
            "</scan:AdfOptions></scan:Adf>"
            "</scan:ScannerCapabilities>"
        )
        return body.encode("utf-8")

    def status_xml(self) -> bytes:
        with self._lock:
            adf = self._adf_state
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<scan:ScannerStatus xmlns:scan="{NS_SCAN}" xmlns:pwg="{NS_PWG}">'
            "<pwg:Version>2.63</pwg:Version><pwg:State>Idle</pwg:State>"
            f"<scan:AdfState>{adf}</scan:AdfState>"
            "</scan:ScannerStatus>"
        )
        return body.encode("utf-8")

    def create_job(self, settings_xml: bytes) -> str:
        root = ET.fromstring(settings_xml)
        source = _first_text(root, "InputSource", "Platen")
        try:
            resolution = int(_first_text(root, "XResolution", "200"))
            region = (
                int(_first_text(root, "XOffset", "0")),
                int(_first_text(root, "YOffset", "0")),
                int(_first_text(root, "Width", "2480")),
                int(_first_text(root, "Height", "3508")),
            )
        except ValueError as e:
            raise ValueError(f"bad ScanSettings: {e}") from e
        if resolution not in RESOLUTIONS:
            raise ValueError(f"unsupported resolution {resolution}")
        job_id = uuid.uuid4().hex
        with self._lock:
            self._jobs[job_id] = _Job(
                source="Feeder" if source == "Feeder" else "Platen",
                resolution=resolution,
                gray=_first_text(root, "ColorMode", "RGB24") == "Grayscale8",
                region=region,
            )
            # A new batch: the operator has cleared any jam and refilled the feeder.
            self._adf_state = "ScannerAdfLoaded" if self.adf_pages else "ScannerAdfEmpty"
        return job_id

    def next_document(self, job_id: str) -> tuple[bytes | None, int]:
        """(JPEG, seed) for the job's next page, or (None, 0) when there is none;
        the reason is then visible in ScannerStatus, as on real devices."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None, 0
            if job.source == "Platen":
                if job.delivered >= 1:
                    return None, 0
            else:
                if self.jam_after is not None and job.delivered >= self.jam_after:
                    self._adf_state = "ScannerAdfJam"
                    return None, 0
                if job.delivered >= self.adf_pages:
                    self._adf_state = "ScannerAdfEmpty"
                    return None, 0
            job.delivered += 1
            seed = self._next_seed
            self._next_seed += 1
            spec = (job.resolution, job.gray, job.region)
        data = self._render(seed, *spec)
        with self._lock:
            self._pages_served += 1
        return data, seed

    def delete_job(self, job_id: str) -> bool:
        with self._lock:
            return self._jobs.pop(job_id, None) is not None

    def _render(self, seed: int, resolution: int, gray: bool,
                region: tuple[int, int, int, int]) -> bytes:
        page = render_form_page(seed, dpi=resolution, degrade=self.degrade).image
        x, y, w, h = (round(v * resolution / 300) for v in region)
        # crop() pads with black outside the page; a scanner sees its white lid there.
        if x + w > page.width or y + h > page.height:
            canvas = Image.new("RGB", (x + w, y + h), (255, 255, 255))
            canvas.paste(page, (0, 0))
            page = canvas
        page = page.crop((x, y, x + w, y + h))
        if gray:
            page = page.convert("L")
        buf = io.BytesIO()
        page.save(buf, "JPEG", quality=self.jpeg_quality, dpi=(resolution, resolution))
        return buf.getvalue()


def _make_handler(emulator: EsclEmulator) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to one emulator (http.server instantiates the class per
    request, so the emulator travels as a class attribute, not a global)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "BHXH-eSCL-Emulator/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _reply(self, status: int, body: bytes = b"", content_type: str = "text/xml",
                   headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            if body:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _job_path(self) -> tuple[str, str] | None:
            parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
            if len(parts) >= 3 and parts[0] == "eSCL" and parts[1] == "ScanJobs":
                return parts[2], "/".join(parts[3:])
            return None

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/eSCL/ScannerCapabilities":
                self._reply(HTTPStatus.OK, emulator.capabilities_xml())
                return
            if path == "/eSCL/ScannerStatus":
                self._reply(HTTPStatus.OK, emulator.status_xml())
                return
            job = self._job_path()
            if job is not None and job[1] == "NextDocument":
                data, seed = emulator.next_document(job[0])
                if data is None:
                    self._reply(HTTPStatus.NOT_FOUND)
                else:
                    self._reply(HTTPStatus.OK, data, "image/jpeg",
                                {"X-Synthetic-Seed": str(seed)})
                return
            self._reply(HTTPStatus.NOT_FOUND)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.split("?", 1)[0].rstrip("/") != "/eSCL/ScanJobs":
                self._reply(HTTPStatus.NOT_FOUND)
                return
            try:
                job_id = emulator.create_job(body)
            except (ET.ParseError, ValueError) as e:
                log.warning("rejected scan job: %s", e)
                self._reply(HTTPStatus.CONFLICT)
                return
            host = self.headers.get("Host") or f"{emulator.host}:{emulator.port}"
            self._reply(HTTPStatus.CREATED,
                        headers={"Location": f"http://{host}/eSCL/ScanJobs/{job_id}"})

        def do_DELETE(self) -> None:
            job = self._job_path()
            found = job is not None and emulator.delete_job(job[0])
            self._reply(HTTPStatus.OK if found else HTTPStatus.NOT_FOUND)

    return Handler
