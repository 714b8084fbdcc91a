#!/bin/sh
# After training: export + quantize, pin hashes, line-level check, OCR tests, benchmarks.
#   sh models/recipe/finish.sh [CHECKPOINT]   (default models/recipe/work/final.pt;
#   the real-print fine-tune of issue 9 ends in models/recipe/work/ft2/final.pt)
set -e
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
CKPT=${1:-models/recipe/work/final.pt}
$PY -m models.recipe.export --ckpt "$CKPT" --out models
$PY -m models.recipe.write_manifest
$PY -m models.recipe.eval_onnx models/vi_rec_fp32.onnx models/vi_rec_int8.onnx
$PY -m pytest -q tests/ocr tests/corpus
.venv/bin/appliance bench ocr --json --pages 12 | tee models/recipe/work/bench.json
.venv/bin/appliance bench ocr --json --corpus real | tee models/recipe/work/bench_real.json
