#!/bin/sh
# multi_adapter.sh - several PEFT adapters loaded by name (issue 4): with
# `--adapter a=DIR_A,b=DIR_B --adapter-name X`, generation equals the run with adapter X
# alone; the two adapters give different outputs (so the check can fail); bad specs and
# unknown names are clear errors.
set -e
T=${TUNIC:?TUNIC must name the tunic binary}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
"$T" init --arch llama --size tiny --tokenizer bytes --out "$d/m" --seed 2 >/dev/null
"$T" data math --profile easy --max-steps 1 --n 40 --seed 1 --out "$d/data" --quiet
for s in 1 2; do
  TN_PROGRESS=off "$T" sft --model "$d/m" --data "$d/data/train_sft.jsonl" --out "$d/r$s" --lora-rank 4 \
    --lora-targets all-linear --steps 6 --batch-size 4 --lr 5e-2 --max-seq-len 128 --seed "$s" >/dev/null 2>&1
done
gen() { "$T" generate --model "$d/m" --ids "257,72,105;257,50" --max-new-tokens 12 --json "$@"; }
gen --adapter "$d/r1/adapter" > "$d/a.txt"
gen --adapter "$d/r2/adapter" > "$d/b.txt"
gen --adapter "a=$d/r1/adapter,b=$d/r2/adapter" > "$d/ab_first.txt"
gen --adapter "a=$d/r1/adapter,b=$d/r2/adapter" --adapter-name b > "$d/ab_b.txt"
gen --adapter "a=$d/r1/adapter,b=$d/r2/adapter" --adapter-name a > "$d/ab_a.txt"
fail() { echo "FAIL: $1"; exit 1; }
cmp -s "$d/a.txt" "$d/b.txt" && fail "the two adapters give the same output (test cannot tell them apart)"
cmp -s "$d/a.txt" "$d/ab_first.txt" || fail "default active adapter is not the first"
cmp -s "$d/b.txt" "$d/ab_b.txt" || fail "--adapter-name b does not equal adapter b alone"
cmp -s "$d/a.txt" "$d/ab_a.txt" || fail "--adapter-name a does not equal adapter a alone"
if gen --adapter "a=$d/r1/adapter,b=$d/r2/adapter" --adapter-name c > "$d/err.txt" 2>&1; then fail "unknown name accepted"; fi
grep -q "'c' is not among the adapters given (a, b)" "$d/err.txt" || fail "unknown-name message: $(cat "$d/err.txt")"
if gen --adapter "$d/r1/adapter,$d/r2/adapter" > "$d/err2.txt" 2>&1; then fail "unnamed list accepted"; fi
grep -q "several adapters need names" "$d/err2.txt" || fail "unnamed-list message: $(cat "$d/err2.txt")"
echo PASS
