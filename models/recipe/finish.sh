#!/bin/sh
# After training: export + quantize, pin hashes, line-level check, OCR tests, benchmark.
set -e
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
$PY -m models.recipe.export --ckpt models/recipe/work/final.pt --out models
$PY -m models.recipe.write_manifest
$PY -m models.recipe.eval_onnx models/vi_rec_fp32.onnx models/vi_rec_int8.onnx
$PY -m pytest -q tests/ocr
.venv/bin/appliance bench ocr --json --pages 12 | tee models/recipe/work/bench.json
