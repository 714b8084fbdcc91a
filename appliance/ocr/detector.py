"""Text-line detection with a DB (differentiable binarization) ONNX model.

The page is run at a reduced size (long side max_side) because detection cost
grows with pixels while 200-300 dpi form text stays detectable well below
full resolution; boxes are mapped back to full-resolution page coordinates so
the recognizer still crops sharp pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from appliance.ocr.geometry import Quad, components, expand, oriented_box
from appliance.ocr.session import make_session

_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


@dataclass(frozen=True)
class DetectorConfig:
    max_side: int = 640
    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_x: float = 0.6  # growth along the line, in line heights (kernel -> text)
    unclip_y: float = 0.62  # growth across the line, in kernel heights, each side
    min_height: float = 2.0  # map pixels


@dataclass(frozen=True)
class DetResult:
    quads: tuple[Quad, ...]
    map_size: tuple[int, int]
    seconds: float


class TextDetector:
    """Owns the detection session; returns oriented line boxes in page pixels."""

    def __init__(self, model: Path, threads: int, config: DetectorConfig | None = None) -> None:
        self.session = make_session(model, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.config = config or DetectorConfig()

    def _prepare(self, page: Image.Image) -> tuple[np.ndarray, float, float]:
        w, h = page.size
        scale = min(1.0, self.config.max_side / max(w, h))
        nw = max(32, int(round(w * scale / 32)) * 32)
        nh = max(32, int(round(h * scale / 32)) * 32)
        small = page.convert("RGB").resize((nw, nh), Image.BILINEAR)
        x = np.asarray(small, dtype=np.float32).transpose(2, 0, 1) / 255.0
        x = (x - _MEAN) / _STD
        return x[None].astype(np.float32), w / nw, h / nh

    def __call__(self, page: Image.Image) -> DetResult:
        t0 = time.perf_counter()
        x, sx, sy = self._prepare(page)
        prob = self.session.run(None, {self.input_name: x})[0][0, 0]
        quads = self._boxes(prob, sx, sy, page.size)
        return DetResult(tuple(quads), (prob.shape[1], prob.shape[0]), time.perf_counter() - t0)

    def _boxes(
        self, prob: np.ndarray, sx: float, sy: float, page_size: tuple[int, int]
    ) -> list[Quad]:
        cfg = self.config
        mask = prob > cfg.thresh
        cum = np.concatenate([np.zeros((prob.shape[0], 1), np.float64),
                              np.cumsum(prob, axis=1, dtype=np.float64)], axis=1)
        out: list[Quad] = []
        pw, ph = page_size
        for runs in components(mask):
            rows, s, e = runs[:, 0], runs[:, 1], runs[:, 2]
            area = float((e - s).sum())
            if area < 6:
                continue
            score = float((cum[rows, e] - cum[rows, s]).sum() / area)
            if score < cfg.box_thresh:
                continue
            _, corners = oriented_box(runs)
            kh = float(np.hypot(*(corners[3] - corners[0])))
            kw = float(np.hypot(*(corners[1] - corners[0])))
            if kh < cfg.min_height:
                continue
            grown = expand(corners, cfg.unclip_x * kh + 1.0, cfg.unclip_y * kh + 1.0)
            if kw < kh * 0.5 and kw * kh < 30:
                continue
            pts = [(float(np.clip(px * sx, 0, pw)), float(np.clip(py * sy, 0, ph)))
                   for px, py in grown]
            out.append(Quad(tuple(pts), score))
        return out
