"""CER and speed of exported recognizers on the validation shards.

Held-out font and training fonts, read straight from the npz shards; also the
held-out font with real-print degradations (val_real_hold) when it was rendered.

    python -m models.recipe.eval_onnx models/vi_rec_fp32.onnx models/vi_rec_int8.onnx
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import onnxruntime as ort

from appliance.bench.metrics import edit_distance
from models.recipe.train import Shards, make_batch


def run(path: Path, ds: Shards, limit: int, threads: int) -> tuple[float, float]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    idx = sorted(range(min(limit, len(ds.imgs))), key=lambda i: ds.imgs[i].shape[1])
    errs = total = 0
    secs = 0.0
    for k in range(0, len(idx), 16):
        b = idx[k:k + 16]
        x = make_batch([ds.imgs[i] for i in b]).numpy()
        t = time.perf_counter()
        logits = sess.run(None, {"image": x})[0]
        secs += time.perf_counter() - t
        best = logits.argmax(-1)
        for row, i in zip(best, b, strict=True):
            out, prev = [], 0
            for c in row.tolist():
                if c != prev and c != 0:
                    out.append(c)
                prev = c
            gt = ds.labels[i].tolist()
            errs += edit_distance(out, gt)
            total += len(gt)
    return 100.0 * errs / max(1, total), 1000.0 * secs / len(idx)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=Path("models/recipe/work/data"))
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    sets = {}
    for name in ("val_hold", "val_train", "val_real_hold"):
        if not (a.data / f"{name}.npz").exists():  # val_real_hold: gen_data --real --val
            continue
        ds = Shards()
        ds.load(a.data / f"{name}.npz")
        sets[name] = ds
    for m in a.models:
        res = {n: run(m, ds, a.limit, a.threads) for n, ds in sets.items()}
        print(m.name, " ".join(f"{n}: CER {c:.2f}% {ms:.2f} ms/line" for n, (c, ms) in res.items()))


if __name__ == "__main__":
    main()
