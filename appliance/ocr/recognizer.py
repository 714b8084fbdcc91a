"""CTC line recognizer: crops from the page, batched by width, greedy decoding.

Lines are sorted by width and batched so padding stays small (padding is pure
wasted compute on a 2-core CPU); each crop is cut, straightened and scaled to
the model height in one PIL transform, so full-resolution pixels are
resampled exactly once.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from appliance.ocr.geometry import Quad
from appliance.ocr.session import make_session

HEIGHT = 32
MAX_WIDTH = 2400


@dataclass(frozen=True)
class LineReading:
    text: str
    confidence: float
    char_confidences: tuple[float, ...]


@dataclass(frozen=True)
class RecResult:
    lines: tuple[LineReading, ...]
    seconds: float


def crop_line(gray: Image.Image, quad: Quad, height: int = HEIGHT) -> np.ndarray:
    """Straightened crop of one box, scaled to `height` rows, as uint8."""
    w = max(1.0, quad.width)
    h = max(1.0, quad.height)
    out_w = int(min(MAX_WIDTH, max(8, round(w * height / h))))
    flat = [c for p in quad.points for c in p]
    img = gray.transform((out_w, height), Image.QUAD, flat, resample=Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def width_batches(widths: Sequence[int], max_batch: int, max_ratio: float = 1.4) -> list[list[int]]:
    """Group indices of similar width so a batch pads to at most max_ratio x its narrowest."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) >= max_batch or widths[i] > max_ratio * widths[cur[0]]):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


class TextRecognizer:
    """Owns the recognizer session and the charset its output layer indexes."""

    def __init__(self, model: Path, charset: str, threads: int, max_batch: int = 16) -> None:
        self.session = make_session(model, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.charset = charset
        self.max_batch = max_batch

    def __call__(self, crops: Sequence[np.ndarray]) -> RecResult:
        t0 = time.perf_counter()
        results: list[LineReading | None] = [None] * len(crops)
        for batch in width_batches([c.shape[1] for c in crops], self.max_batch):
            W = max(crops[i].shape[1] for i in batch)
            W = (W + 3) // 4 * 4
            x = np.empty((len(batch), 1, HEIGHT, W), np.float32)
            for k, i in enumerate(batch):
                c = crops[i]
                x[k, 0] = np.pad(c, ((0, 0), (0, W - c.shape[1])), mode="edge")
            x = x / 127.5 - 1.0
            logits = self.session.run(None, {self.input_name: x})[0]
            for k, i in enumerate(batch):
                valid = (crops[i].shape[1] + 3) // 4
                results[i] = self._decode(logits[k, :valid])
        lines = tuple(r if r is not None else LineReading("", 0.0, ()) for r in results)
        return RecResult(lines, time.perf_counter() - t0)

    def _decode(self, logits: np.ndarray) -> LineReading:
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        best = p.argmax(axis=1)
        chars: list[str] = []
        confs: list[float] = []
        prev = 0
        for t, c in enumerate(best.tolist()):
            if c != 0 and c != prev:
                chars.append(self.charset[c - 1] if c - 1 < len(self.charset) else "")
                confs.append(float(p[t, c]))
            elif c != 0 and c == prev and confs:
                confs[-1] = max(confs[-1], float(p[t, c]))
            prev = c
        text = "".join(chars)
        # trim spaces the CTC emits at the ends, with their confidences
        while text.startswith(" "):
            text, confs = text[1:], confs[1:]
        while text.endswith(" "):
            text, confs = text[:-1], confs[:-1]
        text = unicodedata.normalize("NFC", text)
        conf = float(np.mean(confs)) if confs else 0.0
        return LineReading(text, conf, tuple(round(c, 4) for c in confs))
