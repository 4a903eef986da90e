#!/bin/bash
# run_gemm.sh BUILD_DIR - the GEMM sweep behind the bf16 training mode: for each of run_train.sh's
# models (rows = batch x 256; projections d x d, d x ffn, ffn x d) and each matmul class (forward,
# dX, dW), GFLOP/s of OpenBLAS sgemm, tunic's AVX-512 f32 GEMM (forward), tunic's bf16 GEMM
# (tn_gemm_bf16 at the ISA level in use: vdpbf16ps or AMX), PyTorch f32 and PyTorch bf16 (oneDNN),
# tunic and PyTorch interleaved model by model. Writes BUILD/bench-out/gemm.jsonl and gemm.md.
# Env: BENCH_MODELS="tiny small qwen05b", BENCH_REPS=3, TN_ISA (e.g. avx512bf16 on an AMX CPU),
#      BENCH_CPU=1 (GFLOP per CPU second of the process, both engines: steadier on a shared machine;
#      per core when divided by nothing, since passive OpenMP threads burn no CPU waiting).
# Not for: correctness (tests/test_mm_bf16.c), whole training steps (run_train.sh).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=$BUILD/bench-out
mkdir -p "$OUT"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=${BENCH_WAIT_POLICY:-passive}
J=$OUT/gemm.jsonl
: >"$J"
echo "# run_gemm: $(date -u +%FT%TZ) $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for m in ${BENCH_MODELS:-tiny small qwen05b}; do
  "$BUILD/bench/bench_gemm" --model "$m" --reps "${BENCH_REPS:-3}" --cpu "${BENCH_CPU:-0}" --json "$J"
  /usr/bin/python3 "$SRC/bench/torch_gemm.py" --model "$m" --reps "${BENCH_REPS:-3}" --threads 2 \
    --cpu "${BENCH_CPU:-0}" --json "$J"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$J" <<'PY' | tee "$OUT/gemm.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault((r["model"], r["M"], r["in"], r["out"], r["class"]), {})[r["kernel"]] = r["gflops"]
ks = ["sgemm", "tunic-f32", "torch-f32", "bf16", "torch-bf16"]
print("| model | M x in x out | class | " + " | ".join(ks) + " | bf16 / oneDNN |")
print("|---|---|---|" + "---|" * len(ks) + "---|")
for (m, M, i, o, c), v in by.items():
    r = f"{v['bf16'] / v['torch-bf16']:.2f}x" if v.get("bf16") and v.get("torch-bf16") else ""
    print(f"| {m} | {M} x {i} x {o} | {c} | " + " | ".join(f"{v[k]:.0f}" if k in v else "" for k in ks) + f" | {r} |")
PY
