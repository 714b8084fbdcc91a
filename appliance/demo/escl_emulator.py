"""A small eSCL (AirScan) scanner on loopback: a stand-in for the office's network
scanner, faults included.

It lets the whole chain run without hardware: the demo, the field technician's
self-test and the tests drive it through the real sane-airscan backend, the same
code path as a real network scanner. Only what sane-airscan asks for is answered:
capabilities, status, job creation, NextDocument and job deletion.

Pages come from `appliance.demo.synth` at the requested resolution, one seed per
page (a counter), so every page of a batch differs; or, with `pages_dir`, from real
scanned images in a folder (sorted by name), rescaled from their own dpi to the
requested one, so OCR and page checks meet real paper. The flatbed gives one page
per job; the feeder gives `adf_pages` sheets per job (all the folder's images when
it serves a folder), as if refilled for every batch; duplex gives two images per
sheet, front then back.

Faults, each as a real device shows it to airscan: `jam_after=k` jams the feeder
after k images of a job (NextDocument 404 + AdfState ScannerAdfJam); an empty feeder
(`adf_pages=0`) says ScannerAdfEmpty; `page_delay` makes every page slow;
`hang_at=k` never answers image k until its job is deleted (a hung scanner);
`vanish_after=k` drops the connection asking for image k+1 and stops listening, as a
scanner that is switched off mid-batch (`gone` is set; run as a process, it then
exits, or with `--come-back-after` serves again later, by default on a new port, as
a scanner that got a new address when it was switched on again).

Run it in its own process (`appliance demo-scanner`), never in the process that
drives SANE: python-sane calls sane_close()/sane_exit() with the GIL held, and
airscan's close waits for this server to answer its DELETE, so a server thread in
the same process deadlocks it (seen here when a batch was closed mid-job).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import signal
import socket
import sys
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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
PAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pnm", ".ppm", ".pgm")
_MM_PER_INCH = 25.4
_A4_WIDTH_MM = 210.0


def page_files(folder: Path) -> list[Path]:
    """The images of a pages folder, in the order a feeder would take them."""
    files = sorted(p for p in Path(folder).iterdir()
                   if p.is_file() and p.suffix.lower() in PAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no page images ({', '.join(PAGE_SUFFIXES)}) in {folder}")
    return files


def _source_dpi(image: Image.Image) -> float:
    """The dpi an image was scanned at: its own tag, else as if it were A4-wide."""
    dpi = image.info.get("dpi")
    if dpi and float(dpi[0]) >= 50:
        return float(dpi[0])
    return image.width / (_A4_WIDTH_MM / _MM_PER_INCH)


@dataclass
class _Job:
    """One ScanJobs entry; mutable because pages are counted as they are served."""

    source: str  # "Platen" or "Feeder"
    resolution: int
    gray: bool
    region: tuple[int, int, int, int]  # x, y, width, height in 1/300 inch
    duplex: bool = False
    delivered: int = 0
    released: threading.Event = field(default_factory=threading.Event)  # deleted


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
        adf_pages: int | None = None,
        jam_after: int | None = None,
        make_and_model: str = "BHXH Demo Scanner",
        first_seed: int = 1,
        degrade: bool = False,
        jpeg_quality: int = 88,
        duplex: bool = True,
        feeder: bool = True,
        page_delay: float = 0.0,
        hang_at: int | None = None,
        vanish_after: int | None = None,
        pages_dir: Path | None = None,
        serial: str = "BHXH-DEMO-0001",
    ) -> None:
        if adf_pages is not None and adf_pages < 0:
            raise ValueError("adf_pages must be >= 0")
        for name, value in (("jam_after", jam_after), ("hang_at", hang_at),
                            ("vanish_after", vanish_after)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")
        if page_delay < 0:
            raise ValueError("page_delay must be >= 0")
        self.host = host
        self._requested_port = port
        self.files: list[Path] = page_files(pages_dir) if pages_dir is not None else []
        self.adf_pages = adf_pages if adf_pages is not None else (0 if self.files else 3)
        self.jam_after = jam_after
        self.make_and_model = make_and_model
        self.degrade = degrade
        self.jpeg_quality = jpeg_quality
        self.duplex = duplex and feeder
        self.feeder = feeder  # False: a flatbed-only scanner (no Adf in its capabilities)
        self.page_delay = page_delay
        self.hang_at = hang_at
        self.vanish_after = vanish_after
        self.serial = serial
        self.gone = threading.Event()  # set once it vanished (vanish_after)
        self._next_seed = first_seed
        self._next_file = 0  # the flatbed serves the folder's images in turn
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
        with self._lock:
            for job in self._jobs.values():
                job.released.set()  # a hung page gives up, so its thread ends
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def vanish(self) -> None:
        """Stop listening at once, as a scanner that lost power: no goodbye to the
        client, later connections refused. Safe from a request handler's thread."""
        server = self._server
        if server is None or self.gone.is_set():
            return
        self.gone.set()
        log.warning("eSCL emulator at %s vanishes", self.url)
        # The listening socket goes first so nothing new connects; shutdown() waits
        # for serve_forever, so it runs on its own thread (we may be inside a handler).
        with contextlib.suppress(OSError):
            server.socket.close()
        threading.Thread(target=server.shutdown, name="escl-vanish", daemon=True).start()

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

    def feeder_images(self, duplex: bool) -> int:
        """Images one feeder batch gives: one per sheet, two with duplex."""
        sheets = self.adf_pages
        if self.files and not sheets:
            sheets = -(-len(self.files) // 2) if duplex else len(self.files)
        return sheets * (2 if duplex else 1)

    # --- protocol --------------------------------------------------------------------

    def capabilities_xml(self) -> bytes:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<scan:ScannerCapabilities xmlns:scan="{NS_SCAN}" xmlns:pwg="{NS_PWG}">'
            "<pwg:Version>2.63</pwg:Version>"
            f"<pwg:MakeAndModel>{self.make_and_model}</pwg:MakeAndModel>"
            f"<pwg:SerialNumber>{self.serial}</pwg:SerialNumber>"
            f"<scan:UUID>{self._uuid}</scan:UUID>"
            f"<scan:Platen>{_input_caps('PlatenInputCaps')}</scan:Platen>"
            + (f"<scan:Adf>{_input_caps('AdfSimplexInputCaps')}"
               f"{_input_caps('AdfDuplexInputCaps') if self.duplex else ''}"
               "<scan:FeederCapacity>50</scan:FeederCapacity>"
               "<scan:AdfOptions><scan:AdfOption>DetectPaperLoaded</scan:AdfOption>"
               f"{'<scan:AdfOption>Duplex</scan:AdfOption>' if self.duplex else ''}"
               "</scan:AdfOptions></scan:Adf>" if self.feeder else "")
            + "</scan:ScannerCapabilities>"
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
        feeder = source == "Feeder"
        if feeder and not self.feeder:
            raise ValueError("the feeder asked of a flatbed-only scanner")
        duplex = feeder and _first_text(root, "Duplex", "false").lower() == "true"
        if duplex and not self.duplex:
            raise ValueError("duplex asked of a simplex feeder")
        job_id = uuid.uuid4().hex
        with self._lock:
            self._jobs[job_id] = _Job(
                source="Feeder" if feeder else "Platen",
                resolution=resolution,
                gray=_first_text(root, "ColorMode", "RGB24") == "Grayscale8",
                region=region,
                duplex=duplex,
            )
            # A new batch: the operator has cleared any jam and refilled the feeder.
            loaded = self.feeder_images(duplex) > 0
            self._adf_state = "ScannerAdfLoaded" if loaded else "ScannerAdfEmpty"
        return job_id

    def next_document(self, job_id: str) -> tuple[bytes | None, str]:
        """(JPEG, where it came from) for the job's next page, or (None, "") when
        there is none; the reason is then visible in ScannerStatus, as on real
        devices. Blocks for `page_delay`, and for ever (until the job is deleted or
        the emulator stops) on image `hang_at`."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None, ""
            if job.source == "Platen":
                if job.delivered >= 1:
                    return None, ""
            else:
                if self.jam_after is not None and job.delivered >= self.jam_after:
                    self._adf_state = "ScannerAdfJam"
                    return None, ""
                if job.delivered >= self.feeder_images(job.duplex):
                    self._adf_state = "ScannerAdfEmpty"
                    return None, ""
            index = job.delivered  # 0-based image of this job
            job.delivered += 1
            if self.files:
                if job.source == "Platen":
                    file_no = self._next_file % len(self.files)
                    self._next_file += 1
                else:
                    file_no = index % len(self.files)
                # Duplex from an odd number of images: the last sheet's back is blank.
                blank = (job.duplex and index >= len(self.files)
                         and index == self.feeder_images(True) - 1)
                origin = "blank" if blank else self.files[file_no].name
            else:
                origin = str(self._next_seed)
                self._next_seed += 1
            spec = (job.resolution, job.gray, job.region)
        if self.hang_at is not None and index + 1 == self.hang_at:
            log.warning("eSCL emulator: hanging on image %d", index + 1)
            job.released.wait()
            return None, ""
        if self.page_delay:
            job.released.wait(self.page_delay)
        data = self._render(origin, *spec)
        with self._lock:
            self._pages_served += 1
        return data, origin

    def should_vanish(self) -> bool:
        """Whether the request now arriving is the one the scanner dies on."""
        with self._lock:
            return self.vanish_after is not None and self._pages_served >= self.vanish_after

    def delete_job(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is None:
            return False
        job.released.set()
        return True

    def _page(self, origin: str, resolution: int) -> Image.Image:
        """The whole page at `resolution`: a folder image rescaled from its own dpi
        (100 % scale kept: a 210 mm wide scan stays 210 mm wide), or a synthetic one."""
        if origin == "blank":
            size = round(_A4_WIDTH_MM / _MM_PER_INCH * resolution)
            return Image.new("RGB", (size, round(size * 297 / 210)), (255, 255, 255))
        if not origin.isdigit():
            with Image.open(next(f for f in self.files if f.name == origin)) as src:
                factor = resolution / _source_dpi(src)
                image = src.convert("RGB")
            if abs(factor - 1) > 0.01:
                size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
                image = image.resize(size, Image.Resampling.LANCZOS)
            return image
        return render_form_page(int(origin), dpi=resolution, degrade=self.degrade).image

    def _render(self, origin: str, resolution: int, gray: bool,
                region: tuple[int, int, int, int]) -> bytes:
        page = self._page(origin, resolution)
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

        def _drop(self) -> None:
            """Power lost: no reply, the connection reset, the scanner gone."""
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
            emulator.vanish()

        def _job_path(self) -> tuple[str, str] | None:
            parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
            if len(parts) >= 3 and parts[0] == "eSCL" and parts[1] == "ScanJobs":
                return parts[2], "/".join(parts[3:])
            return None

        def do_GET(self) -> None:
            if emulator.gone.is_set():
                self._drop()
                return
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/eSCL/ScannerCapabilities":
                self._reply(HTTPStatus.OK, emulator.capabilities_xml())
                return
            if path == "/eSCL/ScannerStatus":
                self._reply(HTTPStatus.OK, emulator.status_xml())
                return
            job = self._job_path()
            if job is not None and job[1] == "NextDocument":
                if emulator.should_vanish():
                    self._drop()
                    return
                data, origin = emulator.next_document(job[0])
                if data is None:
                    self._reply(HTTPStatus.NOT_FOUND)
                else:
                    header = "X-Synthetic-Seed" if origin.isdigit() else "X-Page-Source"
                    self._reply(HTTPStatus.OK, data, "image/jpeg", {header: origin})
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


# --- as a process ----------------------------------------------------------------------
# The emulator must run in a process of its own (see the module docstring). These let
# `appliance demo-scanner` and the tests share one set of options.

EXIT_VANISHED = 3  # the process ends with this when the emulated scanner "lost power"


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's behaviour as command-line options (host/port excluded)."""
    parser.add_argument("--adf-pages", type=int, default=None,
                        help="sheets the document feeder holds per batch (default 3, or "
                             "every image of --pages-dir)")
    parser.add_argument("--jam-after", type=int, default=None,
                        help="jam the feeder after this many images of each batch")
    parser.add_argument("--degrade", action="store_true",
                        help="add skew, shading and noise to synthetic pages")
    parser.add_argument("--no-duplex", action="store_true",
                        help="a simplex-only feeder (no AdfDuplexInputCaps)")
    parser.add_argument("--no-feeder", action="store_true",
                        help="a flatbed-only scanner (no Adf in its capabilities)")
    parser.add_argument("--page-delay", type=float, default=0.0,
                        help="seconds each image takes to come out (a slow scanner)")
    parser.add_argument("--hang-at", type=int, default=None,
                        help="never answer image K of a batch (a hung scanner)")
    parser.add_argument("--vanish-after", type=int, default=None,
                        help="after K images, drop the connection and stop listening "
                             "(switched off mid-batch); the process then exits with 3")
    parser.add_argument("--come-back-after", type=float, default=None,
                        help="with --vanish-after: seconds later, serve again (a new "
                             "'ready' line says where) instead of exiting")
    parser.add_argument("--come-back-port", type=int, default=0,
                        help="port to come back on (default 0: a new, free one, as a "
                             "scanner that got a new address from DHCP)")
    parser.add_argument("--pages-dir", type=Path, default=None,
                        help="serve these scanned images (sorted by name) instead of "
                             "synthetic pages")
    parser.add_argument("--model", default="BHXH Demo Scanner",
                        help="MakeAndModel the scanner reports")


def emulator_from_args(args: argparse.Namespace, host: str = "127.0.0.1",
                       port: int = 0) -> EsclEmulator:
    """An emulator configured by `add_emulator_arguments`' options (missing ones,
    from an older parser, take their defaults)."""
    return EsclEmulator(
        host, port,
        adf_pages=getattr(args, "adf_pages", None),
        jam_after=getattr(args, "jam_after", None),
        degrade=bool(getattr(args, "degrade", False)),
        duplex=not getattr(args, "no_duplex", False),
        feeder=not getattr(args, "no_feeder", False),
        page_delay=float(getattr(args, "page_delay", 0.0) or 0.0),
        hang_at=getattr(args, "hang_at", None),
        vanish_after=getattr(args, "vanish_after", None),
        pages_dir=getattr(args, "pages_dir", None),
        make_and_model=getattr(args, "model", None) or "BHXH Demo Scanner",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m appliance.demo.escl_emulator`: serve until SIGTERM/SIGINT (0) or
    until the emulated scanner vanishes (EXIT_VANISHED), unless told to come back.
    Prints the URL each time it listens, for whoever started it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 = any free port")
    add_emulator_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    emulator = emulator_from_args(args, args.host, args.port).start()
    print(f"demo scanner ready: {emulator.url}", flush=True)
    try:
        while not stop.wait(0.2):
            if not emulator.gone.is_set():
                continue
            if args.come_back_after is None:
                return EXIT_VANISHED
            emulator.stop()
            if stop.wait(args.come_back_after):
                break
            # Powered on again: a fresh feeder, no further vanishing, maybe a new port.
            args.vanish_after = None
            emulator = emulator_from_args(args, args.host, args.come_back_port).start()
            print(f"demo scanner ready: {emulator.url}", flush=True)
        return 0
    finally:
        emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
