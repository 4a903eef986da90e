#!/bin/sh
# demo.sh - the main job on its bundled default (called by `make demo`):
# generate GSM8K-style problems, fit a small BPE tokenizer to them, make a tiny
# Llama-shaped model, teach it the reasoning/answer format with SFT, evaluate it on held-out
# problems, improve it with GRPO (verifiable rewards), evaluate again, and write a
# before/after report with training curves. Everything is created here; nothing
# is downloaded. DEMO_OUT (default demo-out) holds every file; DEMO_SEED the seed.
set -e
TUNIC=${1:-build/tunic}
OUT=${DEMO_OUT:-demo-out}
SEED=${DEMO_SEED:-1}
SFT_STEPS=${DEMO_SFT_STEPS:-300}
GRPO_STEPS=${DEMO_GRPO_STEPS:-500}
GRPO_SAVE=${DEMO_GRPO_SAVE_EVERY:-0}
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)
say() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

say "1/8 data: tunic data math (easy profile, numbers up to 5: 1-2 step problems; 3000 to train on, 1000 held out)"
"$TUNIC" data math --profile easy --max-number 5 --n 4000 --test-frac 0.25 --seed "$SEED" --out "$OUT/data"

say "2/8 tokenizer: tunic train-tokenizer (byte-level BPE fitted to the training text)"
"$TUNIC" train-tokenizer --data "$OUT/data/train_sft.jsonl" --vocab-size 512 --out "$OUT/tokenizer"

say "3/8 model: tunic init (Llama-3 layout, 0.8M parameters, the trained tokenizer)"
"$TUNIC" init --arch llama --size tiny --tokenizer "$OUT/tokenizer" --out "$OUT/base" --seed "$SEED" \
  --override '{"hidden_size":128,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"intermediate_size":384}'

say "4/8 SFT: learn the <reasoning>/<answer> format from worked solutions"
TN_PROGRESS=plain "$TUNIC" sft --model "$OUT/base" --data "$OUT/data/train_sft.jsonl" --out "$OUT/sft" \
  --steps "$SFT_STEPS" --batch-size 16 --lr 3e-3 --warmup-steps 20 --schedule cosine --max-seq-len 256 \
  --seed "$SEED" --save-every 0 > "$OUT/sft.log"
tail -n 2 "$OUT/sft.log"

say "5/8 eval of the SFT model on held-out problems (greedy)"
"$TUNIC" eval --model "$OUT/sft/model" --data "$OUT/data/test.jsonl" --out "$OUT/eval_sft.jsonl" \
  --no-system-prompt --max-new-tokens 64 --quiet

say "6/8 GRPO: rewards for format and correct answers, G completions per prompt"
"$TUNIC" grpo --model "$OUT/sft/model" --data "$OUT/data/train_grpo.jsonl" --out "$OUT/grpo" \
  --steps "$GRPO_STEPS" --batch-size 16 --num-generations 8 --max-tokens-to-generate 48 \
  --max-prompt-length 64 --temperature 0.7 --lr 1.5e-4 --schedule cosine --beta 0.02 --max-grad-norm 1.0 \
  --reward "format_exact:1,answer:2,numeric:1" --no-system-prompt --seed "$SEED" --save-every "$GRPO_SAVE" --keep-last 0 > "$OUT/grpo.log"
tail -n 3 "$OUT/grpo.log"

say "7/8 eval of the GRPO model on the same held-out problems"
"$TUNIC" eval --model "$OUT/grpo/model" --data "$OUT/data/test.jsonl" --out "$OUT/eval_grpo.jsonl" \
  --no-system-prompt --max-new-tokens 64 --quiet

say "8/8 report: before/after deltas, flipped examples, statistics, training curves"
"$TUNIC" report --before "$OUT/eval_sft.jsonl" --after "$OUT/eval_grpo.jsonl" \
  --metrics "$OUT/grpo/metrics.jsonl" --out "$OUT/report" --title "tunic demo: SFT -> GRPO"

acc() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.1f%%' % (100*d['accuracy']))" "$1"; }
printf '\nheld-out accuracy: SFT %s -> GRPO %s   (report: %s/report/report.md, plots: %s/report/plots/)\n' \
  "$(acc "$OUT/eval_sft.summary.json")" "$(acc "$OUT/eval_grpo.summary.json")" "$OUT" "$OUT"
printf 'total time %ss\n' "$(( $(date +%s) - start ))"
