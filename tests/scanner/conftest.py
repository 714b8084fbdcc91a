"""Real SANE for the scanner tests: the `test`, `pnm` and `airscan` backends of the
installed libsane, the latter talking to eSCL emulators.

The emulators run as separate processes (the `demo-scanner` command), as in
production: python-sane calls sane_close()/sane_exit() with the GIL held, and
airscan's close waits for the emulator to answer its DELETE, so an emulator
thread inside the test process can deadlock it.

libsane fixes the backend list (dll.conf) at a process's first sane.init(), and
backends re-read their own files only after sane.exit(). So one configuration
serves the whole session: every emulator the tests need (normal, jamming, empty
feeder, and a URL nobody listens on) is started first, then written into one
airscan.conf. Emulators are killed by PID, SANE released and the environment
restored at the end, also when tests fail.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.scanner import device
from appliance.scanner.sane_env import ENV_VAR, use_sane_config, write_sane_config
from tests.scanner.demo_scanner import start_demo_scanner, stop_process, unused_port


@dataclass(frozen=True)
class SaneRig:
    config_dir: Path
    demo_url: str
    demo_name: str = "airscan:e0:BHXH Demo Scanner"
    jammer_name: str = "airscan:e1:Jam Scanner"
    empty_name: str = "airscan:e2:Empty Scanner"
    down_name: str = "airscan:e3:Down Scanner"


@pytest.fixture(scope="session")
def sane_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaneRig]:
    started: list[subprocess.Popen[str]] = []
    previous_env = os.environ.get(ENV_VAR)
    try:
        urls = []
        for args in (("--adf-pages", "3"), ("--adf-pages", "5", "--jam-after", "2"),
                     ("--adf-pages", "0")):
            proc, url = start_demo_scanner(*args)
            started.append(proc)
            urls.append(url)
        config_dir = write_sane_config(
            tmp_path_factory.mktemp("sane"),
            airscan_url=urls[0],
            backends=("test", "pnm", "airscan"),
            airscan_devices=[
                ("Jam Scanner", urls[1]),
                ("Empty Scanner", urls[2]),
                ("Down Scanner", f"http://127.0.0.1:{unused_port()}/eSCL"),
            ],
        )
        use_sane_config(config_dir)
        device.reload_sane()
        yield SaneRig(config_dir=config_dir, demo_url=urls[0])
    finally:
        device.shutdown_sane()
        for proc in started:
            stop_process(proc)
        if previous_env is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous_env
