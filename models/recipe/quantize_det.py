"""Static QDQ int8 copy of the PP-OCRv4 detector, calibrated on synthetic form pages.

Detection dominates the per-page time once recognition is quantized; int8
convolutions (per-channel weights, MinMax activations) cut it on x86 with
VNNI/AVX2. Calibration pages come from appliance.bench.corpus at the size the
engine feeds the detector.

    python -m models.recipe.quantize_det [--max-side 640]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx
from onnx import version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from appliance.bench.corpus import render_page
from appliance.ocr.detector import DetectorConfig, TextDetector

MODELS = Path(__file__).resolve().parents[1]


class PageReader(CalibrationDataReader):
    def __init__(self, max_side: int, n: int) -> None:
        det = TextDetector(MODELS / "ch_PP-OCRv4_det_infer.onnx", 1, DetectorConfig(max_side))
        self.items = []
        for seed in range(n):
            page = render_page(10_000 + seed, dpi=(200, 300)[seed % 2], degraded=seed % 3 != 0)
            x, _, _ = det._prepare(page.image.convert("L"))
            self.items.append({"x": x})
        self.it = iter(self.items)

    def get_next(self) -> dict | None:
        return next(self.it, None)

    def rewind(self) -> None:
        self.it = iter(self.items)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path, default=MODELS / "ch_PP-OCRv4_det_infer.onnx")
    ap.add_argument("--out", type=Path, default=MODELS / "ppocr_v4_det_int8.onnx")
    ap.add_argument("--max-side", type=int, default=DetectorConfig().max_side)
    ap.add_argument("--pages", type=int, default=12)
    a = ap.parse_args()
    pre = a.out.with_suffix(".pre.onnx")
    # the shipped graph is opset 11; per-channel DequantizeLinear needs opset >= 13
    up = a.out.with_suffix(".op13.onnx")
    onnx.save(version_converter.convert_version(onnx.load(str(a.src)), 13), str(up))
    quant_pre_process(str(up), str(pre), skip_symbolic_shape=True)
    up.unlink()
    quantize_static(
        str(pre), str(a.out), PageReader(a.max_side, a.pages),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"],
    )
    pre.unlink()
    print(a.out, a.out.stat().st_size)


if __name__ == "__main__":
    main()
