#!/bin/bash
# run_rollout.sh BUILD_DIR - GRPO rollouts (issue 5), picked up by scripts/bench.sh.
# 1. bench_rollout: G = 8 completions per prompt with the shared prompt prefix (tn_generate, n = 8)
#    vs one at a time (8 calls with n = 1), same tokens, on tunic-init'd 15m checkpoints (vocab 32000
#    and the byte tokenizer's 264), prompt 256 tokens, 64 new tokens; wall and CPU time.
# 2. The time split of a GRPO step (rollout, reward, logprobs, update) read from a `tunic grpo` run's
#    trace.json (Chrome trace, "ph":"X" spans) on the byte-level 15m model with math prompts.
# Not for: correctness (make test). Env: TN_BENCH_CACHE (checkpoint cache), BENCH_REPS (default 3),
# BENCH_THREADS (OMP threads, default 2), BENCH_NICE (default -20 when root).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
CACHE=${TN_BENCH_CACHE:-$BUILD/bench-cache}
OUT=$BUILD/bench-out/rollout
PY=/usr/bin/python3
mkdir -p "$CACHE" "$OUT"
for f in "$BUILD/tunic" "$BUILD/bench/bench_rollout"; do
  [ -x "$f" ] || { echo "run_rollout: $f not built (cmake --build $BUILD)" >&2; exit 1; }
done
export OMP_NUM_THREADS=${BENCH_THREADS:-2} OMP_WAIT_POLICY=passive
NICE=${BENCH_NICE:-$([ "$(id -u)" = 0 ] && echo -20 || echo 0)}
model() { # name -> checkpoint dir (made once)
  local d=$CACHE/$1
  if [ ! -f "$d/model.safetensors" ]; then
    case $1 in
      llama15m) "$BUILD/tunic" init --arch llama --size 15m --vocab 32000 --seed 1 --out "$d" ;;
      llama15m-bytes) "$BUILD/tunic" init --arch llama --size 15m --tokenizer bytes --seed 1 --out "$d" ;;
    esac >&2
  fi
  echo "$d"
}
JSON=$OUT/rollout.jsonl
: >"$JSON"
echo "# run_rollout: $(date -u +%FT%TZ) $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS, nice $NICE," \
     "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in llama15m llama15m-bytes; do
  nice -n "$NICE" "$BUILD/bench/bench_rollout" --model "$(model $name)" --label "$name" --prompt-len 256 \
    --new-tokens 64 --G 8 --B 1,4 --reps "${BENCH_REPS:-3}" --json "$JSON"
done

# ---- time split of GRPO steps from the trace ----
D=$OUT/data
[ -f "$D/train_grpo.jsonl" ] || "$BUILD/tunic" data math --profile easy --n 200 --seed 1 --out "$D" >/dev/null
RUN=$OUT/grpo-run
rm -rf "$RUN"
nice -n "$NICE" "$BUILD/tunic" grpo --model "$(model llama15m-bytes)" --data "$D/train_grpo.jsonl" --out "$RUN" \
  --steps "${BENCH_GRPO_STEPS:-4}" --batch-size 2 --num-generations 8 --max-tokens-to-generate 64 --lr 1e-5 \
  --seed 1 >"$OUT/grpo.log"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$RUN" <<'EOF'
import json, os, sys
run = sys.argv[1]
ev = [e for e in json.load(open(os.path.join(run, "trace.json"))) if e.get("ph") == "X"]
names = ["rollout", "reward", "logprobs", "update"]
steps = [ev[i:i + 4] for i in range(0, len(ev), 4)]
assert all([e["name"] for e in s] == names for s in steps), "unexpected span order in trace.json"
m = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
print(f"\n### GRPO step time split (llama15m-bytes, 2 prompts x 8 generations, <= 64 new tokens; "
      f"steps 2..{len(steps)} of {len(steps)}, from trace.json)\n")
print("| span | mean s per step | share |")
print("|---|---:|---:|")
use = steps[1:] if len(steps) > 1 else steps
tot = sum(e["dur"] for s in use for e in s) / 1e6 / len(use)
for k, n in enumerate(names):
    t = sum(s[k]["dur"] for s in use) / 1e6 / len(use)
    print(f"| {n} | {t:.3f} | {100 * t / tot:.1f}% |")
print(f"| total | {tot:.3f} | |")
ml = sum(r["completion_length"] for r in m[1:] or m) / len(m[1:] or m)
rt = sum(r["rollout_tokens_per_s"] for r in m[1:] or m) / len(m[1:] or m)
print(f"\nmean completion length {ml:.1f} tokens, rollout {rt:.0f} tok/s (metrics.jsonl)")
EOF
