#!/bin/bash
# run_grpo_qlora.sh BUILD_DIR - one GRPO step of a Qwen2.5-0.5B-shaped model with QLoRA (issue 13):
# NF4 base, LoRA r 16 on q,k,v,o; 4 prompts of 128 tokens (math prompts, byte tokenizer, the last
# 128 kept), G = 4, 128 new tokens; `tunic grpo` once per precision (BENCH_PRECISIONS="f32 bf16"),
# BENCH_GRPO_STEPS steps (default 2: the last is reported), time split per span from trace.json.
# The checkpoint (tunic init qwen2 qwen05b, vocab 151936, byte tokenizer: same shapes and head
# as Qwen2.5-0.5B) is made once in TN_BENCH_CACHE. Not for: correctness (make test).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
CACHE=${TN_BENCH_CACHE:-$BUILD/bench-cache}
OUT=$BUILD/bench-out/grpo-qlora
mkdir -p "$CACHE" "$OUT"
export OMP_NUM_THREADS=${BENCH_THREADS:-2} OMP_WAIT_POLICY=passive
M=$CACHE/qwen05b-bytes
[ -f "$M/model.safetensors" ] || "$BUILD/tunic" init --arch qwen2 --size qwen05b --vocab 151936 --tokenizer bytes \
  --seed 1 --out "$M" >&2
D=$OUT/data
[ -f "$D/train_grpo.jsonl" ] || "$BUILD/tunic" data math --profile easy --n 64 --seed 1 --out "$D" >/dev/null
echo "# run_grpo_qlora: $(date -u +%FT%TZ) $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)," \
     "isa $("$BUILD/tunic" version | sed -n 's/^isa in use //p'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for p in ${BENCH_PRECISIONS:-f32 bf16}; do
  RUN=$OUT/run-$p
  rm -rf "$RUN"
  "$BUILD/tunic" grpo --model "$M" --base-dtype nf4 --lora-rank 16 --data "$D/train_grpo.jsonl" --out "$RUN" \
    --steps "${BENCH_GRPO_STEPS:-2}" --batch-size 4 --num-generations 4 --max-prompt-length 128 \
    --max-tokens-to-generate 128 --micro-batch 4 --lr 1e-5 --seed 1 --precision "$p" >"$OUT/grpo-$p.log" 2>&1 ||
    { tail -5 "$OUT/grpo-$p.log" >&2; exit 1; }
  /usr/bin/python3 - "$RUN" "$p" <<'PY'
import json, os, sys
run, p = sys.argv[1], sys.argv[2]
ev = [e for e in json.load(open(os.path.join(run, "trace.json"))) if e.get("ph") == "X"]
names = ["rollout", "reward", "logprobs", "update"]
steps = [ev[i:i + 4] for i in range(0, len(ev), 4)]
last = steps[-1]
tot = sum(e["dur"] for e in last) / 1e6
m = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
print(f"precision {p}: step {len(steps)} of {len(steps)}: total {tot:.2f} s; " +
      ", ".join(f"{e['name']} {e['dur'] / 1e6:.2f} s ({100 * e['dur'] / 1e6 / tot:.0f}%)" for e in last) +
      f"; completion length {m[-1].get('completion_length')}")
PY
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
