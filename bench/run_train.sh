#!/bin/bash
# run_train.sh BUILD_DIR - training speed and memory of tunic side by side with PyTorch, in one run.
# Makes the benchmark checkpoints with `tunic init` (cached): tiny (llama 15m), small (llama, dim 512,
# 8 layers, GQA 8/4, ffn 1408) and qwen05b (Qwen2.5-0.5B shape), vocab 32000 / 32000 / 151936, and for
# each, full fine-tuning and LoRA r=16 on q,k,v,o, at sequence 256 (batch 8, 8, 2), runs
#   bench_train (tunic: f32, --bf16 matmuls, and --recompute) and
#   bench/torch_train.py (Debian torch 1.13, 2 threads, f32 and bf16 autocast, in the peer's best
#   environment: OpenMP OpenBLAS + tcmalloc),
# checks both computed the same losses (first step; and after one AdamW update for full fine-tuning,
# f32), and prints a markdown table: tokens/s, peak RSS, tunic's best / torch's best (target >= 1.3x).
# Prints the CPU model, the ISA level in use (TN_ISA lowers it, e.g. TN_ISA=avx512bf16 on an AMX CPU)
# and the GEMM path of each matmul class per tunic mode (bench_train's "# isa" lines); writes the
# table also as BUILD/bench-out/train_summary.json (per model and method: best mode and tok/s of
# each engine, ratio, peak RSS of both).
# Not for: correctness (make test), inference speed (run_infer.sh).
# Env: BENCH_MODELS="tiny small qwen05b" (subset), BENCH_METHODS="full lora", TN_BENCH_CACHE
#      (checkpoint cache dir), BENCH_STEPS / BENCH_WARMUP (override), BENCH_PLAIN=1 (torch without
#      the peer environment), BENCH_TUNIC_MODES="f32 bf16 recompute" (subset), BENCH_TORCH_MODES="f32 bf16"
#      (subset; default: bf16 only where the CPU has bf16 arithmetic, avx512_bf16 or amx_bf16 in
#      /proc/cpuinfo - elsewhere torch's bf16 autocast is oneDNN's emulation, measured 20x slower
#      than its f32 on a Zen 3 EPYC: 76 vs 3.9 CPU s per tiny step, never its best mode).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TN_BENCH_CACHE:-$BUILD/bench-cache}
OUT=$BUILD/bench-out
MODELS=${BENCH_MODELS:-"tiny small qwen05b"}
METHODS=${BENCH_METHODS:-"full lora"}
TMODES=${BENCH_TUNIC_MODES:-"f32 bf16 recompute"}
PSKIP=
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then PMODES=${BENCH_TORCH_MODES:-"f32 bf16"}
else
  PMODES=${BENCH_TORCH_MODES:-f32}
  case " $PMODES " in *" bf16 "*) ;; *) PSKIP="# run_train: no bf16 arithmetic on this CPU (no avx512_bf16/amx_bf16): torch bf16 \
autocast skipped (emulated, ~20x slower than torch f32; BENCH_TORCH_MODES=\"f32 bf16\" runs it)" ;; esac
fi
PY=/usr/bin/python3
mkdir -p "$CACHE" "$OUT"

for p in libopenblas0-openmp libgoogle-perftools4 python3-torch python3-numpy; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
    echo "run_train: Debian package $p is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
for f in "$BUILD/tunic" "$BUILD/bench/bench_train"; do
  [ -x "$f" ] || { echo "run_train: $f not built (cmake --build $BUILD)" >&2; exit 1; }
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
# Both engines use GNU OpenMP: on this shared 2-core VM threads that spin while waiting (GOMP's
# default for a while, OMP_WAIT_POLICY=active always) burn the CPU the other thread needs when
# other processes run; passive waiting measured 3x less CPU per step under load. Same for both.
export OMP_WAIT_POLICY=${BENCH_WAIT_POLICY:-passive}

make_model() { # name -> checkpoint dir (made once)
  local d=$CACHE/train-$1
  if [ ! -f "$d/model.safetensors" ]; then
    case $1 in
      tiny) "$BUILD/tunic" init --arch llama --size 15m --vocab 32000 --seed 1 --out "$d" ;;
      small) "$BUILD/tunic" init --arch llama --size small --vocab 32000 --seed 1 --out "$d" ;;
      qwen05b) "$BUILD/tunic" init --arch qwen2 --size qwen05b --vocab 151936 --seed 1 --out "$d" ;;
      *) echo "run_train: unknown model $1" >&2; exit 1 ;;
    esac >&2
  fi
  echo "$d"
}

JSON=$OUT/train.jsonl
: >"$JSON"
echo "# run_train: $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)," \
     "load average before: $(cut -d' ' -f1-3 /proc/loadavg), OMP_WAIT_POLICY=$OMP_WAIT_POLICY" | tee "$OUT/train.load"
echo "# tunic: $("$BUILD/tunic" version | tr '\n' ';' | sed 's/;$//'); bf16 GEMM path at this level:" \
     "$("$BUILD/bench/bench_gemm" --path)" | tee -a "$OUT/train.load"
