"""Train the CRNN with CTC on pre-rendered shards, on a wall-clock budget.

The learning rate follows a cosine over *time* rather than steps so the run
ends annealed exactly at the deadline whatever the machine's load; bf16
autocast roughly doubles CPU throughput (AMX/AVX512-BF16) with no accuracy cost
measured after fp32 export. Checkpoints every few minutes make it resumable.

    nice -n 5 python -m models.recipe.train --minutes 100
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from appliance.bench.metrics import edit_distance
from models.recipe.charset import charset
from models.recipe.model import CRNN

HEIGHT = 32


class Shards:
    """All lines of the loaded shards, kept as uint8 arrays in memory."""

    def __init__(self) -> None:
        self.imgs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.loaded: set[str] = set()

    def load(self, path: Path) -> int:
        if path.name in self.loaded:
            return 0
        d = np.load(path)
        px, ws, labs, lens = d["pixels"], d["widths"], d["labels"], d["lens"]
        po, lo, n = 0, 0, 0
        for w, ln in zip(ws.tolist(), lens.tolist(), strict=True):
            img = px[po:po + HEIGHT * w].reshape(HEIGHT, w)
            lab = labs[lo:lo + ln].astype(np.int64)
            po += HEIGHT * w
            lo += ln
            if w // 4 >= 2 * ln or (w // 4 >= ln + 1 and _repeats(lab) == 0):
                self.imgs.append(img)
                self.labels.append(lab)
                n += 1
        self.loaded.add(path.name)
        return n


def _repeats(lab: np.ndarray) -> int:
    return int(np.sum(lab[1:] == lab[:-1])) if len(lab) > 1 else 0


def make_batch(imgs: list[np.ndarray]) -> torch.Tensor:
    """Pad right by repeating the last column, as the engine does at inference."""
    W = max(8, max(i.shape[1] for i in imgs))
    W = (W + 3) // 4 * 4
    out = np.empty((len(imgs), 1, HEIGHT, W), np.float32)
    for k, im in enumerate(imgs):
        p = np.pad(im, ((0, 0), (0, W - im.shape[1])), mode="edge")
        out[k, 0] = p
    return torch.from_numpy(out / 127.5 - 1.0)


def batches(ds: Shards, bs: int, rng: random.Random) -> list[list[int]]:
    order = sorted(range(len(ds.imgs)), key=lambda i: ds.imgs[i].shape[1] * rng.uniform(0.9, 1.1))
    bl = [order[i:i + bs] for i in range(0, len(order), bs)]
    rng.shuffle(bl)
    return bl


def greedy(logits: torch.Tensor) -> list[list[int]]:
    best = logits.argmax(-1).tolist()
    out = []
    for seq in best:
        s, prev = [], 0
        for c in seq:
            if c != prev and c != 0:
                s.append(c)
            prev = c
        out.append(s)
    return out


def evaluate(model: nn.Module, ds: Shards, limit: int = 600) -> float:
    model.eval()
    errs, total = 0, 0
    idx = sorted(range(min(limit, len(ds.imgs))), key=lambda i: ds.imgs[i].shape[1])
    with torch.no_grad():
        for k in range(0, len(idx), 64):
            b = idx[k:k + 64]
            pred = greedy(model(make_batch([ds.imgs[i] for i in b])).float())
            for i, p in zip(b, pred, strict=True):
                gt = ds.labels[i].tolist()
                errs += edit_distance(p, gt)
                total += len(gt)
    model.train()
    return 100.0 * errs / max(1, total)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("models/recipe/work/data"))
    ap.add_argument("--work", type=Path, default=Path("models/recipe/work"))
    ap.add_argument("--minutes", type=float, default=100.0)
    ap.add_argument("--deadline", type=float, default=0.0, help="unix time; overrides --minutes")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these weights (final.pt) with a fresh optimizer: fine-tuning")
    ap.add_argument("--bf16", action="store_true", help="only on CPUs with AMX/AVX512-BF16")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--eval-minutes", type=float, default=10.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rng = random.Random(0)
    n_classes = len(charset()) + 1
    model = CRNN(n_classes).to(memory_format=torch.channels_last)
    ckpt = a.work / "ckpt.pt"
    a.work.mkdir(parents=True, exist_ok=True)
    if a.init is not None and not ckpt.exists():
        # before the EMA copies the weights, so it starts from them too
        model.load_state_dict(torch.load(a.init, weights_only=False)["model"])
        print(f"fine-tuning from {a.init}", flush=True)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999), use_buffers=True
    )
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    step, start = 0, time.time()
    deadline = a.deadline or start + a.minutes * 60
    if ckpt.exists():
        st = torch.load(ckpt, weights_only=False)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        step, start, deadline = st["step"], st["start"], st["deadline"]
        print(f"resumed at step {step}", flush=True)
    train, vhold, vtrain = Shards(), Shards(), Shards()
    vhold.load(a.data / "val_hold.npz")
    vtrain.load(a.data / "val_train.npz")

    def refresh() -> None:
        n = sum(train.load(p) for p in sorted(a.data.glob("train_*.npz")) if ".tmp" not in p.name)
        if n:
            print(f"loaded {n} lines, total {len(train.imgs)}", flush=True)

    refresh()
    last_ckpt = last_eval = time.time()
    seen, t_log, loss_acc = 0, time.time(), 0.0
    warm = 300
    done = False
    while not done:
        for b in batches(train, a.bs, rng):
            now = time.time()
            if now >= deadline:
                done = True
                break
            frac = (now - start) / max(1.0, deadline - start)
            lr = a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
            lr *= min(1.0, (step + 1) / warm)
            for g in opt.param_groups:
                g["lr"] = lr
            x = make_batch([train.imgs[i] for i in b])
            labs = [train.labels[i] for i in b]
            tgt = torch.from_numpy(np.concatenate(labs))
            tl = torch.tensor([len(v) for v in labs])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                logits = model(x.contiguous(memory_format=torch.channels_last))
            lp = logits.float().log_softmax(-1).permute(1, 0, 2)
            il = torch.full((len(b),), lp.shape[0], dtype=torch.long)
            loss = ctc(lp, tgt, il, tl)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            ema.update_parameters(model)
            step += 1
            seen += len(b)
            loss_acc += float(loss.detach())
            if step % 100 == 0:
                dt = time.time() - t_log
                print(
                    f"step {step} loss {loss_acc / 100:.3f} lr {lr:.2e} "
                    f"{seen / dt:.0f} lines/s  {(deadline - now) / 60:.1f} min left",
                    flush=True,
                )
                seen, t_log, loss_acc = 0, time.time(), 0.0
            if time.time() - last_ckpt > a.ckpt_minutes * 60:
                torch.save(
                    {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                     "step": step, "start": start, "deadline": deadline},
                    a.work / "ckpt.tmp",
                )
                (a.work / "ckpt.tmp").replace(ckpt)
                last_ckpt = time.time()
            if time.time() - last_eval > a.eval_minutes * 60:
                print(
                    f"eval step {step} t={(time.time() - start) / 60:.1f}min "
                    f"CER holdout {evaluate(model, vhold):.2f}% train-fonts "
                    f"{evaluate(model, vtrain):.2f}% | ema {evaluate(ema.module, vhold):.2f}% "
                    f"{evaluate(ema.module, vtrain):.2f}%",
                    flush=True,
                )
                last_eval = time.time()
                refresh()
                break  # re-plan batches so new shards join
    scores = {
        "raw": (evaluate(model, vhold), evaluate(model, vtrain)),
        "ema": (evaluate(ema.module, vhold), evaluate(ema.module, vtrain)),
    }
    pick = min(scores, key=lambda k: sum(scores[k]))
    final = model if pick == "raw" else ema.module
    print(f"final {scores} -> {pick}", flush=True)
    torch.save({"model": final.state_dict(), "n_classes": n_classes, "charset": charset(),
                "scores": scores, "step": step}, a.work / "final.pt")
    print("saved", a.work / "final.pt", flush=True)


if __name__ == "__main__":
    main()
