"""Accuracy on a small generated corpus, against thresholds taken from measurement.

A handful of degraded 200/300 dpi pages in several fonts, including one the
recognizer never trained on; the full comparison with tesseract and timing
is the benchmark below (`pytest -m benchmark`).
"""

from __future__ import annotations

import argparse
import json

import pytest

from appliance.bench.corpus import available_fonts, render_page
from appliance.bench.metrics import score_page, summarize
from appliance.bench.ocr import add_bench_arguments, cmd_bench

# measured on these 4 pages with the committed int8 model: CER 0.49 % at the 1120 px
# detector (0.42 % at 1280 px; 0.19 % with the 640 px detector before issue 9: larger maps
# frame a few marks differently), without diacritics 0.38 %, IDs and dates 100 %,
# names 92 %; 0.38 % (names 100 %) with the syllable check and 224-row detector bands;
# 0.53 % (0.49 % without diacritics, names 92 %) with the second real-print fine-tune,
# which reads these pages' seal and signature blobs as "C" or "Na7" unless
# engine.not_text_blobs drops them; margins below
MAX_CER = 1.0
MAX_CER_PLAIN = 0.6
MIN_EXACT_ID = 100.0
MIN_EXACT_DATE = 100.0
MIN_EXACT_NAME = 80.0


def test_small_corpus_accuracy(engine):
    scores = []
    fonts = available_fonts()
    for i, seed in enumerate((101, 102, 103, 104)):
        page = render_page(seed, dpi=(200, 200, 300, 200)[i], degraded=True,
                           font_path=fonts[(i * 2) % len(fonts)])
        got = engine.read(page.image)
        scores.append(score_page([f.text for f in page.lines], [ln.text for ln in got.lines],
                                 [(f.kind, f.text) for f in page.values]))
    s = summarize(scores)
    print(json.dumps(s))
    assert s["cer"] <= MAX_CER
    assert s["cer_no_diacritics"] <= MAX_CER_PLAIN
    assert s["exact_id"] >= MIN_EXACT_ID
    assert s["exact_date"] >= MIN_EXACT_DATE
    assert s["exact_name"] >= MIN_EXACT_NAME


def test_stacked_accent_names_read_on_a_clean_page(engine):
    page = render_page(105, dpi=300, degraded=False)
    text = " ".join(ln.text for ln in engine.read(page.image).lines)
    hits = [f.text in text for f in page.fields("name")]
    assert sum(hits) >= len(hits) - 1


def test_upside_down_page_is_turned(engine):
    page = render_page(106, dpi=200, degraded=False)
    got = engine.read(page.image.rotate(180))
    assert got.rotation == 180
    text = " ".join(ln.text for ln in got.lines)
    assert "CỘNG HÒA" in text or "Độc lập" in text


@pytest.mark.parametrize("turn", [90, 270])
def test_page_scanned_sideways_is_turned_upright(engine, turn):
    """A page fed in landscape arrives a quarter turn off; it must read as upright text."""
    page = render_page(107, dpi=200, degraded=False)
    got = engine.read(page.image.rotate(turn, expand=True))
    assert got.rotation == (360 - turn) % 360
    s = summarize([score_page([f.text for f in page.lines], [ln.text for ln in got.lines],
                              [(f.kind, f.text) for f in page.values])])
    assert s["cer"] <= MAX_CER


def test_stage_times_add_up_to_the_page(engine):
    got = engine.read(render_page(108, dpi=200, degraded=False).image)
    assert set(got.stage_seconds) == {"detect", "crop", "recognize", "orient"}
    assert all(v > 0 for v in got.stage_seconds.values())
    assert sum(got.stage_seconds.values()) <= got.seconds


@pytest.mark.benchmark
def test_benchmark_goals(capsys):
    p = argparse.ArgumentParser()
    add_bench_arguments(p)
    assert cmd_bench(p.parse_args(["--json", "--pages", "12"])) == 0
    doc = json.loads(capsys.readouterr().out)
    e, r = doc["engines"], doc["ratios"]
    for name in ("int8", "fp32", "tesseract"):
        assert {"cer", "p50_s", "p95_s", "rss_mb"} <= set(e[name])
    assert e["int8"]["cer_200dpi"] <= 1.0
    assert e["int8"]["cer"] <= e["tesseract"]["cer"]
    assert e["int8"]["exact_id"] == 100.0 and e["int8"]["exact_date"] == 100.0
    assert e["int8"]["exact_name"] >= 95.0
    assert r["fp32_over_int8_p50"] >= 1.5, (
        f"int8 pipeline {r['fp32_over_int8_p50']}x fp32 (recognition stage "
        f"{r['fp32_over_int8_recognizer_p50']}x, the recognizer model's runs "
        f"{r['fp32_over_int8_recognizer_network_p50']}x); this CPU's int8 GEMM is "
        f"{r['cpu_int8_gemm_speedup']}x its fp32 GEMM")
    assert r["int8_minus_fp32_cer_points"] <= 0.3
    assert r["tesseract_over_int8_p50"] >= 3.0
    assert e["int8"]["rss_mb"] <= 250


# Pages from the demo scanner's renderer (appliance.demo.synth), which neither
# the training data nor the corpus above come from, served as JPEG the way the eSCL
# emulator does. Measured 4.1 % before the recipe learned dotted writing lines and
# digits in cells, 0.71 % (0.59 % without diacritics) after; the bound keeps it there.
MAX_CER_OTHER_RENDERER = 1.5


def test_pages_from_another_renderer(engine):
    import io

    from PIL import Image

    from appliance.demo.synth import render_form_page

    scores = []
    for seed, degrade in ((11, False), (13, True)):
        page = render_form_page(seed, dpi=200, degrade=degrade)
        buf = io.BytesIO()
        page.image.save(buf, "JPEG", quality=88)
        got = engine.read(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        scores.append(score_page([ln.text for ln in page.lines],
                                 [ln.text for ln in got.lines], []))
    s = summarize(scores)
    print(json.dumps(s))
    assert s["cer"] <= MAX_CER_OTHER_RENDERER


def test_peak_memory_of_the_ocr_process_stays_in_budget(tmp_path):
    """Nine demo-scanner pages (three at 300 dpi) in one process, as the worker
    reads them. The budget is 250 MB; measured 207 MB with large buffers kept off
    the heap and 244 MB without (272 MB by the twelfth page), so the bound sits
    between the two to keep that fix from regressing."""
    from appliance.bench.ocr import run_engine, write_corpus

    write_corpus(tmp_path, 9, 2024, "forms")
    result = run_engine("int8", tmp_path, 2, None)
    assert len(result["pages"]) == 9
    assert result["rss_mb"] <= 230, result["rss_mb"]
