#!/bin/bash
# run_infer.sh BUILD_DIR - inference speed of tunic's decoder side by side with PyTorch, in one run.
# Makes the benchmark checkpoints with `tunic init` (cached), then for each model runs
# bench_infer (tunic) and bench/torch_infer.py (Debian torch 1.13, 2 threads, in the peer's best
# environment: OpenMP OpenBLAS + tcmalloc), checks both computed the same logits, and prints a
# markdown table with the ratios and the machine figures (bandwidth, sgemm peak) measured in the
# same run. Not for: correctness (make test), training speed.
# Env: BENCH_MODELS="llama15m qwen05b" (subset to run), TN_BENCH_CACHE (checkpoint cache dir),
#      BENCH_REPS (override the repetitions), BENCH_PLAIN=1 (torch without the peer environment),
#      BENCH_NICE (default -20 when root, else 0): both engines run under `nice -n BENCH_NICE`, so on
#      a machine shared with builds and tests the two timed programs get the CPU first (it does not
#      shield them from other programs' memory traffic: the load average is printed with the table).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TN_BENCH_CACHE:-$BUILD/bench-cache}
OUT=$BUILD/bench-out
MODELS=${BENCH_MODELS:-"llama15m qwen05b"}
PY=/usr/bin/python3
mkdir -p "$CACHE" "$OUT"

for p in libopenblas0-openmp libgoogle-perftools4 python3-torch python3-numpy; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
    echo "run_infer: Debian package $p is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
for f in "$BUILD/tunic" "$BUILD/bench/bench_infer"; do
  [ -x "$f" ] || { echo "run_infer: $f not built (cmake --build $BUILD)" >&2; exit 1; }
done

# The peer's environment (copied from shared/peers/torch_env.sh): the OpenMP build of OpenBLAS so
# BLAS shares torch's OpenMP pool, and tcmalloc that never hands freed memory back (page faults
# are expensive on this VM).
torch_env() {
  if [ -z "${BENCH_PLAIN:-}" ]; then
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4${LD_PRELOAD:+:$LD_PRELOAD} \
    TCMALLOC_RELEASE_RATE=0 "$@"
  else
    "$@"
  fi
}
export OMP_NUM_THREADS=2
NICE=${BENCH_NICE:-$([ "$(id -u)" = 0 ] && echo -20 || echo 0)}

make_model() { # name -> checkpoint dir (made once)
  local d=$CACHE/$1
  if [ ! -f "$d/model.safetensors" ]; then
    case $1 in
      llama15m) "$BUILD/tunic" init --arch llama --size 15m --vocab 32000 --seed 1 --out "$d" ;;
      qwen05b) "$BUILD/tunic" init --arch qwen2 --size qwen05b --vocab 151936 --seed 1 --out "$d" ;;
      *) echo "run_infer: unknown model $1" >&2; exit 1 ;;
    esac >&2
  fi
  echo "$d"
}

JSON=$OUT/infer.jsonl
: >"$JSON"
echo "# run_infer: $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)," \
     "nice $NICE, load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/infer.load"
for name in $MODELS; do
  dir=$(make_model "$name")
  case $name in
    llama15m) args=(--prompt-len 128 --new-tokens 64 --reps "${BENCH_REPS:-9}") ;;
    *) args=(--prompt-len 128 --new-tokens 32 --reps "${BENCH_REPS:-3}") ;;
  esac
  rm -f "$OUT/$name.tunic.f32" "$OUT/$name.torch.f32"
  echo "## $name: tunic"
  nice -n "$NICE" "$BUILD/bench/bench_infer" --model "$dir" "${args[@]}" --label "$name" --json "$JSON" --dump "$OUT/$name.tunic.f32"
  echo "## $name: torch"
  torch_env nice -n "$NICE" "$PY" "$SRC/bench/torch_infer.py" --model "$dir" "${args[@]}" --threads 2 --label "$name" \
    --json "$JSON" --dump "$OUT/$name.torch.f32"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/infer.load"

"$PY" - "$JSON" "$OUT" <<'EOF' | tee "$OUT/infer.md"
import json, sys
import numpy as np
rows = [json.loads(l) for l in open(sys.argv[1])]
out = sys.argv[2]
by = {}
for r in rows:
    by.setdefault(r["label"], {})[r["engine"]] = r
