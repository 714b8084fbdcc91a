"""Page orientation: the PP-OCR 0/180 line classifier, voted over a few lines.

Running it on every line would cost as much as recognition; a page is either
upside down or not, so a vote over the widest lines decides for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from appliance.ocr.session import make_session

CLS_H, CLS_W = 48, 192


@dataclass(frozen=True)
class ClsResult:
    upside_down: bool
    score: float  # mean probability of "180" over the voting lines
    seconds: float


class TextClassifier:
    """Owns the orientation session."""

    def __init__(self, model: Path, threads: int, vote_lines: int = 6) -> None:
        self.session = make_session(model, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.vote_lines = vote_lines

    def __call__(self, crops: Sequence[Image.Image]) -> ClsResult:
        t0 = time.perf_counter()
        chosen = sorted(crops, key=lambda c: -c.width)[: self.vote_lines]
        if not chosen:
            return ClsResult(False, 0.0, time.perf_counter() - t0)
        x = np.zeros((len(chosen), 3, CLS_H, CLS_W), np.float32)
        for k, c in enumerate(chosen):
            w = min(CLS_W, max(1, round(c.width * CLS_H / max(1, c.height))))
            im = np.asarray(c.convert("RGB").resize((w, CLS_H), Image.BILINEAR), np.float32)
            x[k, :, :, :w] = (im.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
        prob = self.session.run(None, {self.input_name: x})[0]
        score = float(prob[:, 1].mean())
        return ClsResult(score > 0.6, score, time.perf_counter() - t0)
