"""Connected components and oriented boxes on the detector's probability map.

Pure numpy (run-length labelling + union-find) so the appliance needs neither
OpenCV nor SciPy on a Pi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quad:
    """An oriented text box in page pixels: corners TL, TR, BR, BL."""

    points: tuple[tuple[float, float], ...]
    score: float

    @property
    def width(self) -> float:
        (x0, y0), (x1, y1) = self.points[0], self.points[1]
        return math.hypot(x1 - x0, y1 - y0)

    @property
    def height(self) -> float:
        (x0, y0), (x3, y3) = self.points[0], self.points[3]
        return math.hypot(x3 - x0, y3 - y0)

    def bbox(self) -> tuple[int, int, int, int]:
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return (int(math.floor(min(xs))), int(math.floor(min(ys))),
                int(math.ceil(max(xs))), int(math.ceil(max(ys))))

    def center(self) -> tuple[float, float]:
        return (sum(p[0] for p in self.points) / 4, sum(p[1] for p in self.points) / 4)


@dataclass
class _Comp:
    runs: list[tuple[int, int, int]]  # row, start, end (exclusive)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a boolean mask, each as an array of runs [row, start, end)."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    sr, sc = np.nonzero(d == 1)
    er, ec = np.nonzero(d == -1)
    if len(sr) == 0:
        return []
    runs = np.stack([sr, sc, ec], axis=1)  # row-major order from nonzero
    n = len(runs)
    parent = list(range(n))
    row_start = np.searchsorted(runs[:, 0], np.arange(h + 1))
    rl = runs.tolist()
    for r in range(1, h):
        a0, a1 = int(row_start[r - 1]), int(row_start[r])
        b0, b1 = a1, int(row_start[r + 1])
        i, j = a0, b0
        while i < a1 and j < b1:
            _, s1, e1 = rl[i]
            _, s2, e2 = rl[j]
            if s1 <= e2 and s2 <= e1:  # overlap incl. diagonal touch
                ri, rj = _find(parent, i), _find(parent, j)
                if ri != rj:
                    parent[rj] = ri
            if e1 < e2:
                i += 1
            else:
                j += 1
    groups: dict[int, list[int]] = {}
    for k in range(n):
        groups.setdefault(_find(parent, k), []).append(k)
    return [runs[idx] for idx in groups.values()]


def oriented_box(
    runs: np.ndarray, max_angle_deg: float = 10.0, angle: float | None = None
) -> tuple[float, np.ndarray]:
    """Principal-axis rectangle of a component's pixels.

    Returns (angle, corners[4,2] in map x/y). Text lines are long and thin, so
    the principal axis is the baseline direction; angles beyond max_angle_deg
    are clamped to zero (a box that steep is not a line of form text). A given
    `angle` (the page's skew) replaces the estimate, which is unreliable for
    short words.
    """
    rows = runs[:, 0].astype(np.float64)
    s = runs[:, 1].astype(np.float64)
    e = runs[:, 2].astype(np.float64) - 1.0
    cnt = e - s + 1.0
    n = cnt.sum()
    # moments of pixel centres: x over [s, e], y = row
    sx = (cnt * (s + e) / 2).sum()
    sy = (cnt * rows).sum()
    sxx = (cnt * (s * s + s * e + e * e) / 3).sum()  # continuous approx of sum x^2
    syy = (cnt * rows * rows).sum()
    sxy = (rows * cnt * (s + e) / 2).sum()
    mx, my = sx / n, sy / n
    cxx = sxx / n - mx * mx
    cyy = syy / n - my * my
    cxy = sxy / n - mx * my
    ang = 0.5 * math.atan2(2 * cxy, cxx - cyy) if angle is None else angle
    if abs(math.degrees(ang)) > max_angle_deg:
        ang = 0.0
    ca, sa = math.cos(ang), math.sin(ang)
    # extremes of u (along) and v (across) are attained at run endpoints
    xs = np.concatenate([s, e + 1.0, s, e + 1.0])
    ys = np.concatenate([rows, rows, rows + 1.0, rows + 1.0])
    u = xs * ca + ys * sa
    v = -xs * sa + ys * ca
    u0, u1, v0, v1 = u.min(), u.max(), v.min(), v.max()
    corners = np.array([
        [u0 * ca - v0 * sa, u0 * sa + v0 * ca],
        [u1 * ca - v0 * sa, u1 * sa + v0 * ca],
        [u1 * ca - v1 * sa, u1 * sa + v1 * ca],
        [u0 * ca - v1 * sa, u0 * sa + v1 * ca],
    ])
    return ang, corners


def expand(corners: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Grow a rectangle by dx along its baseline and dy across it, on both sides."""
    tl, tr, br, bl = corners
    ux = tr - tl
    lu = float(np.hypot(*ux)) or 1.0
    ux = ux / lu
    vy = bl - tl
    lv = float(np.hypot(*vy)) or 1.0
    vy = vy / lv
    return np.array([
        tl - ux * dx - vy * dy,
        tr + ux * dx - vy * dy,
        br + ux * dx + vy * dy,
        bl - ux * dx + vy * dy,
    ])
