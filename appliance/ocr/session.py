"""onnxruntime session construction with the thread settings tuned for 2-4 cores."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def make_session(path: Path, threads: int) -> ort.InferenceSession:
    """One session per stage; intra-op threads only, since the graphs are sequential."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # The arena keeps the largest detector activations allocated for the life of the
    # process; without it peak RSS drops by ~100 MB for a few ms per page.
    so.enable_cpu_mem_arena = False
    # Spinning threads burn the second core the scanner/web processes need.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
