"""CTC line recognizer: crops from the page, batched by width, greedy decoding, then
words that are no Vietnamese syllable respelled by their look-alike marks (fix_words).

Lines are sorted by width and batched so padding stays small (padding is pure
wasted compute on a 2-core CPU); each crop is cut, straightened and scaled to
the model height in one PIL transform, so full-resolution pixels are
resampled exactly once.
"""

from __future__ import annotations

import functools
import math
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
    # mean log-probability of the best symbol over every frame, blanks included: how
    # sure the model is of the whole line, so it also tells an upside-down line (whose
    # few emitted characters may each look confident) from an upright one
    frame_score: float = 0.0


@dataclass(frozen=True)
class RecResult:
    lines: tuple[LineReading, ...]
    seconds: float


PROBE_HEIGHT = 48


def _pil_quad(quad: Quad) -> tuple[float, ...]:
    """PIL wants upper-left, lower-left, lower-right, upper-right; Quad is TL, TR, BR, BL."""
    tl, tr, br, bl = quad.points
    return (*tl, *bl, *br, *tr)


RULE_RUN = 36  # probe pixels: longer than any letter stroke at PROBE_HEIGHT
VRULE_RUN = 38  # vertical: taller than a stacked-accent capital in a generous box
MIN_INK_ROWS = 7  # thinner than this is a rule or a speck, not a line of text


def _long_runs(ink: np.ndarray, length: int) -> np.ndarray:
    """Pixels that belong to a horizontal ink run of at least `length` pixels.

    Only rows holding `length` ink pixels in all can hold such a run: the running
    sums are taken over those alone (on a text line, a few rows for the horizontal
    probe and almost no columns for the vertical one; this was a third of the
    per-line cropping time when every row was summed)."""
    out = np.zeros(ink.shape, dtype=bool)
    w = ink.shape[1]
    if w < length:
        return out
    rows = np.flatnonzero(np.count_nonzero(ink, axis=1) >= length)
    if rows.size == 0:
        return out
    sub = ink[rows]
    cs = np.zeros((rows.size, w + 1), np.int32)
    np.cumsum(sub, axis=1, out=cs[:, 1:])
    full = (cs[:, length:] - cs[:, :-length]) == length  # window starting at x is all ink
    cov = np.zeros((rows.size, w + 1), np.int32)
    cov[:, : w - length + 1] += full
    cov[:, length : w + 1] -= full
    out[rows] = np.cumsum(cov, axis=1)[:, :w] > 0
    return out


def _ink_span(prof: np.ndarray, max_gap: int) -> tuple[int, int] | None:
    """The run of inked rows around the densest one, bridging gaps of up to max_gap rows.

    Accents sit a pixel or two above their letters; a neighbouring line's
    descenders are further away, so a small gap limit keeps the first and drops
    the second.
    """
    if prof.max() <= 0:
        return None
    seed = int(prof.argmax())
    inked = prof > 0
    lo = hi = seed
    gap = 0
    i = seed - 1
    while i >= 0:
        gap = 0 if inked[i] else gap + 1
        if gap > max_gap:
            break
        if inked[i]:
            lo = i
        i -= 1
    gap = 0
    i = seed + 1
    while i < len(prof):
        gap = 0 if inked[i] else gap + 1
        if gap > max_gap:
            break
        if inked[i]:
            hi = i
        i += 1
    return lo, hi


# A run of blank columns this many ink heights wide inside one detector box is a gap
# between columns (a label and its value, the two halves of a letter's header), not a
# space between words: justified text stretches those to ~1 height. Both sides must
# be at least MIN_PIECE heights wide, so a speck or a lone mark is never cut off.
SPLIT_GAP = 2.5
MIN_PIECE = 1.5


def tighten(gray: Image.Image, quad: Quad, margin: float = 0.12) -> Quad:
    """Shrink a detector box to the ink it holds plus a margin like the training crops had.

    The detector's boxes are generous and off-centre (its kernels sit on the
    x-height band), while the recognizer learned on crops where the ink fills
    most of the height; matching that framing matters more than any threshold.
    """
    return tighten_split(gray, quad, margin, split_gap=0.0)[0]


