"""Write models/manifest.json: every model file with its sha256, shape, charset, licence.

Run after export (and after install_models.py, so the third-party files can be
hashed too; their sha256 values are also pinned below so a fresh checkout can
verify them without the files).

    python -m models.recipe.write_manifest
"""

from __future__ import annotations

import json
from pathlib import Path

from appliance.ocr.manifest import sha256_file
from models.recipe.charset import charset

MODELS = Path(__file__).resolve().parents[1]

RAPIDOCR_WHEEL = "rapidocr-onnxruntime==1.4.4"
RAPIDOCR_WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
# The PP-OCRv4 detector as shipped: the input of models/recipe/fuse_det.py.
PPOCR_DET_MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
PPOCR_DET_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
PPOCR_SOURCE = (
    "PaddleOCR PP-OCR model (Apache-2.0, PaddlePaddle authors), ONNX conversion as shipped "
    f"in the PyPI wheel {RAPIDOCR_WHEEL}"
)


def entries() -> list[dict]:
    cs = "".join(charset())
    rec_source = (
        "trained in this repository by models/recipe (synthetic Vietnamese lines rendered "
        "with Debian fonts; see models/README.md)"
    )
    out = [
        {
            "name": "ppocr-v4-det-fused", "role": "detector", "variant": "fp32",
            "file": "ppocr_v4_det_fused.onnx",
            "input_shape": ["N", 3, "H", "W"], "licence": "Apache-2.0",
            "source": f"{PPOCR_DET_MEMBER} (sha256 {PPOCR_DET_SHA256}) from the PyPI wheel "
                      f"{RAPIDOCR_WHEEL}, with its element-wise chains folded by "
                      "models/recipe/fuse_det.py (the same probability map to 1e-5, a fifth "
                      "less time per band); "
                      + PPOCR_SOURCE,
        },
        {
            "name": "ppocr-mobile-v2-cls", "role": "classifier", "variant": "fp32",
            "file": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
            "sha256": "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
            "input_shape": ["N", 3, 48, 192], "licence": "Apache-2.0", "source": PPOCR_SOURCE,
            "install": {"wheel": RAPIDOCR_WHEEL, "wheel_sha256": RAPIDOCR_WHEEL_SHA256,
                        "member": "rapidocr_onnxruntime/models/"
                                  "ch_ppocr_mobile_v2.0_cls_infer.onnx"},
        },
        {
            "name": "vi-rec-int8", "role": "recognizer", "variant": "int8",
            "file": "vi_rec_int8.onnx", "input_shape": ["N", 1, 32, "W"],
            "licence": "Apache-2.0",
            "source": rec_source + "; static QDQ int8 by models/recipe/export.py",
            "charset": cs,
        },
        {
            "name": "vi-rec-fp32", "role": "recognizer", "variant": "fp32",
            "file": "vi_rec_fp32.onnx", "input_shape": ["N", 1, 32, "W"],
            "licence": "Apache-2.0", "source": rec_source, "charset": cs,
        },
    ]
    det_int8 = MODELS / "ppocr_v4_det_int8.onnx"
    if det_int8.exists():
        out.insert(0, {
            "name": "ppocr-v4-det-int8", "role": "detector", "variant": "int8",
            "file": det_int8.name, "input_shape": ["N", 3, "H", "W"], "licence": "Apache-2.0",
            "source": "static QDQ int8 of ppocr_v4_det_fused.onnx by "
                      "models/recipe/quantize_det.py; " + PPOCR_SOURCE,
        })
    for e in out:
        if "sha256" not in e:
            e["sha256"] = sha256_file(MODELS / e["file"])
        p = MODELS / e["file"]
        if p.exists():
            e["bytes"] = p.stat().st_size
            if sha256_file(p) != e["sha256"]:
                raise SystemExit(f"{p} does not match its pinned sha256")
    return out


def main() -> None:
    doc = {"format": 1, "models": entries()}
    (MODELS / "manifest.json").write_text(
        json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    print("wrote", MODELS / "manifest.json")


if __name__ == "__main__":
    main()
