"""The CPU int8 ceiling probe: real onnxruntime sessions on the two shipped GEMM graphs."""

from __future__ import annotations

import numpy as np

from appliance.bench.ceiling import PROBE_DIR, int8_gemm_speedup
from appliance.ocr.session import make_session


def test_probe_graphs_compute_the_same_product():
    """Both graphs must multiply what they are given, or the ratio would time nothing."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (8, 16), dtype=np.uint8)
    # 7-bit weights: on AVX2 without VNNI the u8 x s8 pair sums saturate at int16
    # with full-range weights (measured here: off by up to 10 steps in 30)
    b = rng.integers(-63, 64, (16, 4), dtype=np.int8)
    exact = (a.astype(np.int64) - 128) @ b.astype(np.int64)
    f = make_session(PROBE_DIR / "gemm_fp32.onnx", 1).run(
        None, {"a": (a.astype(np.float32) - 128), "b": b.astype(np.float32)})[0]
    assert np.array_equal(f.astype(np.int64), exact)
    q = make_session(PROBE_DIR / "gemm_int8.onnx", 1).run(None, {
        "a": a, "b": b, "a_scale": np.array(1.0, np.float32), "a_zero": np.array(128, np.uint8),
        "b_scale": np.array(1.0, np.float32), "b_zero": np.array(0, np.int8),
        "y_scale": np.array(1024.0, np.float32), "y_zero": np.array(128, np.uint8)})[0]
    expect = np.round(exact / 1024.0) + 128  # 16 x 128 x 63 / 1024 stays in range
    assert np.abs(q.astype(np.int64) - expect).max() <= 1


def test_speedup_is_measured_not_assumed():
    r = int8_gemm_speedup(threads=1, m=64, k=64, n=64, rounds=2)
    assert r["fp32_gflops"] > 0 and r["int8_gops"] > 0
    assert r["int8_speedup"] == round(r["int8_speedup"], 3) and r["int8_speedup"] > 0