def _column_pieces(inked: np.ndarray, ink_h: int, split_gap: float) -> list[tuple[int, int]]:
    """Inked column spans of a line, cut at blank gaps wider than split_gap ink heights."""
    cols = np.nonzero(inked)[0]
    pieces = [(int(cols[0]), int(cols[-1]))]
    if split_gap <= 0 or len(cols) < 2:
        return pieces
    gaps = np.nonzero(np.diff(cols) > split_gap * ink_h)[0]
    out: list[tuple[int, int]] = []
    start = int(cols[0])
    for g in gaps:
        left_end, right_start = int(cols[g]), int(cols[g + 1])
        if (left_end - start + 1 >= MIN_PIECE * ink_h
                and int(cols[-1]) - right_start + 1 >= MIN_PIECE * ink_h):
            out.append((start, left_end))
            start = right_start
    out.append((start, int(cols[-1])))
    return out


def tighten_split(gray: Image.Image, quad: Quad, margin: float = 0.12,
                  split_gap: float = SPLIT_GAP) -> tuple[Quad, list[Quad]]:
    """The tightened box (as tighten()) and its columns: one box per column of text.

    The detector joins a label and its value, or the two halves of a letter's
    header, into one box when they share a row: they are two lines to whoever
    reads the page (and to the record fields), so a wide gap of blank paper
    cuts them apart (SPLIT_GAP). A box without such a gap is its only column.
    """
    h = max(1.0, quad.height)
    pw = int(min(1600, max(8, round(quad.width * PROBE_HEIGHT / h))))
    a = np.asarray(gray.transform((pw, PROBE_HEIGHT), Image.QUAD, _pil_quad(quad), Image.BILINEAR),
                   dtype=np.int16)
    bg = int(np.percentile(a, 75))
    fg = int(a.min())
    if bg - fg < 40:
        return quad, [quad]
    ink = a < (bg + fg) // 2
    # Form rules crossing the box are not text. Blur, noise and a slight tilt break
    # a rule into pieces, so runs are looked for on a 1-pixel dilation of the ink.
    grown = ink.copy()
    grown[:, 1:] |= ink[:, :-1]
    grown[:, :-1] |= ink[:, 1:]
    grown[1:] |= ink[:-1]
    grown[:-1] |= ink[1:]
    rules = _long_runs(grown, RULE_RUN) | _long_runs(grown.T, VRULE_RUN).T
    ink &= ~rules
    # what is left of a rule after the runs are cut: columns inked nearly top to bottom
    ink[:, ink.mean(axis=0) > 0.6] = False
    prof = ink.sum(axis=1).astype(np.int32)
    prof[prof < 2] = 0  # single specks of noise do not make a row of text
    span = _ink_span(prof, max_gap=3)
    if span is None or span[1] - span[0] < MIN_INK_ROWS:
        return quad, [quad]
    y0, y1 = span
    inked = ink[y0:y1 + 1].any(axis=0)
    if not inked.any():
        return quad, [quad]
    ink_h = y1 - y0 + 1
    m = margin * ink_h
    t0 = max(0.0, (y0 - m) / PROBE_HEIGHT)
    t1 = min(1.0, (y1 + 1 + m) / PROBE_HEIGHT)
    tl, tr, br, bl = (np.array(p, dtype=np.float64) for p in quad.points)

    def at(s: float, t: float) -> tuple[float, float]:
        top = tl + (tr - tl) * s
        bot = bl + (br - bl) * s
        x, y = top + (bot - top) * t
        return (float(x), float(y))

    def box(c0: int, c1: int) -> Quad:
        s0 = max(0.0, (c0 - 2 * m) / pw)
        s1 = min(1.0, (c1 + 1 + 2 * m) / pw)
        return Quad((at(s0, t0), at(s1, t0), at(s1, t1), at(s0, t1)), quad.score)

    pieces = _column_pieces(inked, ink_h, split_gap)
    whole = box(pieces[0][0], pieces[-1][1])
    return whole, ([whole] if len(pieces) == 1 else [box(c0, c1) for c0, c1 in pieces])


