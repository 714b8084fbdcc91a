"""How much faster int8 matrix products run than fp32 ones on this CPU.

The int8 recognizer can only be as much faster than its fp32 twin as the
CPU's int8 GEMM is faster than its fp32 GEMM. On x86 without VNNI (AVX2 only)
onnxruntime's u8s8 kernels run at roughly the fp32 rate; with VNNI, AMX or ARM
dot-product instructions they run 2-4x faster. Measuring this ceiling in the
same run as the OCR benchmark tells a reader whether a missing int8 speed-up is
the model's fault or the machine's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from appliance.ocr.session import make_session

PROBE_DIR = Path(__file__).resolve().parent / "probe"


def int8_gemm_speedup(threads: int = 2, m: int = 2048, k: int = 1024, n: int = 1024,
                      rounds: int = 9) -> dict[str, float]:
    """fp32 / int8 time of one [m,k]x[k,n] product, interleaved so load hits both alike."""
    rng = np.random.default_rng(0)
    fp32 = make_session(PROBE_DIR / "gemm_fp32.onnx", threads)
    int8 = make_session(PROBE_DIR / "gemm_int8.onnx", threads)
    feed_f = {"a": rng.standard_normal((m, k), np.float32),
              "b": rng.standard_normal((k, n), np.float32)}
    feed_q = {"a": rng.integers(0, 256, (m, k), dtype=np.uint8),
              "b": rng.integers(-127, 128, (k, n), dtype=np.int8),
              "a_scale": np.array(0.02, np.float32), "a_zero": np.array(128, np.uint8),
              "b_scale": np.array(0.01, np.float32), "b_zero": np.array(0, np.int8),
              "y_scale": np.array(1.0, np.float32), "y_zero": np.array(128, np.uint8)}
    t_f, t_q = float("inf"), float("inf")
    fp32.run(None, feed_f)
    int8.run(None, feed_q)
    for _ in range(rounds):
        t0 = time.perf_counter()
        fp32.run(None, feed_f)
        t1 = time.perf_counter()
        int8.run(None, feed_q)
        t_f, t_q = min(t_f, t1 - t0), min(t_q, time.perf_counter() - t1)
    ops = 2.0 * m * k * n
    return {"fp32_gflops": round(ops / t_f / 1e9, 1), "int8_gops": round(ops / t_q / 1e9, 1),
            "int8_speedup": round(t_f / t_q, 3)}
