"""CLI glue for `appliance extract IMAGE... [--json] [--paper TYPE]`.

For technicians and checks: what the appliance would extract from a paper, with
each field's status, box and confidence, next to the raw OCR it came from, without
a scanner, a dossier or the web screens. All images are pages of one paper.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance.ocr.errors import OcrError
from appliance.records.catalogue import CatalogueError


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path,
                        help="page images of one paper, in order (PNG, JPEG, TIFF)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--paper", metavar="TYPE", default=None,
                        help="paper type code from the catalogue (guessed from the title "
                             "when left out)")
    parser.add_argument("--catalogue", type=Path, default=None,
                        help="a catalogue file replacing the built-in one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models-dir", type=Path, default=None)


def _page_json(path: Path, page: Any) -> dict[str, Any]:
    """The page as `appliance ocr --json` prints it, plus the least sure character
    per line, which is what flags a value as uncertain."""
    lines = [{"text": ln.text, "box": list(ln.box), "confidence": round(ln.confidence, 4),
              "min_char_confidence": round(ln.least_sure, 4)} for ln in page.lines]
    return {"file": str(path), "seconds": round(page.seconds, 4),
            "rotation": getattr(page, "rotation", 0), "lines": lines}


def result_json(result: Any, pages: list[dict[str, Any]]) -> dict[str, Any]:
    """The printed object: paper type, fields (value, confidence, box, flags and the
    status and reason behind the flags), what is missing, and the OCR pages."""
    return {
        "paper_type": result.paper_type,
        "paper_guessed": result.paper_guessed,
        "paper_problem": result.paper_problem,
        "fields": {name: f.as_dict() for name, f in result.fields.items()},
        "problems": list(result.problems),
        "uncertain": list(result.uncertain),
        "missing": list(result.missing),
        "qr": [r.as_dict() for r in getattr(result, "qr", ())],
        "pages": pages,
    }


def cmd_extract(args: argparse.Namespace) -> int:
    from appliance.extraction import qr
    from appliance.extraction.fields import extract_pages
    from appliance.ocr.engine import OcrEngine, open_image
    from appliance.records import catalogue as cat

    try:
        catalogue = cat.load(args.catalogue)
    except CatalogueError as e:
        print(f"appliance extract: {e}", file=sys.stderr)
        return 2
    if args.paper is not None and catalogue.paper(args.paper) is None:
        # Still read and extract, so the technician sees what the page holds; the
        # result says why its type was not accepted, and the exit status too.
        print(f"appliance extract: unknown paper type {args.paper!r}; known: "
              f"{', '.join(p.code for p in catalogue.papers)}", file=sys.stderr)
    try:
        engine = OcrEngine.load(args.models_dir, threads=args.threads)
    except OcrError as e:
        print(f"appliance extract: {e}", file=sys.stderr)
        return 2
    pages: list[dict[str, Any]] = []
    lines: list[Any] = []
    images: list[Any] = []
    failed = 0
    for path in args.images:
        image = None
        try:
            image = open_image(path)
            page = engine.read(image)
        except OcrError as e:  # one bad page must not hide what the others say
            failed += 1
            print(f"appliance extract: {path}: {e}", file=sys.stderr)
            pages.append({"file": str(path), "seconds": 0.0, "lines": [], "error": str(e)})
            lines.append(())
            images.append(image)
            continue
        pages.append(_page_json(path, page))
        lines.append(page.lines)
        images.append(image)
    result = extract_pages(lines, paper_type=args.paper, catalogue=catalogue)
    result = qr.apply(result, images, catalogue)
    out = result_json(result, pages)
    if args.json:
        json.dump(out, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(f"paper type: {result.paper_type or '-'}"
              + (" (guessed)" if result.paper_guessed else "")
              + (f"  [{result.paper_problem}]" if result.paper_problem else ""))
        for name, f in result.fields.items():
            shown = f.value if f.value is not None else (f.raw or "-")
            note = "" if f.status == "valid" else f"  [{f.status}: {f.reason}]"
            print(f"{name}: {shown}{note}")
        for code in result.qr:
            print(f"code on page {code.page + 1} ({code.format}, {code.kind}): {code.text}"
                  + (f"  [{code.reason}]" if code.reason else ""))
    return 1 if failed or result.paper_problem else 0
