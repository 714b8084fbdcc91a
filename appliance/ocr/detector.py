"""Text-line detection with a DB (differentiable binarization) ONNX model.

The page is run at a reduced size (long side max_side) because detection cost
grows with pixels while 200-300 dpi form text stays detectable well below
full resolution; boxes are mapped back to full-resolution page coordinates so
the recognizer still crops sharp pixels.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from appliance.ocr.geometry import Quad, components, expand, oriented_box
from appliance.ocr.session import make_session

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the PP-OCR detector's input normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DetectorConfig:
    max_side: int = 1120
    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_x: float = 0.6  # growth along the line, in line heights (kernel -> text)
    unclip_y: float = 0.62  # growth across the line, in kernel heights, each side
    min_height: float = 2.0  # map pixels
    band_rows: int = 224  # detect in bands of this many map rows (multiple of 32); 0: whole map
    band_overlap: int = 16  # rows of context above and below each band (multiple of 16)
    per_line_angle: bool = True  # long lines are cut at their own angle, short ones at the page's
    own_angle_aspect: float = 6.0  # a line this many heights long says its own angle
    own_angle_min_dev_deg: float = 1.0  # ...when it departs from the page's by more than this
    # A band whose rows (with their context) hold no pixel this much darker than the
    # band's paper (0-1 grey) is not run through the network: it can hold no text.
    skip_blank: bool = True
    ink_contrast: float = 0.15
    # Banded, the session keeps its activation memory between runs (session.make_session
    # says why); a whole page map does not: its activations are the memory budget.
    arena: bool = True

    def __post_init__(self) -> None:
        # the network halves the map five times: every input it sees must be a multiple
        # of 32 rows (a band and its context; one at the page's edge takes more context
        # from the other side)
        if self.band_rows % 32 or self.band_overlap % 16:
            raise ValueError("band_rows must be a multiple of 32 and band_overlap of 16")


@dataclass(frozen=True)
class DetResult:
    quads: tuple[Quad, ...]
    map_size: tuple[int, int]
    angle: float  # page skew in radians, from the long lines
    seconds: float


class TextDetector:
    """Owns the detection session; returns oriented line boxes in page pixels."""

    def __init__(self, model: Path, threads: int, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        arena = self.config.arena and self.config.band_rows > 0
        self.session = make_session(model, threads, arena=arena, mem_pattern=not arena)
        self.input_name = self.session.get_inputs()[0].name
        self._mean = np.array(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)
        self._std = np.array(IMAGENET_STD, np.float32).reshape(3, 1, 1)

    def _prepare(self, page: Image.Image) -> tuple[np.ndarray, float, float]:
        """The page shrunk to the detector's size as 0-1 grey, and page pixels per map pixel.

        Grey, not the network's 3-channel input: that is made band by band (_input),
        so the whole page never exists as 3 normalised channels (11 MB at 1120 px)
        and bands need no copy out of it.
        """
        w, h = page.size
        scale = min(1.0, self.config.max_side / max(w, h))
        nw = max(32, int(round(w * scale / 32)) * 32)
        nh = max(32, int(round(h * scale / 32)) * 32)
        # Scanned forms are grey: resize one channel and broadcast it, a third of the work.
        grey = page if page.mode == "L" else page.convert("L")  # no copy of a grey page
        small = grey.resize((nw, nh), Image.BILINEAR, reducing_gap=2.0)
        g = np.asarray(small, dtype=np.float32) * np.float32(1 / 255.0)
        return g, w / nw, h / nh

    def _input(self, g: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Map rows lo..hi as the network's input: the grey in all three channels, normalised."""
        x = np.empty((1, 3, hi - lo, g.shape[1]), np.float32)
        for c in range(3):  # channel by channel: no temporary the size of the input
            np.subtract(g[lo:hi], self._mean[c], out=x[0, c])
            x[0, c] /= self._std[c]
        return x

    def __call__(self, page: Image.Image) -> DetResult:
        t0 = time.perf_counter()
        g, sx, sy = self._prepare(page)
        prob = self._probability(g)
        quads, angle = self._boxes(prob, sx, sy, page.size)
        return DetResult(tuple(quads), (prob.shape[1], prob.shape[0]), angle,
                         time.perf_counter() - t0)

    def _probability(self, g: np.ndarray) -> np.ndarray:
        """The text probability map, computed in horizontal bands when the map is large.

        The network's activations grow with the map: at 1280 px an A4 page took the
        OCR process from 212 to 365 MB peak RSS. Bands of band_rows map rows, each
        seen with band_overlap rows of context above and below, bound that by the
        band's size; the overlap is wide enough that the stitched map matches the
        whole-page one where it matters (the text kernels). 224 rows with 16 of
        context (a 256-row input) instead of 128 with 32: the context is 1/8 of the
        work instead of 1/3 and the network costs ~10 % less per page; on the real
        corpus line CER 5.47 -> 5.41 % (per page +-1 point either way: where the
        seams fall), generated pages 0.42 -> 0.38 %, the demo scanner's 0.63 ->
        0.55 %; peak RSS on the nine demo pages 214 -> 208 MB.
        """
        cfg = self.config
        h = g.shape[0]
        if cfg.band_rows <= 0 or h <= cfg.band_rows + 2 * cfg.band_overlap:
            return self.session.run(None, {self.input_name: self._input(g, 0, h)})[0][0, 0]
        prob = np.zeros(g.shape, np.float32)
        for y0 in range(0, h, cfg.band_rows):
            y1 = min(h, y0 + cfg.band_rows)
            lo, hi = max(0, y0 - cfg.band_overlap), min(h, y1 + cfg.band_overlap)
            short = -(hi - lo) % 32  # h is a multiple of 32, so the band fits
            grow = min(short, h - hi)
            lo, hi = lo - (short - grow), hi + grow
            if not self._has_ink(g, lo, hi):
                continue  # blank paper: the map stays 0 there
            out = self.session.run(None, {self.input_name: self._input(g, lo, hi)})
            prob[y0:y1] = out[0][0, 0, y0 - lo:y1 - lo]
        return prob

    def _has_ink(self, g: np.ndarray, lo: int, hi: int) -> bool:
        """Whether map rows lo..hi hold anything darker than their paper.

        Only whole blank bands are skipped (the margins above and below a letter's
        text, the space under a signature): cutting a band to its inked columns
        as well changed what the network's squeeze-excite blocks pool over and
        raised the generated pages' CER from 0.42 to 0.68 %.
        """
        if not self.config.skip_blank:
            return True
        band = g[lo:hi]
        # the paper's grey from every 4th pixel each way: the median of the whole band
        # cost ~10 ms per page and says the same of paper that fills most of it
        paper = float(np.median(band[::4, ::4]))
        return bool((band < paper - self.config.ink_contrast).any())

    def _boxes(
        self, prob: np.ndarray, sx: float, sy: float, page_size: tuple[int, int]
    ) -> tuple[list[Quad], float]:
        cfg = self.config
        mask = prob > cfg.thresh
        # float32 is exact enough for row sums of at most a few thousand probabilities
        cum = np.zeros((prob.shape[0], prob.shape[1] + 1), np.float32)
        np.cumsum(prob, axis=1, dtype=np.float32, out=cum[:, 1:])
        # each kept component with its score and its own rectangle (angle, corners),
        # measured once: the page's skew and _line_corners both need it
        kept: list[tuple[np.ndarray, float, tuple[float, np.ndarray]]] = []
        angles: list[float] = []
        for runs in components(mask):
            rows, s, e = runs[:, 0], runs[:, 1], runs[:, 2]
            area = float((e - s).sum())
            if area < 6:
                continue
            score = float((cum[rows, e] - cum[rows, s]).sum() / area)
            if score < cfg.box_thresh:
                continue
            ang, c = oriented_box(runs)
            kept.append((runs, score, (ang, c)))
            if np.hypot(*(c[1] - c[0])) > 6 * np.hypot(*(c[3] - c[0])):
                angles.append(ang)  # only long lines say reliably how the page is skewed
        # A page is rigid: every line shares its skew, and short words alone cannot tell it.
        page_angle = float(np.median(angles)) if angles else 0.0
        out: list[Quad] = []
        pw, ph = page_size
        for runs, score, own in kept:
            corners = self._line_corners(runs, page_angle, own)
            kh = float(np.hypot(*(corners[3] - corners[0])))
            kw = float(np.hypot(*(corners[1] - corners[0])))
            if kh < cfg.min_height:
                continue
            if kh > 1.5 * kw and kw >= cfg.min_height:
                # Text running up or down the page (it lies sideways): grow along its
                # length by its width, so it stays a tall box the sideways test can count,
                # not a page-high square.
                grown = expand(corners, cfg.unclip_y * kw + 1.0, cfg.unclip_x * kw + 1.0)
            else:
                grown = expand(corners, cfg.unclip_x * kh + 1.0, cfg.unclip_y * kh + 1.0)
            if kw < kh * 0.5 and kw * kh < 30:
                continue
            pts = [(float(np.clip(px * sx, 0, pw)), float(np.clip(py * sy, 0, ph)))
                   for px, py in grown]
            out.append(Quad(tuple(pts), score))
        return out, page_angle

    def _line_corners(self, runs: np.ndarray, page_angle: float,
                      own_box: tuple[float, np.ndarray]) -> np.ndarray:
        """The line's own rectangle when it is long enough to tell its angle, else the page's.

        A phone photo bends the page, so lines differ in angle by a degree or
        more: one page-wide angle cuts the ends of long lines off their text
        (a curved photo read 28.9 % CER with the page angle, 13.4 % with each
        line's). A short word's own axis is noise, so it keeps the page angle.
        `own_box` is oriented_box(runs), already measured for the page's skew.
        """
        ang, corners = oriented_box(runs, angle=page_angle)
        if not self.config.per_line_angle:
            return corners
        own, own_corners = own_box
        kw = float(np.hypot(*(own_corners[1] - own_corners[0])))
        kh = float(np.hypot(*(own_corners[3] - own_corners[0])))
        if (kw > self.config.own_angle_aspect * kh
                and abs(own - ang) > math.radians(self.config.own_angle_min_dev_deg)):
            return own_corners
        return corners
