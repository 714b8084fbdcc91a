"""Real SANE for the scanner tests: the `test`, `pnm` and `airscan` backends of the
installed libsane, the latter talking to EsclEmulator instances on loopback.

libsane fixes the backend list (dll.conf) at a process's first sane.init(), and
backends re-read their own files only after sane.exit(). So one configuration
serves the whole session: every emulator the tests need (normal, jamming, empty
feeder, and a URL nobody listens on) is started first, then written into one
airscan.conf. The emulators are stopped, SANE released and the environment
restored at the end, also when tests fail.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.scanner import device
from appliance.scanner.escl_emulator import EsclEmulator
from appliance.scanner.sane_env import ENV_VAR, use_sane_config, write_sane_config


@dataclass(frozen=True)
class SaneRig:
    config_dir: Path
    demo: EsclEmulator
    jammer: EsclEmulator
    empty: EsclEmulator
    demo_name: str = "airscan:e0:BHXH Demo Scanner"
    jammer_name: str = "airscan:e1:Jam Scanner"
    empty_name: str = "airscan:e2:Empty Scanner"
    down_name: str = "airscan:e3:Down Scanner"


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def sane_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaneRig]:
    started: list[EsclEmulator] = []
    previous_env = os.environ.get(ENV_VAR)
    try:
        demo = EsclEmulator(adf_pages=3, first_seed=100)
        started.append(demo.start())
        jammer = EsclEmulator(adf_pages=5, jam_after=2, make_and_model="Jam Scanner",
                              first_seed=200)
        started.append(jammer.start())
        empty = EsclEmulator(adf_pages=0, make_and_model="Empty Scanner")
        started.append(empty.start())
        config_dir = write_sane_config(
            tmp_path_factory.mktemp("sane"),
            airscan_url=demo.url,
            backends=("test", "pnm", "airscan"),
            airscan_devices=[
                ("Jam Scanner", jammer.url),
                ("Empty Scanner", empty.url),
                ("Down Scanner", f"http://127.0.0.1:{_unused_port()}/eSCL"),
            ],
        )
        use_sane_config(config_dir)
        device.reload_sane()
        yield SaneRig(config_dir=config_dir, demo=demo, jammer=jammer, empty=empty)
    finally:
        device.shutdown_sane()
        for emulator in started:
            emulator.stop()
        if previous_env is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous_env
