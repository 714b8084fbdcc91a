"""Real SANE for the scanner tests: the `test`, `pnm` and `airscan` backends of the
installed libsane, the latter talking to eSCL emulators.

The emulators run as separate processes (`python -m appliance.demo.escl_emulator`),
as in production: python-sane calls sane_close()/sane_exit() with the GIL held, and
airscan's close waits for the emulator to answer its DELETE, so an emulator thread
inside the test process can deadlock it.

libsane fixes the backend list (dll.conf) at a process's first sane.init(), and
backends re-read their own files only after sane.exit(). So one configuration
serves the whole session: every emulator the tests need (normal, jamming, empty
feeder, a folder of pages, simplex-only, slow, hung, and a URL nobody listens on)
is started first, then written into one airscan.conf; the "vanishing" scanner's
port is reserved there and its emulator started by the test that kills it.
`SaneRig.reconfigure` rewrites airscan.conf (and re-initialises SANE) for the tests
that move a scanner to a new name or address, and restores it afterwards.
Emulators are killed by PID, SANE released and the environment restored at the end,
also when tests fail.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from appliance.scanner import device
from appliance.scanner.sane_env import ENV_VAR, use_sane_config, write_sane_config
from tests.scanner.demo_scanner import start_demo_scanner, stop_process, unused_port

# Folder pages: one distinct colour each, so order is checked from the pixels.
FOLDER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40), (40, 200, 40), (40, 40, 220), (230, 210, 30), (200, 40, 200))

# (name, emulator options); the order makes the airscan names e0, e1 ...
EMULATORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("BHXH Demo Scanner", ("--adf-pages", "3")),
    ("Jam Scanner", ("--adf-pages", "5", "--jam-after", "2")),
    ("Empty Scanner", ("--adf-pages", "0")),
    ("Folder Scanner", ("--pages-dir", "{pages}")),
    ("Simplex Scanner", ("--adf-pages", "2", "--no-duplex", "--model", "Simplex Model")),
    ("Slow Scanner", ("--adf-pages", "2", "--page-delay", "1.0")),
    ("Hung Scanner", ("--adf-pages", "3", "--hang-at", "2")),
)


@dataclass
class SaneRig:
    config_dir: Path
    urls: dict[str, str]
    pages_dir: Path
    vanishing_port: int
    down_url: str
    devices: list[tuple[str, str]] = field(default_factory=list)

    def name(self, short: str) -> str:
        """The SANE name airscan gives the configured device `short`."""
        index = next(i for i, (n, _) in enumerate(self.devices) if n == short)
        return f"airscan:e{index}:{short}"

    @property
    def demo_url(self) -> str:
        return self.urls["BHXH Demo Scanner"]

    @property
    def demo_name(self) -> str:
        return self.name("BHXH Demo Scanner")

    @property
    def jammer_name(self) -> str:
        return self.name("Jam Scanner")

    @property
    def empty_name(self) -> str:
        return self.name("Empty Scanner")

    @property
    def down_name(self) -> str:
        return self.name("Down Scanner")

    @property
    def vanishing_url(self) -> str:
        return f"http://127.0.0.1:{self.vanishing_port}/eSCL"

    def default_devices(self) -> list[tuple[str, str]]:
        return [*self.urls.items(), ("Down Scanner", self.down_url),
                ("Vanishing Scanner", self.vanishing_url)]

    def reconfigure(self, devices: Sequence[tuple[str, str]] | None = None) -> None:
        """Rewrite airscan.conf with `devices` (default: the session's) and
        re-initialise SANE; no Scanner may be open."""
        self.devices = list(devices if devices is not None else self.default_devices())
        write_sane_config(self.config_dir, backends=("test", "pnm", "airscan"),
                          airscan_devices=self.devices)
        device.reload_sane()


def make_pages(folder: Path, colours: Sequence[tuple[int, int, int]] = FOLDER_COLOURS,
               dpi: int = 100) -> Path:
    """A4 'scans' in one colour each, with a black number block, tagged with `dpi`."""
    folder.mkdir(parents=True, exist_ok=True)
    size = (round(210 / 25.4 * dpi), round(297 / 25.4 * dpi))
    for n, colour in enumerate(colours, start=1):
        image = Image.new("RGB", size, colour)
        ImageDraw.Draw(image).rectangle((20, 20, 20 + 30 * n, 60), fill=(0, 0, 0))
        image.save(folder / f"page-{n:02d}.png", dpi=(dpi, dpi))
    return folder


@pytest.fixture(scope="session")
def sane_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaneRig]:
    started: list[subprocess.Popen[str]] = []
    previous_env = os.environ.get(ENV_VAR)
    pages = make_pages(tmp_path_factory.mktemp("pages"))
    try:
        urls = {}
        for name, args in EMULATORS:
            proc, url = start_demo_scanner(*(a.format(pages=pages) for a in args))
            started.append(proc)
            urls[name] = url
        rig = SaneRig(tmp_path_factory.mktemp("sane"), urls, pages, unused_port(),
                      f"http://127.0.0.1:{unused_port()}/eSCL")
        rig.devices = rig.default_devices()
        write_sane_config(rig.config_dir, backends=("test", "pnm", "airscan"),
                          airscan_devices=rig.devices)
        use_sane_config(rig.config_dir)
        device.reload_sane()
        yield rig
    finally:
        device.shutdown_sane()
        for proc in started:
            stop_process(proc)
        if previous_env is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous_env
