#!/bin/sh
# demo.sh - the main job on its bundled default (called by `make demo`).
# Until the full SFT -> GRPO -> eval pipeline lands (issue 5), the demo makes a
# tiny Llama-shaped model in Hugging Face layout and generates from it.
set -e
TUNIC=${1:-build/tunic}
OUT=${DEMO_OUT:-demo-out}
mkdir -p "$OUT"
echo "== tunic init: a tiny random Llama-3-shaped model in HF layout -> $OUT/model"
"$TUNIC" init --arch llama --size tiny --out "$OUT/model" --seed 42
ls -l "$OUT/model"
echo "== tunic generate: 2 prompts x 2 samples, temperature 0.8, top-p 0.95, seed 7"
"$TUNIC" generate --model "$OUT/model" --ids "1,10,20,30;1,40,50" --n 2 --max-new-tokens 12 \
  --temperature 0.8 --top-p 0.95 --seed 7 --json
echo "== tunic logits: first position of a sequence (checked against PyTorch in make test)"
"$TUNIC" logits --model "$OUT/model" --ids "1,10,20,30" --out "$OUT/logits.json"
echo "wrote $OUT/logits.json"
