#!/bin/bash
# run_quant.sh BUILD_DIR - frozen-weight dtypes (issue 7): for the 15m (llama) and qwen05b
# (qwen2) shapes, made with `tunic init --dtype bf16` (cached), bench_quant loads each with
# --base-dtype f32, bf16, nf4 (one process each: clean RSS) and measures batch-1 decode;
# then the GEMM GFLOP/s against the vdpbf16ps peak measured in the same run. Prints the
# JSON lines and a markdown table. Threads: QUANT_THREADS (default "1 2").
# Not for: correctness (make test).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
CACHE=${TN_BENCH_CACHE:-$BUILD/bench-cache}
OUT=$BUILD/bench-out
mkdir -p "$CACHE" "$OUT"
B=$BUILD/bench/bench_quant
[ -x "$B" ] && [ -x "$BUILD/tunic" ] || { echo "run_quant: build $BUILD first" >&2; exit 1; }
[ -d "$CACHE/llama15m" ] || "$BUILD/tunic" init --arch llama --size 15m --dtype bf16 --seed 1 --out "$CACHE/llama15m" >/dev/null
[ -d "$CACHE/qwen05b" ] || "$BUILD/tunic" init --arch qwen2 --size qwen05b --dtype bf16 --seed 1 --out "$CACHE/qwen05b" >/dev/null
J=$OUT/quant.jsonl
: > "$J"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for t in ${QUANT_THREADS:-1 2}; do
  for m in llama15m qwen05b; do
    for d in f32 bf16 nf4; do
      OMP_NUM_THREADS=$t "$B" --model "$CACHE/$m" --dtype $d --new-tokens 32 --reps 5 | tee -a "$J"
    done
  done
  OMP_NUM_THREADS=$t "$B" --gemm --n 512 --k 896 --out 4864 | tee -a "$J"
  OMP_NUM_THREADS=$t "$B" --gemm --n 512 --k 4864 --out 896 | tee -a "$J"
done
/usr/bin/python3 - "$J" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = {}
print("\n| model | threads | dtype | bytes/frozen param | load RSS MB | decode tok/s | x f32 | tok per CPU-s | x f32 |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if "model" not in r: continue
    k = (r["model"], r["threads"])
    if r["dtype"] == "f32": base[k] = r
    b = base.get(k, r)
    print(f"| {r['model'].split('/')[-1]} | {r['threads']} | {r['dtype']} | {r['bytes_per_frozen_param']:.3f} | {r['load_rss_mb']:.0f} | "
          f"{r['decode_tok_s']:.1f} | {r['decode_tok_s']/b['decode_tok_s']:.2f} | {r['decode_tok_per_cpu_s']:.1f} | "
          f"{r['decode_tok_per_cpu_s']/b['decode_tok_per_cpu_s']:.2f} |")
print("\n| GEMM (N, K, out) | threads | f32 GFLOP/s | bf16 GFLOP/s | nf4 GFLOP/s | vdpbf16ps peak (same run) | bf16 / peak |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if "gemm" in r:
        print(f"| {tuple(r['gemm'])} | {r['threads']} | {r['f32_gflops']:.1f} | {r['bf16_gflops']:.1f} | {r['nf4_gflops']:.1f} | "
              f"{r['bf16_peak_gflops']:.1f} | {r['bf16_of_peak']:.2f} |")
PY
