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
# The shipped model's run (one call, everything that needs a GPU; evaluation and export on the CPU after):
#   bash training/device.sh prepare        # here (also copies ../shared/eval for decontaminating the
#                                          #   device's own Python sources)
#   bash training/device.sh gpu            # on the GPU machine: corpus -> tokens -> verifier -> distillation
#                                          #   -> ar -> drafter I/II at size "device" with the shipped tokenizer;
#                                          #   the checkpoints, in bf16, to $OUT (about 40 MB, one call brings them back)
#   bash training/device.sh finish DIR     # here: those checkpoints into training/work/p-device, tokens of the
#                                          #   carried corpus, then evaluation and export on the CPU
#
# DEER_SIZE=tiny bash training/device.sh run   runs the same script at toy size on a CPU (tested that way).
# DEER_SET='k=v ...' overrides size fields (pipeline --set) and DEER_JOBS=N trains N drafters at once, in
# gpu and finish alike (give both the same), e.g. the drafters only, from the shipped verifier
# (training/README.md, "The next GPU session").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
SIZE=${DEER_SIZE:-device}
read -r -a SET <<< "${DEER_SET:-}"
PIPELINE_OPTS=(--jobs "${DEER_JOBS:-1}")
if [ ${#SET[@]} -gt 0 ]; then PIPELINE_OPTS+=(--set "${SET[@]}"); fi
RUN=${RUN:-/tmp/deer-device-run}
OUT=${OUT:-$RUN/out}
CHUNK=15M

# LOCAL: the GPU machine's own Python sources (permissively licensed packages only), added to the corpus
# with DEER_LOCAL=1 (default: at size "device" only); DEER_LOCAL_PKGS names the packages
local_sources() {
  LOCAL=()
  local use=${DEER_LOCAL:-$([ "$SIZE" = device ] && echo 1 || echo 0)}
  [ "$use" = 1 ] || return 0
  for sp in $("$PY" -c 'import site; print(" ".join(site.getsitepackages()))'); do
    for pkg in ${DEER_LOCAL_PKGS:-torch transformers sympy numpy scipy networkx jinja2 onnx tokenizers}; do
      if [ -d "$sp/$pkg" ]; then LOCAL+=("$sp/$pkg:BSD-3-Clause-or-Apache-2.0-or-MIT:site-$pkg"); fi
    done
  done
}

case "${1:-}" in
prepare)
  "$PY" -m training.corpus --out training/work/corpus
  # what travels is at most 64 MiB with the working tree: every TypeScript, JavaScript, Go and Rust
  # document, and Python up to PY_MB (the GPU machine adds its own site-packages Python), xz-compressed
  mkdir -p training/work/device-corpus
  "$PY" -m training.device_corpus training/work/corpus/docs.jsonl --python-mb "${PY_MB:-40}" \
    --manifest-out training/work/device-corpus/manifest.json | xz -T2 -6 > training/work/device-corpus/docs.jsonl.xz
  rm -rf training/work/device-corpus/eval && cp -r ../shared/eval training/work/device-corpus/eval
  du -sh training/work/device-corpus
  ;;
run)
  mkdir -p "$RUN" "$OUT"
  CORPUS=${CORPUS:-training/work/device-corpus/docs.jsonl.xz}
  local_sources
  GPUS=$("$PY" -c 'import torch; print(max(1, torch.cuda.device_count()))')
  "$PY" -m training.pipeline --size "$SIZE" --out "$RUN" --corpus "$CORPUS" --gpus "$GPUS" \
    ${LOCAL:+--local "${LOCAL[@]}"} 2>&1 | tee "$RUN/pipeline.log" | tail -n 200
  cp "$RUN"/pipeline.json "$RUN"/eval.json "$RUN"/export.json "$RUN"/corpus/manifest.json "$OUT"/
  tail -n 400 "$RUN/pipeline.log" > "$OUT/pipeline.log"
  # split the model folder into chunks that fit what one call brings back
  (cd "$RUN" && tar cf model.tar model && rm -rf chunks && mkdir chunks && split -b $CHUNK -d -a 3 model.tar chunks/model.tar.)
  ls "$RUN"/chunks | tee "$OUT/chunks.txt"
  ;;
gpu)
  mkdir -p "$RUN" "$OUT"
  CORPUS=${CORPUS:-training/work/device-corpus/docs.jsonl.xz}
  local_sources
  # a deadline that leaves time to pack whatever is done inside one call of at most 600 s
  timeout "${DEER_DEADLINE:-540}" "$PY" -m training.pipeline --size "$SIZE" --out "$RUN" --corpus "$CORPUS" --tokenizer models/default/tokenizer.json \
    --eval training/work/device-corpus/eval --stop-after drafters "${PIPELINE_OPTS[@]}" ${LOCAL:+--local "${LOCAL[@]}"} \
    2>&1 | tee "$RUN/pipeline.log" | grep -v "^step .* R " | tail -n 150 || echo "PIPELINE FAILED (what it made is packed)"
  "$PY" -m training.checkpoints pack "$RUN" "$OUT"
  for f in pipeline-gpu.json corpus/manifest.json tokens/stats.json; do cp "$RUN/$f" "$OUT"/ || true; done
  tail -n 600 "$RUN/pipeline.log" > "$OUT/pipeline.log"
  ls -la "$OUT"
  ;;
finish)
  SRC=${2:?the folder the files of the gpu call were fetched to}
  DEST=${DEST:-training/work/p-device}
  CORPUS=${CORPUS:-training/work/device-corpus/docs.jsonl.xz}
  mkdir -p "$DEST"
  "$PY" -m training.checkpoints unpack "$SRC" "$DEST"
  cp models/default/tokenizer.json "$DEST"/tokenizer.json
  if [ ! -f "$DEST/corpus/docs.jsonl" ]; then
    mkdir -p "$DEST/corpus"
    xz -dc "$CORPUS" > "$DEST/corpus/docs.jsonl"
  fi
  # the corpus the verifier was trained on (with the GPU machine's own sources); the tokens here are
  # of the carried part only (for evaluation prompts and export calibration: held-out documents either way)
  cp "$SRC"/manifest.json "$DEST/corpus/manifest.json"
  cp "$SRC"/pipeline-gpu.json "$DEST"/
  "$PY" -m training.pipeline --size "$SIZE" --out "$DEST" --corpus "$CORPUS" \
    --tokenizer models/default/tokenizer.json "${PIPELINE_OPTS[@]}" 2>&1 | tee "$DEST/finish.log" | tail -n 60
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
