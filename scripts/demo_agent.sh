#!/bin/sh
# demo_agent.sh - agentic RL on its bundled default (called by `make demo-agent`): arithmetic
# problems whose numbers are too large for a tiny model to work out in its head (tunic data math
# --tools), a tiny Llama-shaped model with a byte tokenizer, a copy warm-up (SFT on short copy drills:
# the copy heads a tool user needs form in short contexts, not in 120-250-token trajectories), SFT on
# worked tool-use trajectories
# (the model calls the calculator and answers from its result), evaluation with the calculator on
# held-out problems, agentic GRPO (G episodes per prompt, the calculator answering, reward on the
# final answer), evaluation again, the same model without tools, and a before/after report.
# Everything is created here; nothing is downloaded. DEMO_OUT (default demo-agent-out) holds
# every file; DEMO_SEED the seed; DEMO_DATA=DIR uses DIR/{train_sft,train_grpo,test}.jsonl;
# DEMO_SFT_MODEL=DIR starts from that SFT model (skips steps 2-3); DEMO_COPY_STEPS, DEMO_SFT_STEPS,
# DEMO_SFT_BATCH, DEMO_SFT_LR, DEMO_GRPO_STEPS, DEMO_EVAL_N, DEMO_N size the stages.
set -e
TUNIC=${1:-build/tunic}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${DEMO_OUT:-demo-agent-out}
SEED=${DEMO_SEED:-1}
N=${DEMO_N:-3000}
SFT_STEPS=${DEMO_SFT_STEPS:-300}
COPY_STEPS=${DEMO_COPY_STEPS:-400}
SFT_BATCH=${DEMO_SFT_BATCH:-16}
SFT_LR=${DEMO_SFT_LR:-3e-3}
GRPO_STEPS=${DEMO_GRPO_STEPS:-60}
EVAL_N=${DEMO_EVAL_N:-300}
TEMPLATE="$HERE/agent_chat.jinja"
AGENT="--tools calculator --max-turns 3 --max-episode-tokens 128 --tool-timeout 5"
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)
say() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

say "1/9 data: tunic data math --tools (3-4 digit products and sums; tool-use trajectories to learn from, prompts for GRPO, held-out problems)"
if [ -n "$DEMO_DATA" ]; then mkdir -p "$OUT/data" && cp "$DEMO_DATA"/train_sft.jsonl "$DEMO_DATA"/train_grpo.jsonl "$DEMO_DATA"/test.jsonl "$OUT/data/"
else "$TUNIC" data math --tools --n "$N" --seed "$SEED" --out "$OUT/data"; fi

SFT_MODEL="$OUT/sft/model"
if [ -n "$DEMO_SFT_MODEL" ]; then SFT_MODEL="$DEMO_SFT_MODEL"; else
say "2/9 model: tunic init (Llama-3 layout, 0.8M parameters, byte tokenizer: every digit one token)"
"$TUNIC" init --arch llama --size tiny --tokenizer bytes --out "$OUT/base" --seed "$SEED" \
  --override '{"hidden_size":128,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":4,"head_dim":32,"intermediate_size":384,"rope_theta":10000}'

say "2b/9 copy warm-up: SFT on short copy drills (a user turn 'N M', the answer N; numbers of 4-8 digits) so the model's copy heads form in short contexts"
/usr/bin/python3 -c "
import json, random, sys
r = random.Random(int(sys.argv[1]))
for i in range(5000):
    n = str(r.randint(1000, 10 ** r.randint(4, 8) - 1)); m = str(r.randint(100, 9999))
    print(json.dumps({'messages': [{'role': 'user', 'content': n + ' ' + m}, {'role': 'assistant', 'content': n}]}))
" "$SEED" > "$OUT/data/copy.jsonl"
TN_PROGRESS=plain "$TUNIC" sft --model "$OUT/base" --data "$OUT/data/copy.jsonl" --out "$OUT/copy" \
  --chat-template "$TEMPLATE" --steps "$COPY_STEPS" --batch-size 16 --lr 3e-3 --warmup-steps 20 --schedule cosine \
  --max-seq-len 64 --seed "$SEED" --save-every 0 > "$OUT/copy.log"
tail -n 2 "$OUT/copy.log"

say "3/9 SFT on the tool-use trajectories (chat template scripts/agent_chat.jinja: one-letter roles, calls as tool_code blocks)"
TN_PROGRESS=plain "$TUNIC" sft --model "$OUT/copy/model" --data "$OUT/data/train_sft.jsonl" --out "$OUT/sft" \
  --chat-template "$TEMPLATE" --steps "$SFT_STEPS" --batch-size "$SFT_BATCH" --lr "$SFT_LR" --warmup-steps 20 --schedule cosine \
  --max-seq-len 256 --seed "$SEED" --save-every 0 > "$OUT/sft.log"
tail -n 2 "$OUT/sft.log"
fi

EV="--data $OUT/data/test.jsonl --chat-template $TEMPLATE --no-system-prompt --max-new-tokens 64 --limit $EVAL_N --batch-size 50 --quiet"
say "4/9 eval of the SFT model with the calculator (greedy episodes, held-out problems)"
"$TUNIC" eval --model "$SFT_MODEL" --out "$OUT/eval_sft.jsonl" $EV $AGENT | tail -n 3

say "5/9 agentic GRPO: 8 episodes per prompt, the calculator answers, reward on the final answer"
"$TUNIC" grpo --model "$SFT_MODEL" --data "$OUT/data/train_grpo.jsonl" --out "$OUT/grpo" \
  --chat-template "$TEMPLATE" $AGENT --steps "$GRPO_STEPS" --batch-size 8 --num-generations 8 \
  --max-tokens-to-generate 64 --max-prompt-length 192 --temperature 0.8 --lr 2e-4 --schedule constant --beta 0.02 \
  --max-grad-norm 1.0 --reward "answer:1" --filter-statuses timeout,env_error \
  --no-system-prompt --seed "$SEED" --save-every 0 --keep-last 0 > "$OUT/grpo.log"
tail -n 2 "$OUT/grpo.log"

say "6/9 eval of the agentic GRPO model with the calculator (the same held-out problems)"
"$TUNIC" eval --model "$OUT/grpo/model" --out "$OUT/eval_grpo.jsonl" $EV $AGENT | tail -n 3

say "7/9 the same model without tools"
"$TUNIC" eval --model "$OUT/grpo/model" --out "$OUT/eval_grpo_notools.jsonl" $EV | tail -n 3

say "8/9 report: SFT vs agentic GRPO with tools (McNemar), training curves"
"$TUNIC" report --before "$OUT/eval_sft.jsonl" --after "$OUT/eval_grpo.jsonl" \
  --metrics "$OUT/grpo/metrics.jsonl" --out "$OUT/report" --title "tunic agentic demo: SFT -> agentic GRPO (with the calculator)" >/dev/null
grep -i "mcnemar" "$OUT/report/report.md" | head -n 2 || true

say "9/9 summary"
acc() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.1f%%' % (100*d['accuracy']))" "$1"; }
printf 'total time %ss\n' "$(( $(date +%s) - start ))"
printf 'held-out accuracy with tools: SFT %s -> agentic GRPO %s (same model without tools: %s)\n' \
  "$(acc "$OUT/eval_sft.summary.json")" "$(acc "$OUT/eval_grpo.summary.json")" "$(acc "$OUT/eval_grpo_notools.summary.json")"
