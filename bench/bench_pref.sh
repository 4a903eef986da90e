#!/bin/bash
# bench_pref.sh BUILD_DIR - DPO and distillation training speed of tunic side by side with PyTorch,
# in one run (issue 6). Checkpoints made with `tunic init` (cached, byte tokenizer, vocab 32000):
# llama 15m (the policy / student) and llama small (dim 512, 8 layers: the teacher). Data: B pairs of
# fixed-length ASCII prompts and responses (bench/torch_pref.py --write-data), so both sides run
# exactly the same sequences with no padding. Per model:
#   tunic sft / dpo / distill (the real CLI trainers; tokens/s from metrics.jsonl, median after
#   warm-up) and bench/torch_pref.py (Debian torch 1.13 eager, f32, 2 threads, in the peer's
#   environment: OpenMP OpenBLAS + tcmalloc, /work/shared/peers/torch_env.sh),
# checks that both computed the same losses (DPO: step 2, after one AdamW update, since step 1 is
# log 2 on both sides; distill and SFT: steps 1 and 2), and prints a markdown table with the DPO / SFT
# cost ratio (the extra cost should be about the reference forward).
# Env: BENCH_STEPS (5), BENCH_WARMUP (2), BENCH_PAIRS (4), BENCH_PLEN / BENCH_RLEN (64 / 64),
#      TN_BENCH_CACHE (checkpoint cache), BENCH_PLAIN=1 (torch without the peer environment).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TN_BENCH_CACHE:-$BUILD/bench-cache}
OUT=$BUILD/bench-out/pref
STEPS=${BENCH_STEPS:-5}; WARM=${BENCH_WARMUP:-2}; PAIRS=${BENCH_PAIRS:-4}
PLEN=${BENCH_PLEN:-64}; RLEN=${BENCH_RLEN:-64}
PY=/usr/bin/python3
T="$BUILD/tunic"
mkdir -p "$CACHE" "$OUT"
[ -x "$T" ] || { echo "bench_pref: $T not built" >&2; exit 1; }
for p in libopenblas0-openmp libgoogle-perftools4 python3-torch; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
    echo "bench_pref: Debian package $p is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
torch_env() { # the peer's environment (shared/peers/torch_env.sh)
  if [ -z "${BENCH_PLAIN:-}" ]; then
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4${LD_PRELOAD:+:$LD_PRELOAD} \
    TCMALLOC_RELEASE_RATE=0 "$@"
  else "$@"; fi
}
export OMP_NUM_THREADS=2 TN_PROGRESS=off
model() { # name size seed
  local d=$CACHE/pref-$1
  [ -f "$d/model.safetensors" ] || "$T" init --arch llama --size "$2" --vocab 32000 --tokenizer bytes --seed "$3" --out "$d" >&2
  echo "$d"
}
POL=$(model 15m 15m 1)
TCH=$(model small small 2)
DATA=$OUT/data
"$PY" "$SRC/bench/torch_pref.py" --write-data "$DATA" --pairs "$PAIRS" --prompt-len "$PLEN" --resp-len "$RLEN"
JSON=$OUT/pref.jsonl
: >"$JSON"
echo "# bench_pref: $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)," \
     "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load"
N=$((STEPS + WARM))
common=(--steps $N --lr 1e-5 --schedule constant --max-grad-norm 1 --seed 1 --save-every 0 --keep-last 1)
tunic_run() { # label dir cmd args...
  local label=$1 dir=$2; shift 2
  rm -rf "$dir"
  echo "## $label"
  "$T" "$@" >"$dir.log" 2>&1 || { tail -5 "$dir.log"; exit 1; }
  "$PY" - "$dir/metrics.jsonl" "$label" "$WARM" "$JSON" <<'PYEOF'
import json, resource, sys
m = [json.loads(l) for l in open(sys.argv[1])]
warm = int(sys.argv[3])
ts = sorted(r["tokens_per_s"] for r in m[warm:])
loss = [r["loss"] for r in m[:2]]
out = {"label": sys.argv[2], "tok_s": ts[len(ts) // 2], "tok_s_best": ts[-1], "losses": loss}
print(json.dumps(out))
open(sys.argv[4], "a").write(json.dumps(out) + "\n")
PYEOF
}
tunic_run tunic/sft "$OUT/t-sft" sft --model "$POL" --data "$DATA/sft.jsonl" --out "$OUT/t-sft" \
  --batch-size $((2 * PAIRS)) "${common[@]}"
tunic_run tunic/dpo "$OUT/t-dpo" dpo --model "$POL" --data "$DATA/prefs.jsonl" --out "$OUT/t-dpo" \
  --batch-size "$PAIRS" --beta 0.1 "${common[@]}"
tunic_run tunic/distill "$OUT/t-distill" distill --teacher "$TCH" --student "$POL" --data "$DATA/sft.jsonl" \
  --out "$OUT/t-distill" --batch-size $((2 * PAIRS)) --alpha 0.5 --temperature 2 "${common[@]}"
for mode in sft dpo distill; do
  echo "## torch/$mode"
  torch_env "$PY" "$SRC/bench/torch_pref.py" --mode $mode --model "$POL" --teacher "$TCH" --data "$DATA" \
    --steps "$STEPS" --warmup "$WARM" --threads 2 --label torch/$mode --json "$JSON"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load"
"$PY" - "$JSON" "$OUT/load" <<'PYEOF' | tee "$OUT/pref.md"
import json, sys
rows = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
print(open(sys.argv[2]).read().rstrip())
print("\n| step | tunic tokens/s (best) | torch tokens/s (best) | tunic / torch | losses tunic | losses torch |")
print("|---|---|---|---|---|---|")
ok = True
for mode in ("sft", "dpo", "distill"):
    a, b = rows[f"tunic/{mode}"], rows[f"torch/{mode}"]
    ks = [1] if mode == "dpo" else [0, 1]  # DPO's step-1 loss is log 2 on both sides: compare step 2
    good = all(abs(a["losses"][k] - b["losses"][k]) <= 1e-4 * max(1.0, abs(b["losses"][k])) for k in ks)
    ok &= good
    print(f"| {mode} | {a['tok_s']:.0f} ({a['tok_s_best']:.0f}) | {b['tok_s']:.0f} ({b['tok_s_best']:.0f}) | "
          f"{a['tok_s'] / b['tok_s']:.2f}x | {[round(x, 6) for x in a['losses']]} | "
          f"{[round(x, 6) for x in b['losses']]} {'ok' if good else 'DIFFER'} |")
for eng in ("tunic", "torch"):
    s, d = rows[f"{eng}/sft"]["tok_s"], rows[f"{eng}/dpo"]["tok_s"]
    print(f"\n{eng}: a DPO step costs {s / d:.2f}x an SFT step per trained token "
          "(reference forward + log-prob head on top of forward + backward)")
if not ok:
    print("\nbench_pref: the engines DISAGREE on the losses: not the same computation")
    sys.exit(1)
PYEOF
