"""OCR engines behind one interface: the local ONNX pipeline and tesseract.

OcrEngine is what the worker calls; TesseractEngine exists to measure against
(the accuracy bar named in the findings), not to ship as the default.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from appliance.ocr.detector import DetectorConfig, DetResult, TextDetector
from appliance.ocr.errors import BadImageError, OcrError
from appliance.ocr.geometry import Quad
from appliance.ocr.manifest import Manifest, default_models_dir
from appliance.ocr.orientation import (
    FLIP_AGREEMENT,
    MIN_EVIDENCE_LINES,
    FlipVote,
    evidence_lines,
    is_sideways,
    turn_quad_180,
    vote,
)
from appliance.ocr.recognizer import (
    SPLIT_GAP,
    LineReading,
    RecResult,
    TextRecognizer,
    crop_line,
    tighten_split,
)
from appliance.ocr.session import keep_large_buffers_off_the_heap

MAX_PIXELS = 60_000_000  # A4 at 600 dpi is ~35 MP; beyond this is a bomb or a mistake
MAX_SIDE = 20_000
MIN_SIDE = 16  # a page thinner than this holds no line of text: read as no lines
# What the detector finds in a texture, a photo or a seal's curved letters reads as
# one to four characters at 0.07-0.85 confidence (measured on generated noise photos
# and a seal-only page). Two rules keep it from being reported as text:
# - a line read with a mean character confidence under MIN_LINE_CONFIDENCE is dropped
#   (on 24 real pages this drops 136 wrongly read characters and 50 right ones);
# - a page where no line has MIN_TEXT_CHARS characters read at MIN_TEXT_CONFIDENCE
#   holds no text at all (the junk above peaks at 0.61 for 3 characters; a real page
#   has dozens of such lines), so it is read as no lines.
MIN_LINE_CONFIDENCE = 0.5
MIN_TEXT_CHARS = 3
MIN_TEXT_CONFIDENCE = 0.75


def keep_line(r: LineReading) -> bool:
    """Whether a recognized line is reported: it has text and the model was sure enough."""
    return bool(r.text.strip()) and r.confidence >= MIN_LINE_CONFIDENCE


# A seal or a signature the detector boxes as one "line" is a blob far taller than the
# page's lines and about as wide as it is high; squashed to the recognizer's height it
# reads as one to four characters ("C", "Na7") at up to ~0.65 confidence, above
# MIN_LINE_CONFIDENCE. A line of print that tall is at least a few characters wide.
BLOB_HEIGHT_OVER_MEDIAN = 2.5
BLOB_MAX_ASPECT = 2.0
BLOB_MAX_CHARS = 4


def not_text_blobs(pairs: list[tuple[Quad, LineReading]]) -> set[int]:
    """Indexes of readings whose box is a blob (seal, signature), not a line of print."""
    heights = sorted(q.height for q, _ in pairs)
    if not heights:
        return set()
    median = heights[len(heights) // 2]
    return {i for i, (q, r) in enumerate(pairs)
            if q.height > BLOB_HEIGHT_OVER_MEDIAN * median
            and q.width < BLOB_MAX_ASPECT * q.height
            and len(r.text.replace(" ", "")) <= BLOB_MAX_CHARS}


def holds_text(lines: tuple[LineReading, ...]) -> bool:
    """Whether a page shows any evidence of text: one line of a few confident characters."""
    return any(len(r.text.replace(" ", "")) >= MIN_TEXT_CHARS
               and r.confidence >= MIN_TEXT_CONFIDENCE for r in lines)


@dataclass(frozen=True)
class TextLine:
    text: str
    box: tuple[int, int, int, int]
    confidence: float
    char_confidences: tuple[float, ...]

    @property
    def least_sure(self) -> float:
        """The weakest character decides whether a value needs a human look."""
        return min(self.char_confidences, default=1.0)

    def to_json(self, *, with_least_sure: bool = True) -> dict[str, Any]:
        """The line as a JSON object; the one place its stored and printed form is made.

        Only the least sure character is kept, not every character's confidence: it is
        what flags a doubtful value, and a page's JSON stays small. The `appliance ocr`
        CLI leaves it out (`with_least_sure=False`), as its output always has.
        """
        out: dict[str, Any] = {"text": self.text, "box": list(self.box),
                               "confidence": round(self.confidence, 4)}
        if with_least_sure and self.char_confidences:
            out["min_char_confidence"] = round(self.least_sure, 4)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TextLine:
        """Parse what `to_json` wrote. A line stored before the least sure character
        was kept has no character confidences (`char_confidences == ()`)."""
        least = obj.get("min_char_confidence")
        x0, y0, x1, y1 = (int(v) for v in obj["box"])
        return cls(text=str(obj["text"]), box=(x0, y0, x1, y1),
                   confidence=float(obj["confidence"]),
                   char_confidences=() if least is None else (float(least),))


@dataclass(frozen=True)
class PageText:
    seconds: float
    lines: tuple[TextLine, ...]
    rotation: int = 0  # degrees the page was turned (counter-clockwise) before reading
    # seconds per stage (detect, crop, recognize); the benchmark reports them so a
    # recognizer's int8 speed-up is visible even when detection dominates a page
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self, *, with_least_sure: bool = True) -> dict[str, Any]:
        """The page as a JSON object: what the worker stores for a page and the CLI prints."""
        out: dict[str, Any] = {
            "seconds": round(self.seconds, 4),
            "rotation": self.rotation,
            "lines": [ln.to_json(with_least_sure=with_least_sure) for ln in self.lines],
        }
        if self.stage_seconds:
            out["stage_seconds"] = {k: round(v, 4) for k, v in self.stage_seconds.items()}
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PageText:
        """Parse what `to_json` wrote; pages stored with only their lines read as 0 s."""
        return cls(
            seconds=float(obj.get("seconds", 0.0)),
            lines=tuple(TextLine.from_json(ln) for ln in obj["lines"]),
            rotation=int(obj.get("rotation", 0)),
            stage_seconds={str(k): float(v) for k, v in obj.get("stage_seconds", {}).items()},
        )

    @property
    def text(self) -> str:
        """The page's text, one line per line, in reading order."""
        return "\n".join(ln.text for ln in self.lines)


