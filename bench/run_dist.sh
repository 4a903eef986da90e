#!/bin/bash
# run_dist.sh BUILD_DIR - data-parallel SFT on this machine: 1 rank x 2 threads against 2 ranks x 1
# thread (mpirun on loopback/shared memory), same global batch, for the tiny and small shapes (full
# fine-tuning, byte tokenizer; small keeps its 32000-row vocabulary): tokens/s (global, steps after the
# first), seconds in the gradient sum (rank 0, from metrics.jsonl comm_s) and its share of the run;
# then bench_dist's all-reduce table. Prints `uptime` first and last: the machine is shared.
# Not for: correctness (tests/dist), several hosts (docs/scaling.md models those).
# Env: DIST_MODELS="tiny small", DIST_STEPS (default 12 tiny / 4 small), DIST_BATCH (global, 8).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
T=$BUILD/tunic
W=$(mktemp -d /tmp/tn-bench-dist-XXXX)
trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 TN_PROGRESS=off OMP_WAIT_POLICY=passive
MPI="mpirun -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY -x TN_PROGRESS"
B=${DIST_BATCH:-8}
echo "uptime: $(uptime)"
/usr/bin/python3 - "$W/data.jsonl" <<'PY'
import json, random, sys
rng = random.Random(1)
words = "the cat sat on a mat and then ran far away from big red dogs while birds sang".split()
with open(sys.argv[1], "w") as f:
    for _ in range(256):
        f.write(json.dumps({"prompt": " ".join(rng.choice(words) for _ in range(8)) + "?",
                            "completion": " " + " ".join(rng.choice(words) for _ in range(30))}) + "\n")
PY
summary() { # metrics.jsonl -> "tokens/s comm_s elapsed_s"
  /usr/bin/python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tps = [r["tokens_per_s"] for r in rows[1:]] or [rows[0]["tokens_per_s"]]
print(f'{sum(tps) / len(tps):.0f} {rows[-1].get("comm_s", 0):.3f} {rows[-1]["elapsed_s"]:.2f}')
PY
}
echo
echo "| shape | ranks x threads | batch per rank | tokens/s | s in gradient sum | share of run |"
echo "|---|---|---|---|---|---|"
for m in ${DIST_MODELS:-tiny small}; do
  if [ "$m" = tiny ]; then init="--size tiny --tokenizer bytes"; steps=${DIST_STEPS:-12}; else
    init="--size small --tokenizer bytes --vocab 32000"; steps=${DIST_STEPS:-4}; fi
  $T init --arch llama $init --seed 1 --out "$W/$m" >/dev/null
  args="sft --model $W/$m --data $W/data.jsonl --steps $steps --lr 1e-4 --max-seq-len 256 --seed 3 --save-every 0"
  OMP_NUM_THREADS=2 $T $args --batch-size "$B" --out "$W/$m-1" >/dev/null
  read -r a c e <<<"$(summary "$W/$m-1/metrics.jsonl")"
  echo "| $m | 1 x 2 | $B | $a | - | - |"
  $MPI $T $args --batch-size $((B / 2)) --out "$W/$m-2" >/dev/null
  read -r a c e <<<"$(summary "$W/$m-2/metrics.jsonl")"
  echo "| $m | 2 x 1 | $((B / 2)) | $a | $c | $(/usr/bin/python3 -c "print(f'{$c / $e:.0%}')") |"
done
echo
$MPI "$BUILD/bench/bench_dist" $((1 << 24))
echo "uptime: $(uptime)"
