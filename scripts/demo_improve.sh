#!/bin/sh
# demo_improve.sh - the self-improvement loop on the bundled math task (`make demo-improve`):
# the demo's SFT model (scripts/demo.sh steps 1-4: data, tokenizer, tiny model, SFT; reused
# from DEMO_FROM when it holds them, else made here the same way) -> `tunic improve` 3 rounds:
# 4 samples per prompt on a fresh slice of 1000 training prompts per round, judged by the
# reward library (answer right) plus the arithmetic-steps check, filtered (score, format,
# length, duplicates), SFT on what was kept, eval on the 1000 held-out problems.
# DEMO_IMPROVE_OUT (default demo-improve-out) holds every file; the run is resumable: run the
# script again after a kill and it continues (set DEMO_IMPROVE_FRESH=1 to start over).
set -e
TUNIC=${1:-build/tunic}
OUT=${DEMO_IMPROVE_OUT:-demo-improve-out}
FROM=${DEMO_FROM:-demo-out}
SEED=${DEMO_SEED:-1}
ROUNDS=${DEMO_IMPROVE_ROUNDS:-3}
[ "${DEMO_IMPROVE_FRESH:-0}" = 1 ] && rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)
say() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

if [ -f "$OUT/sft/model/config.json" ] && [ -f "$OUT/data/test.jsonl" ]; then
  say "1/2 the demo's SFT model: $OUT/sft/model (already made)"
elif [ -f "$FROM/sft/model/config.json" ] && [ -f "$FROM/data/test.jsonl" ] && [ -f "$FROM/data/train_grpo.jsonl" ]; then
  say "1/2 the demo's SFT model: reusing $FROM (make demo)"
  mkdir -p "$OUT/sft"
  cp -r "$FROM/data" "$OUT/data"
  cp -r "$FROM/sft/model" "$OUT/sft/model"
else
  say "1/2 the demo's SFT model, made as scripts/demo.sh makes it (data, tokenizer, tiny model, 300 SFT steps)"
  rm -rf "$OUT/data" "$OUT/tokenizer" "$OUT/base" "$OUT/sft"
  "$TUNIC" data math --profile easy --max-number 5 --n 4000 --test-frac 0.25 --seed "$SEED" --out "$OUT/data"
  "$TUNIC" train-tokenizer --data "$OUT/data/train_sft.jsonl" --vocab-size 512 --out "$OUT/tokenizer"
  "$TUNIC" init --arch llama --size tiny --tokenizer "$OUT/tokenizer" --out "$OUT/base" --seed "$SEED" \
    --override '{"hidden_size":128,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"intermediate_size":384}'
  TN_PROGRESS=plain "$TUNIC" sft --model "$OUT/base" --data "$OUT/data/train_sft.jsonl" --out "$OUT/sft" \
    --steps 300 --batch-size 16 --lr 3e-3 --warmup-steps 20 --schedule cosine --max-seq-len 256 \
    --seed "$SEED" --save-every 0 > "$OUT/sft.log"
  tail -n 1 "$OUT/sft.log"
fi

say "2/2 tunic improve: $ROUNDS rounds of generate -> judge -> filter -> SFT -> eval"
TN_PROGRESS=plain "$TUNIC" improve --model "$OUT/sft/model" --prompts "$OUT/data/train_grpo.jsonl" \
  --eval-data "$OUT/data/test.jsonl" --out "$OUT/run" --rounds "$ROUNDS" \
  --prompts-per-round 1000 --samples 4 --temperature 0.8 --max-new-tokens 64 \
  --judge "answer:1,steps:1" --threshold 2 \
  --epochs 2 --lr 1e-4 --warmup-steps 5 --batch-size 16 --max-seq-len 256 \
  --eval-max-new-tokens 64 --eval-batch 32 --seed "$SEED" > "$OUT/improve.log"
grep '^improve: round [0-9]*: \(held-out\|judged\)' "$OUT/improve.log" | sed 's/, dataset sha256.*//'
printf 'report: %s/run/report.md; total time %ss\n' "$OUT" "$(( $(date +%s) - start ))"
tail -n 1 "$OUT/improve.log"
