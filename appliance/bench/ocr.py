"""`appliance bench ocr`: int8 vs fp32 vs tesseract on the same pages, in one run.

Each engine runs in its own process (`appliance.bench.ocr_worker`) so its peak RSS is
its own; pages are generated here (the accuracy corpus or the demo scanner's forms),
or taken from the real-scan corpus (`--corpus real`, tests/corpus/real).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from appliance.ocr.errors import OcrError


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--pages", type=int, default=12, help="number of generated pages")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--engines", default="int8,fp32,tesseract")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--renderer", choices=["corpus", "forms"], default="corpus",
                        help="corpus: the accuracy corpus (the recipe's renderer family); "
                             "forms: the demo scanner's TK1-TS pages, served as JPEG")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip measuring the CPU's int8-over-fp32 GEMM speed-up")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the pages here and keep them")
    parser.add_argument("--corpus", choices=["generated", "real"], default="generated",
                        help="generated: pages rendered here (see --renderer); real: the "
                             "real-scan corpus in tests/corpus/real, scored against its "
                             "transcriptions")
    parser.add_argument("--all-turns", action="store_true",
                        help="real corpus: also feed every page turned 90, 180 and 270 "
                             "degrees (measures the orientation decisions)")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    k = min(len(v) - 1, max(0, round(q * (len(v) - 1))))
    return v[k]


def _form_page(seed: int, dpi: int) -> tuple[Image.Image, dict[str, Any]]:
    """A TK1-TS page from the demo scanner's renderer, through JPEG as the eSCL
    emulator serves it: a layout, fonts and artefacts the recognizer never trained on."""
    from appliance.demo.synth import render_form_page

    page = render_form_page(seed, dpi=dpi, degrade=True)
    buf = io.BytesIO()
    page.image.convert("RGB").save(buf, "JPEG", quality=88)
    image = Image.open(io.BytesIO(buf.getvalue()))
    f = page.fields
    values = [["name", f["full_name"]], ["date", f["birth_date"]], ["id", f["cccd"]],
              ["id", f["bhxh_number"]]]
    return image, {"font": "forms", "lines": [ln.text for ln in page.lines], "values": values}


def write_corpus(out: Path, n: int, seed: int, renderer: str = "corpus") -> list[dict[str, Any]]:
    """Degraded pages, two thirds at 200 dpi and a third at 300 dpi, with truth JSON."""
    from appliance.bench.corpus import render_page

    out.mkdir(parents=True, exist_ok=True)
    truth = []
    for i in range(n):
        dpi = 300 if i % 3 == 2 else 200
        name = f"page_{i:03d}.png"
        if renderer == "forms":
            image, t = _form_page(seed + i, dpi)
        else:
            page = render_page(seed + i, dpi=dpi, degraded=True)
            image = page.image
            t = {"font": page.font, "lines": [f.text for f in page.lines],
                 "values": [[f.kind, f.text] for f in page.values]}
        # Lossless at any level; level 1 writes these noisy pages about four times
        # faster than the default 6 at the same size (the OCR memory test writes nine).
        image.save(out / name, compress_level=1)
        truth.append({"file": name, "dpi": dpi, **t})
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False), encoding="utf-8")
    return truth


def run_engine(engine: str, pages: Path, threads: int, models_dir: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "appliance.bench.ocr_worker", engine, str(pages),
           "--threads", str(threads)]
    if models_dir is not None:
        cmd += ["--models-dir", str(models_dir)]
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise OcrError(f"bench worker {engine} failed: {proc.stderr[-500:]}")
    return json.loads(proc.stdout)


def measure(result: dict[str, Any], truth: list[dict[str, Any]]) -> dict[str, Any]:
    from appliance.bench.metrics import score_page, summarize

    by_file = {t["file"]: t for t in truth}
    scores, s200, s300 = [], [], []
    for p in result["pages"]:
        t = by_file[p["file"]]
        sc = score_page(t["lines"], p["lines"], [tuple(v) for v in t["values"]])
        scores.append(sc)
        (s200 if t["dpi"] == 200 else s300).append(sc)
    secs = [p["seconds"] for p in result["pages"]]
    out: dict[str, Any] = summarize(scores)
    out["cer_200dpi"] = summarize(s200)["cer"] if s200 else None
    out["cer_300dpi"] = summarize(s300)["cer"] if s300 else None
    out.update({
        "p50_s": round(statistics.median(secs), 4) if secs else 0.0,
        "p95_s": round(_pct(secs, 0.95), 4),
        "rss_mb": result["rss_mb"],
        "pages": len(secs),
    })
    out.update(flagging(result, by_file))
    for stage in ("detect", "recognize", "recognizer_network"):
        times = [p["stages"][stage] for p in result["pages"] if stage in p.get("stages", {})]
        if times:
            out[f"{stage}_p50_s"] = round(statistics.median(times), 4)
    return out


def flagging(result: dict[str, Any], by_file: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How well "least sure character < UNSURE_BELOW" separates misread lines from good ones.

    A read line counts as good when it appears verbatim in the page's truth; the
    officer screen flags values from lines below the threshold, so this is the
    share of misreads it catches and the share of good lines it flags needlessly.
    """
    from appliance.bench.metrics import normalize
    from appliance.extraction.fields import UNSURE_BELOW

    caught = missed = needless = quiet = 0
    for p in result["pages"]:
        if "least_sure" not in p:
            return {}
        truth = normalize(" ".join(by_file[p["file"]]["lines"]))
        for text, sure in zip(p["lines"], p["least_sure"], strict=True):
            good = normalize(text) in truth
            low = sure < UNSURE_BELOW
            caught += low and not good
            missed += not low and not good
            needless += low and good
            quiet += not low and good
    return {"misread_lines_flagged_pct": round(100.0 * caught / max(1, caught + missed), 1),
            "good_lines_flagged_pct": round(100.0 * needless / max(1, needless + quiet), 1),
            "misread_lines": caught + missed}


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def cmd_bench(args: argparse.Namespace) -> int:
    if getattr(args, "corpus", "generated") == "real":
        return cmd_bench_real(args)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    with tempfile.TemporaryDirectory() as td:
        pages = args.keep or Path(td)
        truth = write_corpus(pages, args.pages, args.seed, args.renderer)
        results: dict[str, dict[str, Any]] = {}
        try:
            for e in engines:
                results[e] = measure(run_engine(e, pages, args.threads, args.models_dir), truth)
        except OcrError as e:
            print(f"appliance bench ocr: {e}", file=sys.stderr)
            return 2
    ratios: dict[str, Any] = {}
    i8, f32, tes = results.get("int8"), results.get("fp32"), results.get("tesseract")
    if i8 and f32:
        ratios["fp32_over_int8_p50"] = _ratio(f32["p50_s"], i8["p50_s"])
        ratios["fp32_over_int8_recognizer_p50"] = _ratio(f32.get("recognize_p50_s"),
                                                         i8.get("recognize_p50_s"))
        # The recognizer model's own run time per page: what quantization changed.
        ratios["fp32_over_int8_recognizer_network_p50"] = _ratio(
            f32.get("recognizer_network_p50_s"), i8.get("recognizer_network_p50_s"))
        ratios["int8_minus_fp32_cer_points"] = round(i8["cer"] - f32["cer"], 3)
        ratios["int8_over_fp32_rss"] = _ratio(i8["rss_mb"], f32["rss_mb"])
    if i8 and tes:
        ratios["tesseract_over_int8_p50"] = _ratio(tes["p50_s"], i8["p50_s"])
        ratios["tesseract_over_int8_p95"] = _ratio(tes["p95_s"], i8["p95_s"])
        ratios["int8_over_tesseract_cer"] = _ratio(i8["cer"], tes["cer"])
        ratios["int8_over_tesseract_rss"] = _ratio(i8["rss_mb"], tes["rss_mb"])
    if f32 and tes:
        ratios["tesseract_over_fp32_p50"] = _ratio(tes["p50_s"], f32["p50_s"])
    if i8 and f32 and not args.no_ceiling:
        from appliance.bench.ceiling import int8_gemm_speedup

        ceiling = int8_gemm_speedup(args.threads)
        # the most any int8 model can gain over fp32 on this CPU (1.0 = no gain)
        ratios["cpu_int8_gemm_speedup"] = ceiling["int8_speedup"]
    doc = {"engines": results, "ratios": ratios}
    if args.json:
        json.dump(doc, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for name, r in results.items():
            print(f"{name:10s} CER {r['cer']:.2f}%  plain {r['cer_no_diacritics']:.2f}%  "
                  f"p50 {r['p50_s']:.3f}s  p95 {r['p95_s']:.3f}s  RSS {r['rss_mb']:.0f} MB")
        for k, v in ratios.items():
            print(f"{k}: {v}")
    return 0



REAL_CORPUS = Path(__file__).resolve().parents[2] / "tests" / "corpus" / "real"
REAL_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


def real_pages_dir(corpus: Path = REAL_CORPUS) -> Path | None:
    """Where the real corpus's page images are: they are third-party files kept outside
    the commits (tests/corpus/real/README.md), so a checkout may lack them."""
    candidates = []
    if os.environ.get("REAL_CORPUS_PAGES"):
        candidates.append(Path(os.environ["REAL_CORPUS_PAGES"]))
    repo = corpus.parents[2]
    candidates += [corpus / "pages", repo.parent / "shared" / "corpus" / "real" / "pages",
                   repo / "shared" / "corpus" / "real" / "pages"]
    for c in candidates:
        if c.is_dir() and any(f.suffix.lower() in REAL_IMAGE_EXTS for f in c.iterdir()):
            return c
    return None


def upright_turn(rotation_cw: int, extra_ccw: int = 0) -> int:
    """The counter-clockwise turn (PageText.rotation) that makes a page upright.

    The manifest gives the clockwise turn the stored image needs; the bench may turn
    it a further `extra_ccw` degrees counter-clockwise (PIL's rotate) before feeding it.
    """
    return (720 - rotation_cw - extra_ccw) % 360


def write_real_corpus(out: Path, all_turns: bool = False,
                      corpus: Path = REAL_CORPUS) -> list[dict[str, Any]]:
    """Link (or, turned, re-save losslessly) the corpus pages into `out`, with truth."""
    pages_dir = real_pages_dir(corpus)
    if pages_dir is None:
        raise OcrError(f"real corpus page images not found (see {corpus / 'README.md'}; "
                       "or set REAL_CORPUS_PAGES)")
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    truth = []
    for p in manifest["pages"]:
        src = pages_dir / Path(p["file"]).name
        lines = [ln for ln in (corpus / p["truth"]).read_text(encoding="utf-8").splitlines()
                 if ln.strip()]
        for turn in (0, 90, 180, 270) if all_turns else (0,):
            if turn == 0:
                name = src.name
                (out / name).symlink_to(src.resolve())
            else:
                name = f"{p['id']}-turn{turn}.png"
                with Image.open(src) as im:
                    im.rotate(turn, expand=True).save(out / name)
            truth.append({"file": name, "id": p["id"], "turn": turn, "lines": lines,
                          "upright_turn": upright_turn(int(p["rotation"]), turn),
                          "whole": str(p.get("transcribed", "")).startswith("whole"),
                          "dpi": p.get("dpi")})
    return truth


def orientation_counts(pages: list[dict[str, Any]], by_file: dict[str, dict[str, Any]]
                       ) -> dict[str, int]:
    """right: read the way up it should be; left: turned page left as scanned;
    wrong: turned the wrong way, `upright_turned` counting upright pages among them."""
    right = left = wrong = upright_turned = 0
    for p in pages:
        need = by_file[p["file"]]["upright_turn"]
        got = int(p.get("rotation", 0)) % 360
        if got == need:
            right += 1
        elif got == 0:
            left += 1
        else:
            wrong += 1
            upright_turned += need == 0
    return {"right": right, "wrong": wrong, "left_as_scanned": left,
            "upright_turned": upright_turned}


def measure_real(result: dict[str, Any], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """Strict CER on wholly transcribed pages, line-aligned CER on all, per-page detail."""
    from appliance.bench.metrics import score_lines_aligned, score_page

    by_file = {t["file"]: t for t in truth}
    la_err = la_plain = la_n = st_err = st_plain = st_n = 0
    pages = []
    for p in result["pages"]:
        t = by_file[p["file"]]
        la = score_lines_aligned(t["lines"], p["lines"])
        la_err, la_plain, la_n = la_err + la.errors, la_plain + la.errors_plain, la_n + la.length
        if t["whole"]:
            sc = score_page(t["lines"], p["lines"], [])
            st_err, st_plain = st_err + sc.errors, st_plain + sc.errors_plain
            st_n += sc.length
        pages.append({"file": p["file"],
                      "line_cer": round(100.0 * la.errors / max(1, la.length), 2),
                      "rotation": p.get("rotation", 0), "upright_turn": t["upright_turn"],
                      "seconds": round(p["seconds"], 3)})
    secs = [p["seconds"] for p in result["pages"]]
    out: dict[str, Any] = {
        "line_cer": round(100.0 * la_err / max(1, la_n), 3),
        "line_cer_no_diacritics": round(100.0 * la_plain / max(1, la_n), 3),
        "chars": la_n,
        "cer": round(100.0 * st_err / max(1, st_n), 3),  # strict, whole pages only
        "cer_no_diacritics": round(100.0 * st_plain / max(1, st_n), 3),
        "strict_chars": st_n,
        "strict_pages": sum(1 for p in result["pages"] if by_file[p["file"]]["whole"]),
        "p50_s": round(statistics.median(secs), 4) if secs else 0.0,
        "p95_s": round(_pct(secs, 0.95), 4),
        "rss_mb": result["rss_mb"],
        "pages": len(secs),
        "orientation": orientation_counts(result["pages"], by_file),
    }
    for stage in ("detect", "recognize", "orient"):
        times = [p["stages"][stage] for p in result["pages"] if stage in p.get("stages", {})]
        if times:
            out[f"{stage}_p50_s"] = round(statistics.median(times), 4)
    out["per_page"] = pages
    return out


def cmd_bench_real(args: argparse.Namespace) -> int:
    """The real corpus through every engine in one run, with the ratios between them."""
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as td:
        pages = args.keep or Path(td)
        try:
            truth = write_real_corpus(pages, args.all_turns)
            for e in engines:
                results[e] = measure_real(run_engine(e, pages, args.threads, args.models_dir),
                                          truth)
        except OcrError as e:
            print(f"appliance bench ocr: {e}", file=sys.stderr)
            return 2
    ratios: dict[str, Any] = {}
    i8, f32, tes = results.get("int8"), results.get("fp32"), results.get("tesseract")
    if i8 and f32:
        ratios["fp32_over_int8_p50"] = _ratio(f32["p50_s"], i8["p50_s"])
        ratios["int8_minus_fp32_line_cer_points"] = round(i8["line_cer"] - f32["line_cer"], 3)
    for name, r in (("int8", i8), ("fp32", f32)):
        if r and tes:
            ratios[f"tesseract_over_{name}_p50"] = _ratio(tes["p50_s"], r["p50_s"])
            ratios[f"tesseract_over_{name}_p95"] = _ratio(tes["p95_s"], r["p95_s"])
            ratios[f"{name}_over_tesseract_line_cer"] = _ratio(r["line_cer"], tes["line_cer"])
            ratios[f"{name}_over_tesseract_cer"] = _ratio(r["cer"], tes["cer"])
            ratios[f"{name}_over_tesseract_rss"] = _ratio(r["rss_mb"], tes["rss_mb"])
    doc = {"corpus": "real", "all_turns": bool(args.all_turns), "engines": results,
           "ratios": ratios}
    if args.json:
        json.dump(doc, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for name, r in results.items():
            o = r["orientation"]
            print(f"{name:10s} line CER {r['line_cer']:.2f}%  "
                  f"plain {r['line_cer_no_diacritics']:.2f}%  strict {r['cer']:.2f}%  "
                  f"p50 {r['p50_s']:.3f}s  p95 {r['p95_s']:.3f}s  "
                  f"RSS {r['rss_mb']:.0f} MB  orientation {o['right']} right / {o['wrong']} "
                  f"wrong / {o['left_as_scanned']} left as scanned")
        for k, v in ratios.items():
            print(f"{k}: {v}")
    return 0
