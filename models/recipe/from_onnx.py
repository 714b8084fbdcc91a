"""Rebuild the torch recognizer (model.py) from a shipped fp32 ONNX file.

The training checkpoints live in the git-ignored work/ folder and were not
kept, so fine-tuning starts from the weights in `models/vi_rec_fp32.onnx`.
The exporter folded each BatchNorm into its convolution (a conv with a bias),
so the BatchNorms are rebuilt from statistics of rendered lines: running
mean/var are the per-channel moments of the folded convolution's output
without its bias, gamma = sqrt(var + eps), beta = bias + mean. In eval mode
that is exactly the folded function whatever the statistics; in train mode
(batch statistics) it stays close to it, so fine-tuning does not start by
relearning the normalisation. ONNX LSTM gates are ordered i, o, f, c and
torch's i, f, g, o; the bias is ONNX's Wb then Rb.

    python -m models.recipe.from_onnx --onnx models/vi_rec_fp32.onnx \
        --out models/recipe/work/from_onnx.pt

The script checks that torch and onnxruntime agree on rendered lines and
exits non-zero when the largest logit difference exceeds --tol.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from models.recipe.charset import charset
from models.recipe.model import CRNN
from models.recipe.render import random_degrade, render_line, usable_fonts
from models.recipe.textgen import TextSource
from models.recipe.train import make_batch


def _onnx_weights(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray,
                                        np.ndarray, list[tuple[np.ndarray, ...]],
                                        np.ndarray, np.ndarray]:
    """Conv (weight, bias) pairs, proj W/b, LSTM (W, R, B) per layer, head W/b, in graph order."""
    m = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    convs, lstms, matmuls, adds = [], [], [], []
    for n in m.graph.node:
        if n.op_type == "Conv":
            convs.append((init[n.input[1]], init[n.input[2]]))
        elif n.op_type == "LSTM":
            lstms.append((init[n.input[1]], init[n.input[2]], init[n.input[3]]))
        elif n.op_type == "MatMul":
            matmuls.append(init[n.input[1]])
        elif n.op_type == "Add":
            adds.append(next(init[i] for i in n.input if i in init))
    if len(convs) != 4 or len(lstms) != 2 or len(matmuls) != 2 or len(adds) != 2:
        raise SystemExit(f"{path}: not the CRNN of model.py "
                         f"({len(convs)} conv, {len(lstms)} LSTM, {len(matmuls)} MatMul)")
    return convs, matmuls[0], adds[0], lstms, matmuls[1], adds[1]


def _gates(a: np.ndarray, h: int) -> np.ndarray:
    """ONNX gate blocks i, o, f, c -> torch i, f, g(=c), o along the first axis."""
    i, o, f, c = (a[k * h:(k + 1) * h] for k in range(4))
    return np.concatenate([i, f, c, o], axis=0)


def sample_lines(n: int, seed: int) -> list[np.ndarray]:
    rng = random.Random(seed)
    src = TextSource(seed)
    fonts = usable_fonts(False)
    return [render_line(src.line(), rng.choice(fonts), rng, random_degrade(rng))
            for _ in range(n)]


def build(path: Path, calib: list[np.ndarray]) -> CRNN:
    """The torch model with the ONNX file's weights and BatchNorms rebuilt on `calib`."""
    convs, proj_w, proj_b, lstms, head_w, head_b = _onnx_weights(path)
    model = CRNN(len(charset()) + 1)
    conv_mods = [m for m in model.cnn if isinstance(m, nn.Conv2d)]
    bn_mods = [m for m in model.cnn if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for conv, bn, (w, b) in zip(conv_mods, bn_mods, convs, strict=True):
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)  # identity while the statistics are gathered
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(np.array(b)))
        model.proj.weight.copy_(torch.from_numpy(np.array(proj_w.T)))
        model.proj.bias.copy_(torch.from_numpy(np.array(proj_b)))
        model.head.weight.copy_(torch.from_numpy(np.array(head_w.T)))
        model.head.bias.copy_(torch.from_numpy(np.array(head_b)))
        hid = model.rnn.hidden_size
        for layer, (W, R, B) in enumerate(lstms):
            for d, sfx in enumerate(("", "_reverse")):
                parts = {"weight_ih": W[d], "weight_hh": R[d],
                         "bias_ih": B[d, :4 * hid], "bias_hh": B[d, 4 * hid:]}
                for name, arr in parts.items():
                    getattr(model.rnn, f"{name}_l{layer}{sfx}").copy_(
                        torch.from_numpy(_gates(np.array(arr), hid)))
    model.eval()
    # moments of each convolution's output (no bias: the conv has none) over real-looking lines
    sums = [torch.zeros(c.out_channels, dtype=torch.float64) for c in conv_mods]
    sq = [torch.zeros(c.out_channels, dtype=torch.float64) for c in conv_mods]
    count = [0] * len(conv_mods)

    def hook(k: int):  # noqa: ANN202 - a forward hook
        def f(_m: nn.Module, _i: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            o = out.double()
            sums[k] += o.sum(dim=(0, 2, 3))
            sq[k] += (o * o).sum(dim=(0, 2, 3))
            count[k] += o.shape[0] * o.shape[2] * o.shape[3]
        return f

    handles = [c.register_forward_hook(hook(k)) for k, c in enumerate(conv_mods)]
    order = sorted(range(len(calib)), key=lambda i: calib[i].shape[1])
    with torch.no_grad():
        for k in range(0, len(order), 32):
            model(make_batch([calib[i] for i in order[k:k + 32]]))
    for h in handles:
        h.remove()
    with torch.no_grad():
        for k, bn in enumerate(bn_mods):
            mean = sums[k] / count[k]
            var = (sq[k] / count[k] - mean * mean).clamp_min(1e-6)
            bn.running_mean.copy_(mean.float())
            bn.running_var.copy_(var.float())
            bn.weight.copy_(torch.sqrt(var + bn.eps).float())
            bn.bias.add_(mean.float())
    return model


def max_diff(model: CRNN, path: Path, lines: list[np.ndarray]) -> float:
    """Largest |torch - onnxruntime| logit over the lines, batched by similar width."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
    worst = 0.0
    model.eval()
    with torch.no_grad():
        for k in range(0, len(order), 16):
            x = make_batch([lines[i] for i in order[k:k + 16]])
            ref = sess.run(None, {"image": x.numpy()})[0]
            got = model(x).numpy()
            worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", type=Path, default=Path("models/vi_rec_fp32.onnx"))
    ap.add_argument("--out", type=Path, default=Path("models/recipe/work/from_onnx.pt"))
    ap.add_argument("--calib", type=int, default=512, help="rendered lines for the BN statistics")
    ap.add_argument("--check", type=int, default=128,
                    help="rendered lines compared with onnxruntime")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = build(a.onnx, sample_lines(a.calib, seed=4242))
    diff = max_diff(model, a.onnx, sample_lines(a.check, seed=4343))
    print(f"max |torch - onnx| logit difference on {a.check} lines: {diff:.2e}", flush=True)
    if diff > a.tol:
        raise SystemExit(f"torch and ONNX disagree ({diff:.2e} > {a.tol})")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "n_classes": len(charset()) + 1,
                "charset": charset(), "source": str(a.onnx)}, a.out)
    print("saved", a.out, flush=True)


if __name__ == "__main__":
    main()