def crop_line(gray: Image.Image, quad: Quad, height: int = HEIGHT) -> np.ndarray:
    """Straightened crop of one box, scaled to `height` rows, as uint8."""
    w = max(1.0, quad.width)
    h = max(1.0, quad.height)
    out_w = int(min(MAX_WIDTH, max(8, round(w * height / h))))
    # Enlarging a small line (75-150 dpi scans, phone photos) bicubically keeps its
    # strokes and marks sharper: on 9 such real pages line CER 16.0 -> 15.6 %
    # (7 better, 2 slightly worse). Shrinking stays bilinear, as in training.
    resample = Image.BICUBIC if h < height else Image.BILINEAR
    img = gray.transform((out_w, height), Image.QUAD, _pil_quad(quad), resample=resample)
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


# Look-alike marks (ể/ễ, ổ/ỗ, ề/è, d/đ ...) are the recognizer's commonest misreads on
# real print. A word the decoder reads that is no Vietnamese syllable ("triễn",
# "điễm", "thễ") is replaced by the likeliest spelling, by the model's own
# probabilities at the frames where its letters were read, that differs only in the
# marks of its vowels (or d/đ) and is a syllable. A word that has no such spelling
# (a name, a code, an abbreviation) is left as read. The syllable list is the
# system's hunspell-vi dictionary (`hunspell-vi`, GPL-2: read at run time when
# installed, never copied into this repository); without it nothing changes.
# Measured (shipped int8 model): 36 real corpus pages, line CER 5.91 -> 5.46 %
# (32 upright pages, mean per page 5.82 -> 5.38 %); generated pages 0.49 -> 0.42 %.
# A word outside the list (a rare place name: "Xốm") can be turned into one.
SYLLABLE_LISTS = (Path("/usr/share/hunspell/vi_VN.dic"),)
LEXICON_FIX = True
ALT_PER_CHAR = 8  # likeliest spellings tried per letter
MIN_ALT_P = 1e-6  # a spelling the model gave less than this at the frame is not tried
MAX_WORD = 7  # letters in the longest syllable ("nghiêng"); longer tokens stay as read
# Tilde and hook above are the look-alike pair (ể/ễ, ổ/ỗ, ủ/ũ): trading one for the
# other costs log(10) less than another change of mark ("triễn" -> "triển", not
# "triền"). Chosen on the real corpus itself (5.51 -> 5.46 %): the one tuned figure.
LOOKALIKE_BONUS = 2.3
_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")
_HOOK_TILDE = frozenset({"\u0309", "\u0303"})
_NO_TONE = {ord(t): None for t in _TONES}


def _base(ch: str) -> str:
    """A letter without any mark, đ as d."""
    d = unicodedata.normalize("NFD", ch)
    return "".join(c for c in d if unicodedata.category(c) != "Mn").replace(
        "đ", "d").replace("Đ", "D")


def _bases(word: str) -> str:
    return "".join(_base(c) for c in word)


def _spellings(word: str) -> set[str]:
    """A syllable in lower case with its tone mark on each of its vowels in turn:
    'khóa' and 'khoá' (new and old tone placement) are both read as written."""
    d = unicodedata.normalize("NFD", word.lower())
    tones = [c for c in d if c in _TONES]
    bare = unicodedata.normalize("NFC", d.translate(_NO_TONE))
    if len(tones) != 1:
        return {bare} if not tones else set()
    return {bare[:k] + unicodedata.normalize("NFC", bare[k] + tones[0]) + bare[k + 1:]
            for k, ch in enumerate(bare) if _base(ch) in "aeiouy"}


@functools.cache
def syllables() -> dict[str, tuple[str, ...]]:
    """Every spelling of every syllable, by its letters without marks."""
    for path in SYLLABLE_LISTS:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        by_base: dict[str, set[str]] = {}
        for ln in lines[1:]:
            for sp in _spellings(ln.split("/")[0].strip()):
                if sp:
                    by_base.setdefault(_bases(sp), set()).add(sp)
        return {b: tuple(sorted(v)) for b, v in by_base.items()}
    return {}


@functools.cache
def _families(charset: str) -> dict[str, tuple[int, ...]]:
    """For each vowel (or d/đ) of the charset, the output indices of every letter with
    the same base and case: the spellings a look-alike mark could hide."""
    groups: dict[str, list[int]] = {}
    for i, ch in enumerate(charset):
        b = _base(ch)
        if ch.isalpha() and len(b) == 1 and b.lower() in "aeiouyd":
            groups.setdefault(b, []).append(i + 1)
    return {ch: tuple(groups[_base(ch)]) for ch in charset
            if ch.isalpha() and len(_base(ch)) == 1 and len(groups.get(_base(ch), ())) > 1}


