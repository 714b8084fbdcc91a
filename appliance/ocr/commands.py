"""CLI glue for `appliance ocr` (wired in appliance/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance.ocr.errors import OcrError


def add_ocr_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, help="page images (PNG, JPEG, TIFF)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--recognizer", choices=["int8", "fp32"], default="int8")
    parser.add_argument("--engine", choices=["onnx", "tesseract"], default="onnx")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models-dir", type=Path, default=None)


def cmd_ocr(args: argparse.Namespace) -> int:
    from appliance.ocr.engine import Engine, OcrEngine, TesseractEngine, open_image

    try:
        engine: Engine = (
            TesseractEngine() if args.engine == "tesseract"
            else OcrEngine.load(args.models_dir, threads=args.threads, recognizer=args.recognizer)
        )
    except OcrError as e:
        print(f"appliance ocr: {e}", file=sys.stderr)
        return 2
    pages: list[dict[str, Any]] = []
    failed = 0
    for path in args.images:
        try:
            page = engine.read(open_image(path))
        except OcrError as e:  # one bad page must not stop the batch
            failed += 1
            print(f"appliance ocr: {e}", file=sys.stderr)
            pages.append({"file": str(path), "seconds": 0.0, "lines": [], "error": str(e)})
            continue
        pages.append({"file": str(path), **page.to_json(with_least_sure=False)})
        if not args.json:
            for ln in page.lines:
                print(ln.text)
    if args.json:
        json.dump({"pages": pages}, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    return 1 if failed else 0
