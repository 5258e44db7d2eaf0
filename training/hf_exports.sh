#!/usr/bin/env bash
# Exports tiny Hugging Face decoders with Optimum into .cache/hf-exports (training/hf_exports.py),
# for test/hf (called by `npm run test:hf`). Idempotent and cached: the export venv is made once
# (training/ensure_venv.sh, on top of the training venv) and each model is exported once; no
# network after that.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.cache/hf-exports}
bash training/ensure_venv.sh .venv training/requirements.txt
bash training/ensure_venv.sh .cache/hf-export/venv training/requirements-hf-export.txt .venv
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
exec .cache/hf-export/venv/bin/python -m training.hf_exports "$OUT"
