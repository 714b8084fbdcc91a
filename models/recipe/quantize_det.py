"""Static QDQ int8 copy of the PP-OCRv4 detector, calibrated on synthetic pages.

Detection dominates the per-page time once recognition is quantized, so an int8
detector was tried (per-channel weights, MinMax activations); it did not pay, on
AVX2 nor on VNNI/AMX (models/README.md), and is not shipped. Calibration inputs
are what the detector itself feeds its network (bands of the page at the engine's
size) for pages of appliance.bench.corpus and of the demo scanner's forms:
generated pages only, never the real-scan corpus.

    python -m models.recipe.quantize_det [--max-side 640]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from appliance.bench.corpus import render_page
from appliance.demo.synth import render_form_page
from appliance.ocr.detector import DetectorConfig, TextDetector

MODELS = Path(__file__).resolve().parents[1]


class _Recording:
    """The detector's session, keeping every input it is fed."""

    def __init__(self, session: object) -> None:
        self.session, self.feeds = session, []

    def run(self, names: object, feed: dict) -> list:
        self.feeds.append({k: v.copy() for k, v in feed.items()})
        return self.session.run(names, feed)

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)


class PageReader(CalibrationDataReader):
    """The inputs the detector itself feeds its network (bands of a page, blank ones
    skipped) for generated corpus pages and the demo scanner's form pages."""

    def __init__(self, max_side: int, n: int) -> None:
        det = TextDetector(MODELS / "ppocr_v4_det_fused.onnx", 1, DetectorConfig(max_side))
        recording = det.session = _Recording(det.session)
        for seed in range(n):
            dpi = (200, 300)[seed % 2]
            if seed % 2:
                image = render_form_page(10_000 + seed, dpi=dpi, degrade=True).image
            else:
                image = render_page(10_000 + seed, dpi=dpi, degraded=seed % 3 != 0).image
            det(image.convert("L"))
        self.items = recording.feeds
        self.it = iter(self.items)

    def get_next(self) -> dict | None:
        return next(self.it, None)

    def rewind(self) -> None:
        self.it = iter(self.items)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path, default=MODELS / "ppocr_v4_det_fused.onnx")
    ap.add_argument("--out", type=Path, default=MODELS / "ppocr_v4_det_int8.onnx")
    ap.add_argument("--max-side", type=int, default=DetectorConfig().max_side)
    ap.add_argument("--pages", type=int, default=12)
    a = ap.parse_args()
    pre = a.out.with_suffix(".pre.onnx")
    # The fused graph (fuse_det.py; opset 14, and per-channel DequantizeLinear needs
    # >= 13). Even so the int8 copy did not pay (models/README.md, "Detector graph"):
    # every element-wise operator between the int8 convolutions costs a Dequantize
    # and a Quantize.
    quant_pre_process(str(a.src), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre), str(a.out), PageReader(a.max_side, a.pages),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"],
        # 7-bit weights, as the recognizer's (models/README.md): on x86 without VNNI
        # onnxruntime's u8 x s8 products saturate in int16 with full-range weights.
        reduce_range=True,
    )
    pre.unlink()
    print(a.out, a.out.stat().st_size)


if __name__ == "__main__":
    main()