def _lookalike(a: str, b: str) -> bool:
    """a and b differ only by a hook above against a tilde."""
    da, db = unicodedata.normalize("NFD", a), unicodedata.normalize("NFD", b)
    return ({c for c in da + db if c in _TONES} == _HOOK_TILDE
            and da.translate(_NO_TONE) == db.translate(_NO_TONE))


def fix_words(chars: list[str], frames: list[int], p: np.ndarray, charset: str
              ) -> tuple[list[str], dict[int, float]]:
    """Replace each non-syllable word by its likeliest look-alike spelling that is a
    syllable; returns the characters and the new confidence of each changed one."""
    lex = syllables()
    out = list(chars)
    changed: dict[int, float] = {}
    if not lex:
        return out, changed
    fam = _families(charset)
    i = 0
    while i < len(chars):
        if not chars[i].isalpha():
            i += 1
            continue
        j = i
        while j < len(chars) and chars[j].isalpha():
            j += 1
        word = "".join(chars[i:j])
        low = word.lower()
        spellings = lex.get(_bases(low), ()) if j - i <= MAX_WORD else ()
        marked = [k for k in range(i, j) if chars[k] in fam]
        if not marked or low in spellings or len(low) != j - i:
            i = j
            continue
        options: list[dict[str, tuple[float, float]]] = []
        for k in marked:
            f = fam[chars[k]]
            pr = p[frames[k], list(f)]
            opts = {}
            for o in np.argsort(-pr)[:ALT_PER_CHAR]:
                c = charset[f[o] - 1]
                if pr[o] >= MIN_ALT_P or c == chars[k]:
                    bonus = LOOKALIKE_BONUS if _lookalike(c, chars[k]) else 0.0
                    opts[c.lower()] = (math.log(max(float(pr[o]), 1e-12)) + bonus, float(pr[o]))
            options.append(opts)
        best: tuple[float, str] | None = None
        for cand in spellings:
            score = 0.0
            for n, k in enumerate(marked):
                got = options[n].get(cand[k - i])
                if got is None:
                    break
                score += got[0]
            else:
                if best is None or score > best[0]:
                    best = (score, cand)
        if best is not None:
            for n, k in enumerate(marked):
                c = best[1][k - i]
                c = c.upper() if chars[k].isupper() else c
                if c != chars[k]:
                    out[k] = c
                    changed[k] = options[n][c.lower()][1]
        i = j
    return out, changed


class TextRecognizer:
    """Owns the recognizer session and the charset its output layer indexes."""

    def __init__(self, model: Path, charset: str, threads: int, max_batch: int = 16) -> None:
        self.session = make_session(model, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.charset = charset
        self.max_batch = max_batch
        if LEXICON_FIX:
            syllables()  # read once here (~0.1 s), not inside the first page's time

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
        frame_score = float(np.log(np.maximum(p.max(axis=1), 1e-12)).mean()) if len(p) else -99.0
        chars: list[str] = []
        confs: list[float] = []
        frames: list[int] = []  # the frame where each character is surest
        prev = 0
        for t, c in enumerate(best.tolist()):
            if c != 0 and c != prev:
                chars.append(self.charset[c - 1] if c - 1 < len(self.charset) else "")
                confs.append(float(p[t, c]))
                frames.append(t)
            elif c != 0 and c == prev and confs and p[t, c] > confs[-1]:
                confs[-1] = float(p[t, c])
                frames[-1] = t
            prev = c
        if LEXICON_FIX:
            chars, changed = fix_words(chars, frames, p, self.charset)
            for k, conf in changed.items():
                confs[k] = conf  # the model's own, low, belief in the new spelling
        text = "".join(chars)
        # trim spaces the CTC emits at the ends, with their confidences
        while text.startswith(" "):
            text, confs = text[1:], confs[1:]
        while text.endswith(" "):
            text, confs = text[:-1], confs[:-1]
        text = unicodedata.normalize("NFC", text)
        conf = float(np.mean(confs)) if confs else 0.0
        return LineReading(text, conf, tuple(round(c, 4) for c in confs), frame_score)
