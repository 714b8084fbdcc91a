"""`python -m tests.worker.slow_ocr_worker`: the real worker with its OCR slowed to a Pi's pace.

Here a page is read in well under a second; on a Raspberry Pi it takes about 15 s, so
a paper of a few pages outlasts the unit's WatchdogSec unless the worker kicks the
watchdog while it reads. The engine is the real one, wrapped; only a sleep is added
per page, because nothing on this machine can run at a Pi's speed otherwise.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType

from PIL import Image

from appliance.ocr.engine import Engine, PageText
from appliance.system import config as config_mod
from appliance.system.notify import ServiceNotifier
from appliance.worker import load_ocr, run_worker

SECONDS_ENV = "SLOW_OCR_SECONDS"


class SlowEngine:
    """An `Engine`: the real engine's reading, after `seconds` of extra time."""

    def __init__(self, inner: Engine, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self.name = f"slow-{inner.name}"

    def read(self, image: Image.Image) -> PageText:
        time.sleep(self.seconds)
        return self.inner.read(image)


def main() -> None:
    config = config_mod.load(os.environ["APPLIANCE_CONFIG"])
    seconds = float(os.environ.get(SECONDS_ENV, "1.0"))
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)

    def engine(cfg: config_mod.Config) -> Engine | None:
        inner = load_ocr(cfg)
        return SlowEngine(inner, seconds) if inner is not None else None

    run_worker(config, stop, ServiceNotifier(), engine=engine)


if __name__ == "__main__":
    main()