[ -z "$PSKIP" ] || echo "$PSKIP" | tee -a "$OUT/train.load"
for name in $MODELS; do
  dir=$(make_model "$name")
  case $name in
    qwen05b) B=2; steps=${BENCH_STEPS:-3}; warm=${BENCH_WARMUP:-1} ;;
    *) B=8; steps=${BENCH_STEPS:-5}; warm=${BENCH_WARMUP:-2} ;;
  esac
  for meth in $METHODS; do
    r=0; [ "$meth" = lora ] && r=16
    common=(--model "$dir" --batch $B --seq 256 --lora-rank $r --steps "$steps" --warmup "$warm" --json "$JSON")
    for mode in $TMODES; do
      echo "## $name $meth: tunic $mode"
      case $mode in
        f32) "$BUILD/bench/bench_train" "${common[@]}" --label "$name/$meth/tunic-f32" ;;
        bf16) "$BUILD/bench/bench_train" "${common[@]}" --bf16 --label "$name/$meth/tunic-bf16" ;;
        recompute) "$BUILD/bench/bench_train" "${common[@]}" --bf16 --recompute --label "$name/$meth/tunic-bf16-recompute" ;;
      esac
    done
    for mode in $PMODES; do
      echo "## $name $meth: torch $mode"
      extra=(); [ $mode = bf16 ] && extra=(--bf16)
      torch_env "$PY" "$SRC/bench/torch_train.py" "${common[@]}" "${extra[@]}" --threads 2 \
        --label "$name/$meth/torch-$mode"
    done
  done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/train.load"

"$PY" - "$JSON" "$OUT" <<'EOF' | tee "$OUT/train.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out = sys.argv[2]
print("".join(open(f"{out}/train.load").readlines()).rstrip())
by = {}
for r in rows:
    name, meth, eng = r["label"].split("/")
    by.setdefault((name, meth), {})[eng] = r
ok = True
print("\ntokens/s: median step (best step); CPU s/step: user + system CPU time of a step (median), which "
      "the load of other processes on the machine inflates less than the wall time; tok/CPU-s = tokens / CPU s.\n")
print("| model | method | engine / mode | tokens/s (best) | CPU s/step | tok/CPU-s | peak RSS MB | vs torch best: wall / CPU | target (wall) |")
print("|---|---|---|---|---|---|---|---|---|")
for (name, meth), e in by.items():
    torch_best = max((v for k, v in e.items() if k.startswith("torch")), key=lambda v: v["tok_s"], default=None)
    tunic_best = max((v for k, v in e.items() if k.startswith("tunic")), key=lambda v: v["tok_s"], default=None)
    for k in sorted(e, key=lambda k: (not k.startswith("tunic"), k)):
        v = e[k]
        ratio = ""
        if torch_best:
            tcpu = min(x["cpu_s"] for k2, x in e.items() if k2.startswith("torch"))
            ratio = f"{v['tok_s'] / torch_best['tok_s']:.2f}x / {tcpu / v['cpu_s']:.2f}x"
        tgt = ""
        if v is tunic_best and torch_best:
            tgt = ">= 1.3x: " + ("met" if v["tok_s"] >= 1.3 * torch_best["tok_s"] else "NOT met")
        ntok = v["B"] * v["T"]
        print(f"| {name} | {meth} | {k} | {v['tok_s']:.0f} ({v['tok_s_best']:.0f}) | {v['cpu_s']:.2f} | "
              f"{ntok / v['cpu_s']:.0f} | {v['rss_peak_mb']:.0f} | {ratio} | {tgt} |")
    # agreement: same first-step loss (f32 both), and after one update for full fine-tuning
    a, b = e.get("tunic-f32"), e.get("torch-f32")
    if a and b:
        n = 2 if meth == "full" else 1
        d = max(abs(x - y) for x, y in zip(a["losses"][:n], b["losses"][:n]))
        good = d <= 1e-3 * max(1.0, abs(b["losses"][0]))
        ok = ok and good
        print(f"|  |  | agreement f32: losses of the first {n} step(s) tunic {a['losses'][:n]} torch "
              f"{[round(x, 6) for x in b['losses'][:n]]}: {'ok' if good else 'DIFFER'} |  |  |  |  |  |")
summary = []
for (name, meth), e in by.items():
    tb = max(((k, v) for k, v in e.items() if k.startswith("tunic")), key=lambda kv: kv[1]["tok_s"], default=None)
    pb = max(((k, v) for k, v in e.items() if k.startswith("torch")), key=lambda kv: kv[1]["tok_s"], default=None)
    s = {"model": name, "method": meth}
    if tb:
        s.update(tunic_mode=tb[0][len("tunic-"):], tunic_tok_s=round(tb[1]["tok_s"], 1),
                 tunic_rss_mb=round(tb[1]["rss_peak_mb"]), isa=tb[1].get("isa"), gemm_path=tb[1].get("gemm_path"))
    if pb:
        s.update(torch_mode=pb[0][len("torch-"):], torch_tok_s=round(pb[1]["tok_s"], 1),
                 torch_rss_mb=round(pb[1]["rss_peak_mb"]))
    if tb and pb:
        s["ratio"] = round(tb[1]["tok_s"] / pb[1]["tok_s"], 3)
    summary.append(s)
with open(f"{out}/train_summary.json", "w") as f:
    json.dump({"header": open(f"{out}/train.load").read().strip().splitlines(), "results": summary}, f, indent=1)
if not ok:
    print("\nrun_train: the two engines DISAGREE (see above): the comparison is not of the same computation")
    sys.exit(1)
EOF
