"""How many mandatory TK1-TS values come out right, flagged, or wrong without a flag.

The goal of the extraction is not "as many right as possible" but "none wrong and
unflagged": an officer checks what is flagged and trusts the rest. This renders
generated TK1-TS pages (appliance.demo.synth, degraded like a cheap scanner), reads
them with the OCR engine and scores the four mandatory values against the truth,
for the extraction and, with --baseline FILE, for an older fields.py beside it.

    python -m tests.extraction.measure --seeds 9001-9012

It lives under tests/ because it draws pages with appliance.demo, a layer the
extraction must not import.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.helpers.seeds import seed_ranges

MANDATORY = ("full_name", "cccd", "birth_date", "bhxh_number")


def score(values: dict[str, Any], flagged: set[str], truth: dict[str, str]) -> dict[str, str]:
    """Per mandatory field: right (unflagged and equal), flagged, wrong (unflagged and
    different: the failure that matters) or silent (absent without a word)."""
    out = {}
    for name in MANDATORY:
        if name in flagged:
            out[name] = "flagged"
        elif name not in values:
            out[name] = "silent"
        else:
            out[name] = "right" if values[name] == truth[name] else "wrong"
    return out


def _bench_page(seed: int, n: int) -> tuple[Any, dict[str, str]]:
    """A page of the OCR benchmark's corpus, fonts in turn (Charis SIL, which the
    recognizer never trained on, among them), and its four mandatory values."""
    from appliance.bench.corpus import available_fonts, render_page

    fonts = available_fonts()
    page = render_page(seed, dpi=(200, 300)[n % 2], degraded=True, font_path=fonts[n % len(fonts)])
    names = [f.text for f in page.values if f.kind == "name"]
    dates = [f.text for f in page.values if f.kind == "date"]
    ids = [f.text for f in page.values if f.kind == "id"]
    return page.image, {"full_name": names[0], "birth_date": dates[0], "cccd": ids[0],
                        "bhxh_number": ids[1]}


def _load_baseline(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("baseline_fields", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    from appliance.demo.synth import render_form_page
    from appliance.extraction.fields import extract
    from appliance.ocr.engine import OcrEngine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="9001-9012", help="e.g. 9001-9012 or 1,5,7")
    parser.add_argument("--baseline", type=Path, help="an older fields.py to compare")
    parser.add_argument("--corpus", choices=["forms", "bench"], default="forms",
                        help="forms: appliance.demo.synth TK1-TS pages; bench: the OCR "
                             "benchmark's pages in every installed font (random ID digits)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    engine = OcrEngine.load(threads=1)
    old = _load_baseline(args.baseline) if args.baseline else None
    totals: Counter[str] = Counter()
    old_totals: Counter[str] = Counter()
    right_but_flagged = 0
    for n, seed in enumerate(seed_ranges(args.seeds)):
        if args.corpus == "forms":
            page = render_form_page(seed, dpi=(200, 300)[n % 2], degrade=True)
            image, truth = page.image, page.fields
        else:
            image, truth = _bench_page(seed, n)
        lines = engine.read(image).lines
        got = extract(lines)
        flagged = set(got.problems) | set(got.uncertain) | set(got.missing)
        result = score(got.values, flagged, truth)
        totals.update(result.values())
        right_but_flagged += sum(
            1 for name in MANDATORY if result[name] == "flagged"
            and got.fields.get(name) is not None and got.fields[name].value == truth[name])
        if args.verbose and set(result.values()) != {"right"}:
            for name, verdict in result.items():
                if verdict != "right":
                    f = got.fields.get(name)
                    print(f"seed {seed} {name}: {verdict}: truth {truth[name]!r} "
                          f"got {f.as_dict() if f else None}", file=sys.stderr)
        if old is not None:
            o = old.extract([ln.text for ln in lines], [ln.least_sure for ln in lines])
            old_totals.update(score(o.values, set(o.problems) | set(o.uncertain),
                                    truth).values())
    report: dict[str, Any] = {"pages": len(seed_ranges(args.seeds)),
                              "values": len(seed_ranges(args.seeds)) * len(MANDATORY),
                              "extraction": dict(totals),
                              "flagged_but_right": right_but_flagged}
    if old is not None:
        report["baseline"] = dict(old_totals)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
