#!/bin/bash
# run_quant.sh BUILD_DIR - frozen-weight dtypes (issue 7), all in one run so the ratios compare
# like with like: for the 15m (llama) and qwen05b (qwen2, Qwen2.5-0.5B shape) models, made with
# `tunic init --dtype bf16` (cached), bench_quant loads each with --base-dtype f32, bf16, nf4
# (one process each: clean RSS), interleaved over QUANT_ROUNDS rounds (median per dtype), and
# measures batch-1 greedy decode (wall tok/s and tokens per CPU-second) -> ratios to f32;
# bytes per frozen (projection) parameter and per parameter overall; then LoRA training of
# qwen05b (r 16 on q,k,v,o, batch 1 x 256) on each base: peak RSS, tokens/s; the batch-1 GEMV
# GB/s of the LM-head and an MLP shape against the read bandwidth of a buffer of that size;
# the bf16 GEMM GFLOP/s against the vdpbf16ps peak measured in the same process.
# Prints the JSON lines and markdown tables. Env: QUANT_THREADS (default "1 2"),
# QUANT_ROUNDS (default 3), QUANT_MODELS (default "llama15m qwen05b"), QUANT_TRAIN=0 to skip
# training, TN_BENCH_CACHE (checkpoint cache).
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
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
J=$OUT/quant.jsonl
: > "$J"
echo "{\"loadavg_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"date\": \"$(date -u +%FT%TZ)\"}" | tee -a "$J"
for t in ${QUANT_THREADS:-1 2}; do
  for m in ${QUANT_MODELS:-llama15m qwen05b}; do
    for r in $(seq "${QUANT_ROUNDS:-3}"); do
      for d in f32 bf16 nf4; do
        OMP_NUM_THREADS=$t "$B" --model "$CACHE/$m" --dtype $d --new-tokens 32 --reps 3 | tee -a "$J"
      done
    done
  done
  OMP_NUM_THREADS=$t "$B" --gemv --n 1 --k 896 --out 151936 --reps 5 | tee -a "$J"
  OMP_NUM_THREADS=$t "$B" --gemv --n 1 --k 896 --out 4864 --reps 20 | tee -a "$J"
  OMP_NUM_THREADS=$t "$B" --gemm --n 512 --k 896 --out 4864 | tee -a "$J"
  OMP_NUM_THREADS=$t "$B" --gemm --n 512 --k 4864 --out 896 | tee -a "$J"
done
if [ "${QUANT_TRAIN:-1}" != 0 ]; then
  for d in f32 bf16 nf4; do
    OMP_NUM_THREADS=2 "$B" --model "$CACHE/qwen05b" --dtype $d --train --batch 1 --seq 256 --lora-rank 16 --steps 3 | tee -a "$J"
  done
fi
echo "{\"loadavg_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" | tee -a "$J"
/usr/bin/python3 - "$J" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
load = [r for r in rows if "loadavg_start" in r or "loadavg_end" in r]
print(f"\nload average at start / end: {load[0]['loadavg_start']} / {load[-1]['loadavg_end']} ({load[0]['date']})")
dec = {}
for r in rows:
    if "decode_tok_s" in r:
        dec.setdefault((r["model"].split("/")[-1], r["threads"]), {}).setdefault(r["dtype"], []).append(r)
print("\nDecode, batch 1 (median of the rounds; each round: median of 3 x 32 tokens after a 16-token prefill)\n")
print("| model | threads | dtype | bytes/frozen param | bytes/param (all) | load RSS MB | decode tok/s | x f32 | tok per CPU-s | x f32 |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for (m, t), by in dec.items():
    med = {d: (statistics.median(x["decode_tok_s"] for x in v), statistics.median(x["decode_tok_per_cpu_s"] for x in v), v[0])
           for d, v in by.items()}
    f = med["f32"]
    for d in ("f32", "bf16", "nf4"):
        w, c, r = med[d]
        print(f"| {m} | {t} | {d} | {r['bytes_per_frozen_param']:.3f} | {r['bytes_per_param']:.3f} | {r['load_rss_mb']:.0f} | "
              f"{w:.2f} | {w / f[0]:.2f} | {c:.2f} | {c / f[1]:.2f} |")
tr = [r for r in rows if "train_tok_s" in r]
if tr:
    print("\nLoRA training, qwen05b, r 16 on q,k,v,o, batch 1 x 256, 2 threads\n")
    print("| base | peak RSS MB | train tok/s | CPU s/step | first loss |")
    print("|---|---:|---:|---:|---:|")
    for r in tr:
        print(f"| {r['dtype']} | {r['peak_rss_mb']:.0f} | {r['train_tok_s']:.1f} | {r['cpu_s_per_step']:.2f} | {r['loss0']:.4f} |")
print("\nBatch-1 GEMV: weight GB/s and the read bandwidth of a buffer of the same size (same process)\n")
print("| (in, out) | threads | f32 GB/s (of read) | bf16 GB/s (of read) | bf16 plain C | nf4 GB/s packed (of read) |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    if "gemv" in r:
        print(f"| ({r['gemv'][1]}, {r['gemv'][2]}) | {r['threads']} | {r['f32_GBps']:.1f} ({r['f32_of_read']:.2f}) | "
              f"{r['bf16_GBps']:.1f} ({r['bf16_of_read']:.2f}) | {r['bf16_portable_GBps']:.1f} | {r['nf4_GBps']:.1f} ({r['nf4_of_read']:.2f}) |")
print("\nGEMM y = x W^T (bf16: AMX where the CPU has it, and the vdpbf16ps GEMM used without AMX)\n")
print("| GEMM (N, K, out) | threads | f32 sgemm GFLOP/s | bf16 GFLOP/s (AMX) | bf16 vdpbf16ps GFLOP/s | nf4 GFLOP/s | vdpbf16ps peak (same run) | AMX / peak | vdpbf16ps / peak |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if "gemm" in r:
        print(f"| {tuple(r['gemm'])} | {r['threads']} | {r['f32_gflops']:.1f} | {r['bf16_gflops']:.1f} | {r['bf16_vdpbf16ps_gflops']:.1f} | "
              f"{r['nf4_gflops']:.1f} | {r['bf16_peak_gflops']:.1f} | {r['bf16_of_peak']:.2f} | {r['vdpbf16ps_of_peak']:.2f} |")
PY
