"""onnxruntime session construction with the thread settings tuned for 2-4 cores."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime as ort

M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD_BYTES = 4 << 20


def keep_large_buffers_off_the_heap() -> bool:
    """Serve every allocation over 4 MB by mmap, so freeing it returns it to the system.

    glibc raises its mmap threshold each time a large mmapped block is freed,
    after which a page's big activations and images come from the heap and stay
    there, fragmented: peak RSS crept from 163 to 272 MB over 12 A4 pages. A
    fixed threshold holds it at ~210 MB for ~7 % more time (measured with
    `appliance bench ocr --renderer forms`). Process-wide, so it is set where
    an OCR engine is loaded; a no-op on a libc without mallopt.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def make_session(path: Path, threads: int, arena: bool = True,
                 mem_pattern: bool = False) -> ort.InferenceSession:
    """One session per stage; intra-op threads only, since the graphs are sequential.

    `arena` keeps the session's activation memory between runs. Without it every
    run maps its large buffers fresh from the kernel (they are over the mmap
    threshold set above) and faults them in: a quarter of the detector's CPU time
    and a third of the recognizer's went to system time. Real corpus, int8, A/B
    in one run: CPU/page 0.69 -> 0.60 s (detector), then 0.67 -> 0.59 s
    (recognizer: recognize p50 0.26 -> 0.16 s), output identical, peak RSS no
    higher (239 vs 245 MB). The one graph that should not keep its memory is the
    detector on a whole page map (365 MB peak at 1280 px): it passes arena=False.
    `mem_pattern` plans one block for all of a run's activations per input shape;
    with the arena that block stays allocated for every shape seen (band heights,
    page widths and line widths vary), so it is off where the arena is on: 122 MB
    instead of 151 MB peak over nine band shapes, for ~4 % more CPU per band.

    onnxruntime is imported here, not at module level: the web reaches this
    package through records.pages (for PageText) and would otherwise map ~20 MB
    of onnxruntime it never runs (web worker RSS 78.9 -> 58.4 MB).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.enable_cpu_mem_arena = arena
    so.enable_mem_pattern = mem_pattern
    # Spinning threads burn the second core the scanner/web processes need.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
