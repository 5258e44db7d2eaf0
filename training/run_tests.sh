#!/usr/bin/env bash
# Tests of the training pipeline (called by `npm run test:python`): corpus filters and
# decontamination on crafted inputs, tokenizer round trips (Python and @huggingface/tokenizers),
# model/KV-cache consistency, and a tiny end-to-end run (corpus sample -> tokenizer -> verifier,
# ar and drafter training -> ONNX export -> parity). CPU only, a few minutes, no downloads once
# .venv holds the pinned packages (training/ensure_venv.sh installs them on the first run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash training/ensure_venv.sh .venv training/requirements.txt
PY=.venv/bin/python
export OMP_NUM_THREADS=1
exec "$PY" -m pytest -q training/tests "$@"
