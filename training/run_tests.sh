#!/usr/bin/env bash
# Tests of the training pipeline (called by `npm run test:python`): corpus filters and
# decontamination on crafted inputs, tokenizer round trips (Python and @huggingface/tokenizers),
# model/KV-cache consistency, and a tiny end-to-end run (corpus sample -> tokenizer -> verifier,
# ar and drafter training -> ONNX export -> parity). CPU only, a few minutes, no downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export OMP_NUM_THREADS=1
if ! "$PY" -c "import torch, onnxruntime, tokenizers" 2>/dev/null; then
  echo "training tests need the pinned Python packages: python3 -m venv .venv && .venv/bin/pip install -r training/requirements.txt" >&2
  exit 1
fi
exec "$PY" -m pytest -q training/tests "$@"
