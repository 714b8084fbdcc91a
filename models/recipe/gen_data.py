"""Pre-render training and validation lines into shards (npz) under work/data.

Rendering is done once up front (or trickled in by a low-priority process while
training runs) because on 2 cores rendering on the fly would halve the
training throughput.

    python -m models.recipe.gen_data --out models/recipe/work/data --shards 0:40 --procs 2
"""

from __future__ import annotations

import argparse
import random
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from models.recipe.charset import charset
from models.recipe.realprint import render_real_line
from models.recipe.render import random_degrade, render_line, usable_fonts
from models.recipe.textgen import TextSource

SHARD_LINES = 4000
# In a --real shard this share of lines goes through realprint.render_real_line (real-print
# degradations); the rest through render.render_line, so clean text keeps being seen.
REAL_RENDER_SHARE = 0.75


def make_shard(args: tuple[Path, str, int, int, bool, bool]) -> str:
    out, name, seed, n, holdout, real = args
    path = out / f"{name}.npz"
    if path.exists():
        return str(path)
    idx = {c: i + 1 for i, c in enumerate(charset())}
    fonts = usable_fonts(holdout)
    rng = random.Random(seed)
    src = TextSource(seed, real=real)
    imgs, widths, labels, lens = [], [], [], []
    for _ in range(n):
        text = src.line()
        if real and rng.random() < REAL_RENDER_SHARE:
            arr = render_real_line(text, rng.choice(fonts), rng)
        else:
            arr = render_line(text, rng.choice(fonts), rng, random_degrade(rng))
        lab = [idx[c] for c in text]
        imgs.append(arr.reshape(-1))
        widths.append(arr.shape[1])
        labels.extend(lab)
        lens.append(len(lab))
    tmp = out / f"{name}.tmp.npz"
    np.savez(
        tmp,
        pixels=np.concatenate(imgs),
        widths=np.array(widths, np.int32),
        labels=np.array(labels, np.int16),
        lens=np.array(lens, np.int16),
    )
    tmp.rename(path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("models/recipe/work/data"))
    ap.add_argument("--shards", default="0:40", help="range a:b of training shard numbers")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--val", action="store_true", help="also make the two validation shards")
    ap.add_argument("--real", action="store_true",
                    help="real-print shards (train_real_NNNN: realprint.py degradations, "
                         "headings and look-alike marks weighted up) and, with --val, "
                         "val_real_hold (held-out font)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    lo, hi = (int(x) for x in a.shards.split(":"))
    jobs: list[tuple[Path, str, int, int, bool, bool]] = []
    if a.val and not a.real:
        jobs.append((a.out, "val_hold", 900001, 1000, True, False))
        jobs.append((a.out, "val_train", 900002, 1000, False, False))
    if a.val and a.real:
        jobs.append((a.out, "val_real_hold", 900003, 1000, True, True))
    if a.real:
        jobs += [(a.out, f"train_real_{i:04d}", 50000 + i, SHARD_LINES, False, True)
                 for i in range(lo, hi)]
    else:
        jobs += [(a.out, f"train_{i:04d}", 1000 + i, SHARD_LINES, False, False)
                 for i in range(lo, hi)]
    t0 = time.time()
    if a.procs <= 1:  # one process: no pool, nothing forked on a shared machine
        for job in jobs:
            print(f"{time.time() - t0:7.1f}s {make_shard(job)}", flush=True)
        return
    with Pool(a.procs) as pool:
        for p in pool.imap_unordered(make_shard, jobs):
            print(f"{time.time() - t0:7.1f}s {p}", flush=True)


if __name__ == "__main__":
    main()
