"""Export the trained recognizer to ONNX (fp32) and a static-QDQ int8 copy.

Quantization follows the findings: dynamic int8 was slower (ConvInteger slow
path) and percentile calibration broke on variable-width input, so this uses
static QDQ, MinMax calibration, per-channel weights, after onnxruntime's
pre-processing, quantizing the convolutions and matrix products and leaving
the LSTMs in fp32. Calibration uses freshly rendered lines of many widths.

    python -m models.recipe.export --ckpt models/recipe/work/final.pt --out models
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from models.recipe.charset import charset
from models.recipe.model import CRNN
from models.recipe.render import random_degrade, render_line, usable_fonts
from models.recipe.textgen import TextSource

HEIGHT = 32


def load_model(ckpt: Path) -> CRNN:
    st = torch.load(ckpt, map_location="cpu", weights_only=False)
    model = CRNN(len(charset()) + 1)
    if "ema" in st and "model" in st and "n_classes" not in st:
        # a training checkpoint: prefer the EMA weights
        sd = {k.removeprefix("module."): v for k, v in st["ema"].items() if k != "n_averaged"}
    else:
        sd = st["model"]
    model.load_state_dict(sd)
    return model.eval()


def export_fp32(model: CRNN, path: Path) -> None:
    x = torch.zeros(2, 1, HEIGHT, 160)
    torch.onnx.export(
        model, (x,), str(path), opset_version=17, dynamo=False,
        input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch", 3: "width"}, "logits": {0: "batch", 1: "steps"}},
    )
    m = onnx.load(str(path))
    onnx.checker.check_model(m)


class LineReader(CalibrationDataReader):
    """Batches of rendered lines, each batch padded to its own width."""

    def __init__(self, n_batches: int, seed: int = 7, bs: int = 8) -> None:
        rng = random.Random(seed)
        src = TextSource(seed)
        fonts = usable_fonts(False)
        self.batches = []
        for _ in range(n_batches):
            imgs = [render_line(src.line(), rng.choice(fonts), rng, random_degrade(rng))
                    for _ in range(bs)]
            W = max(i.shape[1] for i in imgs)
            W = (W + 3) // 4 * 4
            x = np.stack([np.pad(i, ((0, 0), (0, W - i.shape[1])), mode="edge") for i in imgs])
            self.batches.append({"image": (x[:, None].astype(np.float32) / 127.5 - 1.0)})
        self.it = iter(self.batches)

    def get_next(self) -> dict | None:
        return next(self.it, None)

    def rewind(self) -> None:
        self.it = iter(self.batches)


def quantize_int8(fp32: Path, out: Path, n_batches: int = 40) -> None:
    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre), str(out), LineReader(n_batches),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=["Conv", "MatMul", "Gemm"],
    )
    pre.unlink()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", type=Path, default=Path("models/recipe/work/final.pt"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--calib-batches", type=int, default=40)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(a.ckpt)
    fp32 = a.out / "vi_rec_fp32.onnx"
    int8 = a.out / "vi_rec_int8.onnx"
    export_fp32(model, fp32)
    quantize_int8(fp32, int8, a.calib_batches)
    for p in (fp32, int8):
        print(p, p.stat().st_size)


if __name__ == "__main__":
    main()
