#!/bin/bash
# run_precision.sh BUILD_DIR - loss curves of the bf16 mode against f32, for tunic and for PyTorch's
# bf16 autocast, on the same run (issue 13: "the same loss curve as f32 within the tolerance that
# PyTorch's bf16 autocast shows"): bench_train and bench/torch_train.py, tiny model (run_train.sh's),
# full fine-tuning and LoRA r 16, batch 8 x 256 (the same batch every step), BENCH_STEPS (default 30)
# AdamW steps at BENCH_LR (default 1e-3). Prints per method the largest and the final |loss(bf16) -
# loss(f32)| of each engine, and writes BUILD/bench-out/precision.jsonl (all losses).
# Not for: speed (run_train.sh), correctness of the kernels (tests/test_mm_bf16.c).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TN_BENCH_CACHE:-$BUILD/bench-cache}
OUT=$BUILD/bench-out
mkdir -p "$CACHE" "$OUT"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
M=$CACHE/train-tiny
[ -f "$M/model.safetensors" ] || "$BUILD/tunic" init --arch llama --size 15m --vocab 32000 --seed 1 --out "$M" >&2
J=$OUT/precision.jsonl
: >"$J"
S=${BENCH_STEPS:-30}
LR=${BENCH_LR:-1e-3}
echo "# run_precision: $(date -u +%FT%TZ), isa $("$BUILD/tunic" version | sed -n 's/^isa in use //p'), $S steps, lr $LR"
for meth in full lora; do
  r=0; [ $meth = lora ] && r=16
  c=(--model "$M" --batch 8 --seq 256 --lora-rank $r --steps "$S" --warmup 0 --lr "$LR" --json "$J")
  "$BUILD/bench/bench_train" "${c[@]}" --label "tiny/$meth/tunic-f32" >/dev/null
  "$BUILD/bench/bench_train" "${c[@]}" --bf16 --label "tiny/$meth/tunic-bf16" >/dev/null
  /usr/bin/python3 "$SRC/bench/torch_train.py" "${c[@]}" --threads 2 --label "tiny/$meth/torch-f32" >/dev/null
  /usr/bin/python3 "$SRC/bench/torch_train.py" "${c[@]}" --bf16 --threads 2 --label "tiny/$meth/torch-bf16" >/dev/null
done
/usr/bin/python3 - "$J" <<'PY'
import json, sys
runs = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    runs[r["label"]] = r["losses"]
print("| method | engine | loss f32: first -> last | loss bf16: last | max |bf16 - f32| | final |bf16 - f32| |")
print("|---|---|---|---|---|---|")
for meth in ["full", "lora"]:
    for eng in ["tunic", "torch"]:
        a, b = runs.get(f"tiny/{meth}/{eng}-f32"), runs.get(f"tiny/{meth}/{eng}-bf16")
        if not a or not b:
            continue
        d = [abs(x - y) for x, y in zip(a, b)]
        print(f"| {meth} | {eng} | {a[0]:.4f} -> {a[-1]:.4f} | {b[-1]:.4f} | {max(d):.4f} | {d[-1]:.4f} |")
    a, b = runs.get(f"tiny/{meth}/tunic-bf16"), runs.get(f"tiny/{meth}/torch-bf16")
    if a and b:
        print(f"| {meth} | tunic bf16 vs torch bf16 | | | {max(abs(x - y) for x, y in zip(a, b)):.4f} | {abs(a[-1] - b[-1]):.4f} |")
PY
