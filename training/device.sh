#!/usr/bin/env bash
# The device part of the pipeline, in one call of at most ~9 minutes on one GPU (or several:
# the verifier then trains with torchrun/DDP), then short calls that bring the results back.
#
#   bash training/device.sh prepare        # here, with network: build the corpus and pack it
#                                          #   into training/work/device-corpus/ (carry that path)
#   bash training/device.sh run            # on the GPU machine: the whole pipeline at size "device"
#                                          #   (corpus + site-packages Python -> tokenizer -> verifier
#                                          #   -> ar -> distillation -> drafters -> eval -> ONNX int8);
#                                          #   small results go to $OUT, everything stays in $RUN
#   bash training/device.sh fetch N        # on the same warm machine: the N-th batch of 8 chunk files
#                                          #   (16 MiB max each) of the model folder to $OUT
#   bash training/device.sh join DIR...    # here: reassemble fetched chunks into training/work/device-model
#
# DEER_SIZE=tiny bash training/device.sh run   runs the same script at toy size on a CPU (tested that way).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
SIZE=${DEER_SIZE:-device}
RUN=${RUN:-/tmp/deer-device-run}
OUT=${OUT:-$RUN/out}
CHUNK=15M

case "${1:-}" in
prepare)
  "$PY" -m training.corpus --out training/work/corpus
  mkdir -p training/work/device-corpus
  gzip -c training/work/corpus/docs.jsonl > training/work/device-corpus/docs.jsonl.gz
  cp training/work/corpus/manifest.json training/work/device-corpus/
  du -sh training/work/device-corpus
  ;;
run)
  mkdir -p "$RUN" "$OUT"
  CORPUS=${CORPUS:-training/work/device-corpus/docs.jsonl.gz}
  # the GPU machine's own Python sources (permissively licensed packages only)
  LOCAL=()
  [ "$SIZE" = device ] && for sp in $("$PY" -c 'import site,sys; print(" ".join(site.getsitepackages()))'); do
    for pkg in torch transformers sympy numpy scipy networkx jinja2 onnx tokenizers; do
      [ -d "$sp/$pkg" ] && LOCAL+=("$sp/$pkg:BSD-3-Clause-or-Apache-2.0-or-MIT:site-$pkg")
    done
  done
  GPUS=$("$PY" -c 'import torch; print(max(1, torch.cuda.device_count()))')
  "$PY" -m training.pipeline --size "$SIZE" --out "$RUN" --corpus "$CORPUS" --gpus "$GPUS" \
    ${LOCAL:+--local "${LOCAL[@]}"} 2>&1 | tee "$RUN/pipeline.log" | tail -n 200
  cp "$RUN"/pipeline.json "$RUN"/eval.json "$RUN"/export.json "$RUN"/corpus/manifest.json "$OUT"/
  tail -n 400 "$RUN/pipeline.log" > "$OUT/pipeline.log"
  # split the model folder into chunks that fit what one call brings back
  (cd "$RUN" && tar cf model.tar model && rm -rf chunks && mkdir chunks && split -b $CHUNK -d -a 3 model.tar chunks/model.tar.)
  ls "$RUN"/chunks | tee "$OUT/chunks.txt"
  ;;
fetch)
  N=${2:?batch number}
  mkdir -p "$OUT"
  ls "$RUN"/chunks | sed -n "$((N * 8 + 1)),$((N * 8 + 8))p" | while read -r f; do cp "$RUN/chunks/$f" "$OUT/"; done
  ls "$OUT"
  ;;
join)
  shift
  mkdir -p training/work/device-model
  for d in "$@"; do ls -d "$d"/model.tar.*; done | awk -F/ '{print $NF" "$0}' | sort | cut -d" " -f2- \
    | xargs cat > training/work/device-model/model.tar
  tar xf training/work/device-model/model.tar -C training/work/device-model
  echo "model folder: training/work/device-model/model"
  ;;
*)
  sed -n '2,18p' "$0"; exit 2 ;;
esac