class Engine(Protocol):
    name: str

    def read(self, image: Image.Image) -> PageText: ...


def check_image(image: object) -> Image.Image:
    """Reject what cannot be a scanned page before any model sees it."""
    if not isinstance(image, Image.Image):
        raise BadImageError(f"not an image: {type(image).__name__}")
    w, h = image.size
    if w == 0 or h == 0:
        raise BadImageError("empty image (0 pixels)")
    if w * h > MAX_PIXELS or max(w, h) > MAX_SIDE:
        raise BadImageError(f"image too large: {w}x{h} pixels (limit {MAX_PIXELS} pixels)")
    return image


def open_image(path: Path) -> Image.Image:
    """Open and fully decode a file, mapping every failure to BadImageError."""
    try:
        with Image.open(path) as im:
            check_image(im)  # header only: refuse bombs before decoding
            im.load()  # decoded now; leaving the block only closes the file
            return im  # no copy: a second copy of an A4 page at 300 dpi is 26 MB of peak
    except BadImageError as e:
        raise BadImageError(f"{path}: {e}") from e
    except Image.DecompressionBombError as e:
        raise BadImageError(f"{path}: image too large ({e})") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise BadImageError(f"{path}: unreadable image ({e})") from e


T = TypeVar("T")


def reading_order(items: list[tuple[Quad, T]], angle: float = 0.0) -> list[tuple[Quad, T]]:
    """Top-to-bottom rows, left-to-right within a row; a row is boxes whose centres align.

    Centres are measured in the page's deskewed frame (angle = its skew), so a
    label at the left margin and its value across the page stay in one row
    even when the scan is a degree off.
    """
    if not items:
        return []
    ca, sa = math.cos(angle), math.sin(angle)

    def across(q: Quad) -> float:
        x, y = q.center()
        return -x * sa + y * ca

    def along(q: Quad) -> float:
        x, y = q.center()
        return x * ca + y * sa

    items = sorted(items, key=lambda it: across(it[0]))
    rows: list[list[tuple[Quad, T]]] = []
    for it in items:
        cy = across(it[0])
        h = max(4.0, it[0].height)
        if rows:
            row = rows[-1]
            ry = sum(across(r[0]) for r in row) / len(row)
            rh = max(4.0, min(r[0].height for r in row))
            if abs(cy - ry) < 0.5 * min(h, rh):
                row.append(it)
                continue
        rows.append([it])
    out: list[tuple[Quad, T]] = []
    for row in rows:
        out.extend(sorted(row, key=lambda r: along(r[0])))
    return out


