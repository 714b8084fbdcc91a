"""The real-corpus benchmark's scoring, without running an engine.

Line-aligned CER must score a transcribed line against the stretch of output
that matches it wherever it is (reading order, partial transcriptions), and
the orientation tally must tell "turned wrong" from "left as scanned".
"""

from __future__ import annotations

import argparse

from appliance.bench.metrics import best_stretch_errors, edit_distance, score_lines_aligned
from appliance.bench.ocr import (
    add_bench_arguments,
    measure_real,
    orientation_counts,
    upright_turn,
)


def test_best_stretch_is_free_around_the_match():
    assert best_stretch_errors("Độc lập", "CỘNG HÒA Độc lập - Tự do") == 0
    assert best_stretch_errors("Độc lập", "CỘNG HÒA Đọc lập - Tự do") == 1
    assert best_stretch_errors("abc", "") == 3
    assert best_stretch_errors("", "abc") == 0
    # never more than the plain edit distance to the whole output
    for line, text in (("hạnh phúc", "hanh phuc"), ("x", "yyyy"), ("abcd", "dcba")):
        assert best_stretch_errors(line, text) <= edit_distance(line, text)


def test_line_aligned_ignores_reading_order_but_not_misreads():
    truth = ["ỦY BAN NHÂN DÂN", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"]
    swapped = ["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "ỦY BAN NHÂN DÂN"]
    assert score_lines_aligned(truth, swapped).errors == 0
    s = score_lines_aligned(truth, ["ỦY BAN NHÂN DÂN CỘNG HÒA XÃ HỌI CHỦ NGHĨA VIỆT NAM"])
    assert (s.errors, s.errors_plain) == (1, 0)
    assert s.length == sum(len(t) for t in truth)


def test_upright_turn_from_the_manifest_rotation():
    assert upright_turn(0) == 0
    assert upright_turn(90) == 270  # stored needing 90 clockwise = 270 counter-clockwise
    assert upright_turn(0, 90) == 270  # the bench turned it 90 counter-clockwise
    assert upright_turn(180, 180) == 0
    assert upright_turn(270, 90) == 0


def test_orientation_tally():
    truth = {"a": {"upright_turn": 0}, "b": {"upright_turn": 180}, "c": {"upright_turn": 90},
             "d": {"upright_turn": 0}}
    pages = [{"file": "a", "rotation": 0}, {"file": "b", "rotation": 0},
             {"file": "c", "rotation": 270}, {"file": "d", "rotation": 180}]
    assert orientation_counts(pages, truth) == {"right": 1, "wrong": 2, "left_as_scanned": 1,
                                                "upright_turned": 1}


def test_measure_real_scores_strict_only_on_whole_pages():
    truth = [{"file": "p1.png", "lines": ["Độc lập", "Tự do"], "upright_turn": 0, "whole": True},
             {"file": "p2.png", "lines": ["Hạnh phúc"], "upright_turn": 0, "whole": False}]
    result = {"rss_mb": 100.0, "pages": [
        {"file": "p1.png", "lines": ["Độc lập", "Tự do"], "seconds": 0.5, "rotation": 0,
         "stages": {"detect": 0.3}},
        {"file": "p2.png", "lines": ["Hạnh phúc", "and much more text"], "seconds": 0.7,
         "rotation": 0, "stages": {"detect": 0.4}}]}
    m = measure_real(result, truth)
    assert m["line_cer"] == 0.0 and m["cer"] == 0.0 and m["strict_pages"] == 1
    assert m["orientation"]["right"] == 2 and m["pages"] == 2


def test_corpus_argument_is_part_of_the_bench_arguments():
    p = argparse.ArgumentParser()
    add_bench_arguments(p)
    a = p.parse_args(["--json", "--corpus", "real", "--all-turns"])
    assert a.corpus == "real" and a.all_turns
    assert p.parse_args([]).corpus == "generated"
