"""One engine over a directory of pages, in its own process so peak RSS is its own.

    python -m appliance.bench.ocr_worker ENGINE PAGES_DIR [--threads N] [--models-dir D]
Prints one JSON object: per-page seconds, lines and the turn the engine gave the
page, and peak RSS in MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from appliance.ocr.engine import Engine, OcrEngine, TesseractEngine, open_image

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}  # generated pages are PNG, real scans not


class TimedSession:
    """The recognizer's onnxruntime session, adding up the time of its runs.

    The int8 and fp32 pipelines differ only in the recognizer's model; a page's
    recognition stage also cuts and scales the line images and reads the CTC
    output, the same work in both. The model's own time, over every stage that
    runs it (the orientation vote too), says what quantization itself bought.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.seconds = 0.0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.session.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def make_engine(name: str, threads: int, models_dir: Path | None) -> Engine:
    if name == "tesseract":
        return TesseractEngine()
    engine = OcrEngine.load(models_dir, threads=threads, recognizer=name)
    engine.recognizer.session = TimedSession(engine.recognizer.session)  # type: ignore[assignment]
    return engine


def recognizer_seconds(engine: Engine) -> float | None:
    session = getattr(getattr(engine, "recognizer", None), "session", None)
    return session.seconds if isinstance(session, TimedSession) else None


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM).

    Not getrusage: Linux carries ru_maxrss across exec, so a worker started by
    a big parent (a test run holding an engine, a bench that rendered 300 dpi
    pages) would report the parent's size: 271 MB here for a 195 MB worker.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["int8", "fp32", "tesseract"])
    ap.add_argument("pages", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args(argv)
    engine = make_engine(a.engine, a.threads, a.models_dir)
    files = sorted(f for f in a.pages.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    for f in files[: a.warmup]:
        engine.read(open_image(f))
    out = []
    for f in files:
        # no name holds the page image past its read, so the next page's decode never
        # overlaps it: the appliance's worker reads one page at a time the same way
        before = recognizer_seconds(engine)
        page = engine.read(open_image(f))
        stages = dict(page.stage_seconds)
        if before is not None:
            stages["recognizer_network"] = (recognizer_seconds(engine) or 0.0) - before
        out.append({"file": f.name, "seconds": page.seconds, "stages": stages,
                    "rotation": page.rotation,
                    "lines": [ln.text for ln in page.lines],
                    "least_sure": [ln.least_sure for ln in page.lines]})
    rss_self = peak_rss_mb()
    rss_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rss = rss_child if a.engine == "tesseract" else rss_self
    json.dump({"engine": a.engine, "pages": out, "rss_mb": round(rss, 1),
               "rss_python_mb": round(rss_self, 1)}, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