class OcrEngine:
    """Detection -> orientation -> recognition, one onnxruntime session per stage."""

    name = "onnx"

    def __init__(
        self,
        manifest: Manifest,
        detector: TextDetector,
        recognizer: TextRecognizer,
        used: list[str],
    ) -> None:
        self.manifest = manifest
        self.detector = detector
        self.recognizer = recognizer
        self._used = used
        self.split_gap = SPLIT_GAP  # 0 keeps every detector box whole (see tighten_split)

    @classmethod
    def load(
        cls,
        models_dir: Path | None = None,
        threads: int = 2,
        recognizer: str = "int8",
        detector_config: DetectorConfig | None = None,
    ) -> OcrEngine:
        mdir = Path(models_dir) if models_dir is not None else default_models_dir()
        manifest = Manifest.load(mdir)
        keep_large_buffers_off_the_heap()
        # The int8 pipeline uses an int8 detector when the manifest has one.
        det_e = next((e for e in manifest.entries
                      if e.role == "detector" and e.variant == recognizer), None)
        det_e = det_e or manifest.find("detector", "fp32")
        rec_e = manifest.find("recognizer", recognizer)
        used = [det_e.name, rec_e.name]
        det = TextDetector(det_e.verified_path(mdir), threads, detector_config)
        rec = TextRecognizer(rec_e.verified_path(mdir), rec_e.charset, threads)
        # The manifest's line classifier is not loaded: orientation is decided by the
        # recognizer itself (appliance/ocr/orientation.py says why).
        engine = cls(manifest, det, rec, used)
        engine.name = f"onnx-{recognizer}"
        return engine

    def models(self) -> list[dict[str, str]]:
        return [
            {"name": e.name, "file": e.file, "sha256": e.sha256}
            for e in self.manifest.entries
            if e.name in self._used
        ]

    def _detect(self, gray: Image.Image) -> tuple[Image.Image, DetResult, int]:
        """Detect lines, turning a page that lies sideways a quarter turn first."""
        det = self.detector(gray)
        if is_sideways(det.quads):
            gray = gray.transpose(Image.Transpose.ROTATE_90)
            return gray, self.detector(gray), 90
        return gray, det, 0

    def _flip_vote(self, crops: list[np.ndarray], upright: RecResult) -> FlipVote:
        """Read the evidence lines turned 180 degrees and compare with how they read as cut.

        The first half is read first: when so many of them prefer the reading as cut
        that the rest could not reach FLIP_AGREEMENT even all preferring the turned
        one, the decision is already "not turned" and the other half (the costliest
        crops: the widest lines) is not read. The decision is the one all of them
        would give; an upright page costs half the turned readings.
        """
        idx = evidence_lines(crops)
        if len(idx) < MIN_EVIDENCE_LINES:
            return vote([], [])
        up = [upright.lines[i].frame_score for i in idx]
        first = idx[: max(MIN_EVIDENCE_LINES, len(idx) // 2)]
        turned = [r.frame_score for r in self.recognizer(
            [np.ascontiguousarray(crops[i][::-1, ::-1]) for i in first]).lines]
        rest = idx[len(first):]
        if rest:
            prefer_turned = sum(t > u for t, u in zip(turned, up, strict=False))
            if prefer_turned + len(rest) < FLIP_AGREEMENT * len(idx):
                return vote(up[: len(first)], turned)
            turned += [r.frame_score for r in self.recognizer(
                [np.ascontiguousarray(crops[i][::-1, ::-1]) for i in rest]).lines]
        return vote(up, turned)

    def _read_columns(self, gray: Image.Image, tight: list[tuple[Quad, list[Quad]]],
                      readings: list[tuple[Quad, LineReading]], flipped: bool
                      ) -> list[tuple[Quad, LineReading]]:
        """Boxes that hold two columns (tighten_split) read again, one line per column.

        Orientation is decided on the whole boxes first: the widest lines are its
        best evidence, and cutting them changed the decision on a curved phone
        photo. Such boxes are rare (3 of 1,231 on the real corpus), so reading
        their pieces again costs next to nothing.
        """
        split = {i for i, (_, pieces) in enumerate(tight) if len(pieces) > 1}
        if not split or not readings:
            return readings
        w, h = gray.size
        quads: list[Quad] = []
        crops: list[np.ndarray] = []
        for i in sorted(split):
            for piece in tight[i][1]:
                crop = crop_line(gray, piece)
                if flipped:
                    piece = turn_quad_180(piece, w, h)
                    crop = np.ascontiguousarray(crop[::-1, ::-1])
                quads.append(piece)
                crops.append(crop)
        kept = [qr for i, qr in enumerate(readings) if i not in split]
        return kept + list(zip(quads, self.recognizer(crops).lines, strict=True))

    def read(self, image: Image.Image) -> PageText:
        t0 = time.perf_counter()
        check_image(image)
        if min(image.size) < MIN_SIDE:  # a strip too thin to hold a line of text
            return PageText(time.perf_counter() - t0, (), 0, {})
        gray = image.convert("L")
        gray, det, rotation = self._detect(gray)
        t_det = time.perf_counter()
        tight = [tighten_split(gray, q, split_gap=self.split_gap) for q in det.quads]
        quads = [whole for whole, _ in tight]
        crops = [crop_line(gray, q) for q in quads]
        t_crop = time.perf_counter()
        rec = self.recognizer(crops) if crops else None
        t_rec = time.perf_counter()
        flipped = rec is not None and self._flip_vote(crops, rec).upside_down
        if rec is not None and flipped:
            w, h = gray.size
            quads = [turn_quad_180(q, w, h) for q in quads]
            crops = [np.ascontiguousarray(c[::-1, ::-1]) for c in crops]
            rec = self.recognizer(crops)
            rotation = (rotation + 180) % 360
        t_orient = time.perf_counter()
        readings = list(zip(quads, rec.lines, strict=True)) if rec is not None else []
        readings = self._read_columns(gray, tight, readings, flipped)
        t_cols = time.perf_counter()
        pairs: list[tuple[Quad, LineReading]] = []
        if holds_text(tuple(r for _, r in readings)):
            blobs = not_text_blobs(readings)
            pairs = [(q, r) for i, (q, r) in enumerate(readings)
                     if keep_line(r) and i not in blobs]
        lines = [TextLine(r.text, q.bbox(), r.confidence, r.char_confidences)
                 for q, r in reading_order(pairs, det.angle)]
        stages = {"detect": t_det - t0, "crop": t_crop - t_det,
                  "recognize": (t_rec - t_crop) + (t_cols - t_orient), "orient": t_orient - t_rec}
        return PageText(time.perf_counter() - t0, tuple(lines), rotation, stages)


class TesseractEngine:
    """tesseract -l vie, single-threaded (OMP_THREAD_LIMIT=1: 10x faster here)."""

    name = "tesseract"

    def __init__(self, lang: str = "vie", psm: int = 3) -> None:
        exe = shutil.which("tesseract")
        if exe is None:
            raise OcrError("tesseract is not installed (Debian: tesseract-ocr tesseract-ocr-vie)")
        self.exe = exe
        self.lang = lang
        self.psm = psm

    def models(self) -> list[dict[str, str]]:
        return [{"name": f"tesseract-{self.lang}", "file": self.exe, "sha256": ""}]

    def read(self, image: Image.Image) -> PageText:
        t0 = time.perf_counter()
        check_image(image)
        if min(image.size) < MIN_SIDE:  # as OcrEngine: no text, not an error
            return PageText(time.perf_counter() - t0, ())
        buf = io.BytesIO()
        image.convert("L").save(buf, format="PNG")
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        proc = subprocess.run(
            [self.exe, "stdin", "stdout", "-l", self.lang, "--psm", str(self.psm), "tsv"],
            input=buf.getvalue(), capture_output=True, env=env, timeout=300, check=False,
        )
        if proc.returncode != 0:
            raise OcrError(f"tesseract failed: {proc.stderr.decode(errors='replace')[-300:]}")
        groups: dict[tuple[str, ...], list[list[str]]] = {}
        for row in proc.stdout.decode("utf-8", errors="replace").splitlines()[1:]:
            f = row.split("\t")
            if len(f) < 12 or f[0] != "5" or not f[11].strip():
                continue
            groups.setdefault((f[1], f[2], f[3], f[4]), []).append(f)
        lines: list[tuple[Quad, TextLine]] = []
        for words in groups.values():
            text = unicodedata.normalize("NFC", " ".join(w[11].strip() for w in words))
            x0 = min(int(w[6]) for w in words)
            y0 = min(int(w[7]) for w in words)
            x1 = max(int(w[6]) + int(w[8]) for w in words)
            y1 = max(int(w[7]) + int(w[9]) for w in words)
            confs = [max(0.0, float(w[10])) / 100 for w in words]
            chars = tuple(c for w, cf in zip(words, confs, strict=True)
                          for c in [cf] * len(w[11].strip()))
            quad = Quad(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), 1.0)
            lines.append((quad, TextLine(text, (x0, y0, x1, y1), sum(confs) / len(confs), chars)))
        ordered = tuple(t for _, t in reading_order(lines))
        return PageText(time.perf_counter() - t0, ordered)
