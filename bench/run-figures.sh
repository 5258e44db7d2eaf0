#!/usr/bin/env bash
# The figures run (docs/engine.md, "Benchmark figures"): both MultiPL-E MBPP files, 64 new tokens,
# every drafter on the same run, greedy and sampled at temperature 0.8, then the draft-tree node
# budget sweep, then the same prompts as fill-in-the-middle requests (the tests as the suffix),
# with the embedded default model unless --model is given.
#   bash bench/run-figures.sh [--limit N] [--threads N] [--model DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build --silent
for f in mbpp-ts-reworded mbpp-py-reworded; do
  node bin/deer.js bench --prompts "../shared/eval/$f.jsonl" --limit 40 --max-new-tokens 64 \
    --drafters none,ngram,ar,deer,deer+lookup,deer-tree,deer+lookup-tree --temperature 0.8 \
    --json "bench/$f.json" --save-outputs "bench/$f.outputs.jsonl" "$@"
  node bin/deer.js bench --prompts "../shared/eval/$f.jsonl" --limit 40 --max-new-tokens 64 \
    --tree-budgets 1,4,16,32,64 --json "bench/$f.trees.json" "$@"
  # fill-in-the-middle, as inline completion asks: prefix = the prompt, suffix = the tests after it
  node bin/deer.js bench --prompts "../shared/eval/$f.jsonl" --suffix-field tests --limit 40 --max-new-tokens 64 \
    --drafters none,ngram,ar,deer,deer+lookup,deer+lookup-tree --json "bench/$f.fim.json" "$@"
done