ok = True
print("".join(open(f"{out}/infer.load").readlines()).rstrip())
for name, e in by.items():
    t, p = e["tunic"], e["torch"]
    print(f"\n### {name} (prompt {t['P']} tokens, {t['new']} greedy decode steps, median of {t['reps']} reps; "
          f"f32 weights read per decode step: {t['weight_bytes']/1e6:.1f} MB)\n")
    print(f"machine, same run: read bandwidth {t['bw_dram_gbs']:.1f} GB/s over 1 GiB, "
          f"{t['bw_ws_gbs']:.1f} GB/s over a weight-sized buffer; sgemm 2048^3 peak {t['sgemm_gflops']:.0f} GFLOP/s\n")
    # agreement: the same logits (prefill and last decode step) from both engines
    a = np.fromfile(f"{out}/{name}.tunic.f32", dtype="<f4")
    b = np.fromfile(f"{out}/{name}.torch.f32", dtype="<f4")
    V = a.size // sum(2 * x["B"] for x in t["batches"]) if a.size else 1
    same = a.size == b.size and a.size > 0
    diff = float(np.abs(a - b).max()) if same else float("inf")
    am = (a.reshape(-1, V).argmax(1) == b.reshape(-1, V).argmax(1)).mean() if same else 0.0
    toks = all(x["tokens"] == y["tokens"] for x, y in zip(t["batches"], p["batches"]))
    print(f"agreement: logits max |tunic - torch| = {diff:.2e} over {a.size // V} rows, argmax equal in "
          f"{am*100:.0f}% of rows, first 16 greedy tokens of every sequence {'equal' if toks else 'DIFFER'}\n")
    ok = ok and diff < 1e-3 and toks
    print("| B | metric | tunic | torch | tunic/torch, median (best) | target |")
    print("|---|---|---|---|---|---|")
    for x, y in zip(t["batches"], p["batches"]):
        B = x["B"]
        peak, bw = t["sgemm_gflops"], t["bw_dram_gbs"]
        bp = lambda r: r["prefill_tok_s"] * r["prefill_s"] / r["prefill_best_s"]  # noqa: E731
        bd = lambda r: r["decode_tok_s"] * r["decode_s"] / r["decode_best_s"]  # noqa: E731
        print(f"| {B} | prefill tok/s, median (best) | {x['prefill_tok_s']:.0f} ({bp(x):.0f}) | "
              f"{y['prefill_tok_s']:.0f} ({bp(y):.0f}) | {x['prefill_tok_s']/y['prefill_tok_s']:.2f}x "
              f"({bp(x)/bp(y):.2f}x) | |")
        gb = lambda r: r["prefill_gflops"] * r["prefill_s"] / r["prefill_best_s"]  # noqa: E731
        print(f"| {B} | prefill GFLOP/s, median (best), % of sgemm peak | {x['prefill_gflops']:.1f} ({gb(x):.1f}), "
              f"{100*x['prefill_gflops']/peak:.0f}% ({100*gb(x)/peak:.0f}%) | {y['prefill_gflops']:.1f} ({gb(y):.1f}), "
              f"{100*y['prefill_gflops']/peak:.0f}% ({100*gb(y)/peak:.0f}%) | | >= 60% |")
        print(f"| {B} | decode tok/s, median (best) | {x['decode_tok_s']:.1f} ({bd(x):.1f}) | "
              f"{y['decode_tok_s']:.1f} ({bd(y):.1f}) | "
              f"{x['decode_tok_s']/y['decode_tok_s']:.2f}x ({bd(x)/bd(y):.2f}x) | {'>= 4x' if B == 1 else ''} |")
        print(f"| {B} | decode ms/step | {x['ms_per_step']:.2f} | {y['ms_per_step']:.2f} | | |")
        ws = t["bw_ws_gbs"]
        gd = lambda r: r["decode_gbs"] * r["decode_s"] / r["decode_best_s"]  # noqa: E731
        print(f"| {B} | decode GB/s of weights+KV, median (best); % of {bw:.1f} GB/s DRAM / {ws:.1f} GB/s "
              f"weight-sized read bandwidth | {x['decode_gbs']:.1f} ({gd(x):.1f}); {100*x['decode_gbs']/bw:.0f}% / "
              f"{100*x['decode_gbs']/ws:.0f}% ({100*gd(x)/bw:.0f}% / {100*gd(x)/ws:.0f}%) | {y['decode_gbs']:.1f} "
              f"({gd(y):.1f}); {100*y['decode_gbs']/bw:.0f}% / {100*y['decode_gbs']/ws:.0f}% ({100*gd(y)/bw:.0f}% / "
              f"{100*gd(y)/ws:.0f}%) | | {'>= 80%' if B == 1 else ''} |")
    print(f"| all | peak RSS MB (after load) | {t['rss_peak_mb']:.0f} ({t['rss_loaded_mb']:.0f}) | "
          f"{p['rss_peak_mb']:.0f} ({p['rss_loaded_mb']:.0f}) | {t['rss_peak_mb']/p['rss_peak_mb']:.2f}x | |")
    print(f"| all | load s | {t['load_s']:.2f} | {p['load_s']:.2f} | | |")
if not ok:
    print("\nrun_infer: the two engines DISAGREE (see above): the comparison is not of the same computation")
    sys.exit(1)
EOF
