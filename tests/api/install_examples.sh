#!/bin/sh
# install_examples.sh - the public API as a program outside the tree sees it:
# 1. `cmake --install` into a temporary prefix; examples/*.c build against that prefix alone
#    (pkg-config --cflags --libs tunic; no src/ on the include path) with -Wall -Werror;
# 2. libtunic.so exports exactly the functions include/tunic/*.h declares TN_API: no other
#    symbol, and none of the declared ones missing;
# 3. the examples run and agree with the CLI (examples/adapters: tunic generate --adapter, base,
#    each adapter, deactivated, merged): examples/generate greedy on a tiny model gives
#    the text and token ids of `tunic generate --json`; examples/sft_lora writes the adapter
#    `tunic sft` writes with the same options, byte for byte; examples/grpo_reward (a reward in
#    C) writes the adapter `tunic grpo --reward-cmd` writes with the same reward as a Python
#    process, byte for byte, and logs the reward as rewards/letter_a; examples/eval (tunic/eval.h)
#    prints the extraction rules' results on a fixed text (checked against hand-worked values),
#    evaluates as `tunic eval` does (the same accuracy and per-example answers), and its merged
#    model (tn_merge_save) is `tunic merge`'s, byte for byte.
# Usage: install_examples.sh SRC BUILD TUNIC
set -eu
SRC=$1 BUILD=$2 TUNIC=$3
T=$(mktemp -d /tmp/tn_api_XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
export PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig"
pkg-config --exists tunic || fail "pkg-config does not find tunic.pc in $PKG_CONFIG_PATH"
# a sanitizer build's library needs the sanitizer runtimes in the program that loads it
SANFLAGS=""
grep -q "^TN_SANITIZE:BOOL=ON" "$BUILD/CMakeCache.txt" 2>/dev/null && SANFLAGS="-fsanitize=address,undefined"
for f in "$SRC"/examples/*.c; do
  n=$(basename "$f" .c)
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror $SANFLAGS "$f" -o "$T/$n" $(pkg-config --cflags --libs tunic) -Wl,-rpath,"$T/prefix/lib" ||
    fail "example $n does not build against the installed prefix"
  echo "ok    built $n against $T/prefix"
done

# exported symbols == declared TN_API functions
nm -D --defined-only "$T/prefix/lib/libtunic.so" | awk '$2 == "T" {print $3}' | sort -u > "$T/exported"
grep -hv "define TN_API" "$SRC"/include/tunic/*.h | tr '\n' ' ' | grep -o 'TN_API[^(;{]*(' | sed 's/($//; s/.*[ *]//' | sort -u > "$T/declared"
extra=$(comm -23 "$T/exported" "$T/declared")
missing=$(comm -13 "$T/exported" "$T/declared")
[ -z "$extra" ] || fail "exported but not declared in include/: $extra"
[ -z "$missing" ] || fail "declared TN_API but not exported: $missing"
echo "ok    libtunic.so exports exactly the $(wc -l < "$T/declared") TN_API functions of include/"

# run: examples/generate vs the CLI on a tiny model (greedy)
"$TUNIC" init --arch llama --size tiny --tokenizer bytes --seed 5 --out "$T/m" >/dev/null
"$T/generate" "$T/m" "The cat sat on" 24 > "$T/ex.out" || fail "examples/generate failed"
"$TUNIC" generate --model "$T/m" --prompt "The cat sat on" --max-new-tokens 24 --json > "$T/cli.out" ||
  fail "tunic generate failed"
/usr/bin/python3 - "$T/ex.out" "$T/cli.out" <<'PY' || fail "examples/generate differs from tunic generate"
import json, sys
ex = open(sys.argv[1], encoding="utf-8", errors="replace").read()
cli = json.loads([l for l in open(sys.argv[2]) if l.startswith("{")][0])
text, tail = ex.rsplit("\n-- finish: ", 1)
ids = [int(x) for x in tail.split(":", 1)[1].split()]
assert ids == cli["ids"], (ids, cli["ids"])
assert text == cli["text"], (text, cli["text"])
assert len(ids) > 0
print(f"ok    examples/generate == tunic generate: {len(ids)} tokens, {len(text)} bytes of text")
PY

# sft_lora vs tunic sft
/usr/bin/python3 -c '
import json
for i in range(24):
    print(json.dumps({"prompt": f"q{i}: what is {i}+{i}?", "completion": f" {2*i}"}))' > "$T/sft.jsonl"
"$T/sft_lora" "$T/m" "$T/sft.jsonl" "$T/sft_ex" 6 > "$T/sft_ex.log" 2>&1 || { cat "$T/sft_ex.log"; fail "examples/sft_lora failed"; }
"$TUNIC" sft --model "$T/m" --data "$T/sft.jsonl" --out "$T/sft_cli" --lora-rank 8 --steps 6 --batch-size 4 --lr 1e-3 \
  --eval-split 0 --seed 1 > "$T/sft_cli.log" 2>&1 || { cat "$T/sft_cli.log"; fail "tunic sft failed"; }
[ -f "$T/sft_ex/adapter/adapter_config.json" ] || fail "examples/sft_lora wrote no adapter_config.json"
cmp "$T/sft_ex/adapter/adapter_model.safetensors" "$T/sft_cli/adapter/adapter_model.safetensors" ||
  fail "examples/sft_lora's adapter differs from tunic sft's"
echo "ok    examples/sft_lora == tunic sft (adapter byte-identical)"

# grpo_reward (C reward) vs tunic grpo --reward-cmd (the same reward in Python)
"$TUNIC" data math --profile easy --n 24 --seed 3 --out "$T/math" > /dev/null
P="$T/math/train.jsonl"
[ -f "$P" ] || P=$(ls "$T"/math/*.jsonl | head -1)
cat > "$T/letter_a.py" <<'PY'
import json, sys
for line in sys.stdin:
    c = json.loads(line)["completion"]
    print(min(c.count("a"), 4) / 4, flush=True)
PY
"$T/grpo_reward" "$T/m" "$P" "$T/grpo_ex" 3 > "$T/grpo_ex.log" 2>&1 || { cat "$T/grpo_ex.log"; fail "examples/grpo_reward failed"; }
"$TUNIC" grpo --model "$T/m" --data "$P" --out "$T/grpo_cli" --reward cmd:1 --reward-cmd "/usr/bin/python3 $T/letter_a.py" \
  --steps 3 --batch-size 2 --num-generations 4 --max-tokens-to-generate 16 --lora-rank 4 --lr 1e-3 --seed 1 \
  > "$T/grpo_cli.log" 2>&1 || { cat "$T/grpo_cli.log"; fail "tunic grpo failed"; }
cmp "$T/grpo_ex/adapter/adapter_model.safetensors" "$T/grpo_cli/adapter/adapter_model.safetensors" ||
  fail "examples/grpo_reward's adapter differs from tunic grpo --reward-cmd's"
/usr/bin/python3 - "$T/grpo_ex/metrics.jsonl" "$T/grpo_cli/metrics.jsonl" <<'PY' || fail "grpo metrics"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == 3 and len(b) == 3, (len(a), len(b))
ka = [k for k in a[0] if "letter_a" in k]
kb = [k for k in b[0] if k.endswith("/cmd") or k.endswith("cmd/mean")]
assert ka, sorted(a[0])
for x, y in zip(a, b):
    for k in ka:
        assert x[k] == y[k.replace("letter_a", "cmd")], (k, x[k], y)
import struct
raw = open(sys.argv[1].replace("metrics.jsonl", "adapter/adapter_model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
moved = [k for k, v in hdr.items() if "lora_B" in k and any(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])]
assert moved, "GRPO left every lora_B at its zero init: the comparison would be empty"
print(f"ok    examples/grpo_reward == tunic grpo --reward-cmd (adapter byte-identical; {ka[0]} per step: {[x[ka[0]] for x in a]})")
PY

# adapters (tunic/adapter.h): base, each adapter active, base again, the first merged - vs the CLI
"$T/adapters" "$T/m" "The cat sat on" "$T/sft_ex/adapter" "$T/grpo_ex/adapter" > "$T/ad.out" 2> "$T/ad.err" ||
  { cat "$T/ad.err"; fail "examples/adapters failed"; }
for a in base sft_ex grpo_ex; do
  if [ $a = base ]; then extra=""; else extra="--adapter $T/$a/adapter"; fi
  # shellcheck disable=SC2086
  "$TUNIC" generate --model "$T/m" --prompt "The cat sat on" --max-new-tokens 12 --json $extra > "$T/cli_$a.out" ||
    fail "tunic generate $extra failed"
done
/usr/bin/python3 - "$T" <<'PY' || fail "examples/adapters differs from tunic generate --adapter"
import json, sys
T = sys.argv[1]
runs = {}
for l in open(T + "/ad.out"):
    label, rest = l.split(":", 1)
    ids, lp = rest.split("|")
    runs[label] = ([int(x) for x in ids.split()], float(lp))
def cli(a):
    j = json.loads([l for l in open(f"{T}/cli_{a}.out") if l.startswith("{")][0])
    return j["ids"], sum(j["logprobs"])
for label, a in (("base", "base"), ("a0", "sft_ex"), ("a1", "grpo_ex"), ("base-again", "base")):
    ids, lp = cli(a)
    assert runs[label][0] == ids, (label, runs[label], ids)
    assert abs(runs[label][1] - lp) < 1e-4 * len(ids), (label, runs[label][1], lp)  # the CLI prints 6 decimals
assert runs["base"] == runs["base-again"], "deactivating restores the base model exactly"
assert runs["a0"][1] != runs["base"][1], "the sft adapter changes the log-probs (else nothing is compared)"
# merged: W + s*B*A instead of W x + s*B*(A x): same tokens, log-probs to summation order
assert runs["merged-a0"][0] == runs["a0"][0], (runs["merged-a0"], runs["a0"])
assert abs(runs["merged-a0"][1] - runs["a0"][1]) < 1e-3, (runs["merged-a0"], runs["a0"])
print("ok    examples/adapters == tunic generate --adapter (base, 2 adapters, base again, merged)")
PY

# eval (tunic/eval.h): extraction rules on a fixed text, tn_eval_model == tunic eval, tn_merge_save == tunic merge
cat "$T"/math/*.jsonl | head -6 > "$T/ev.jsonl"
"$T/eval" "$T/m" "$T/ev.jsonl" > "$T/ev_ex.out" 2> "$T/ev_ex.err" || { cat "$T/ev_ex.err"; fail "examples/eval failed"; }
"$TUNIC" eval --model "$T/m" --data "$T/ev.jsonl" --max-new-tokens 16 --out "$T/ev_cli.jsonl" --quiet > /dev/null ||
  fail "tunic eval failed"
"$T/eval" "$T/m" "$T/ev.jsonl" "$T/sft_ex/adapter" "$T/merged_ex" > "$T/evm_ex.out" 2> "$T/evm_ex.err" ||
  { cat "$T/evm_ex.err"; fail "examples/eval with a merge failed"; }
"$TUNIC" merge --model "$T/m" --adapter "$T/sft_ex/adapter" --out "$T/merged_cli" 2> /dev/null || fail "tunic merge failed"
for f in model.safetensors config.json tokenizer.json; do
  cmp "$T/merged_ex/$f" "$T/merged_cli/$f" || fail "tn_merge_save's $f differs from tunic merge's"
done
"$TUNIC" eval --model "$T/merged_cli" --data "$T/ev.jsonl" --max-new-tokens 16 --out "$T/evm_cli.jsonl" --quiet > /dev/null ||
  fail "tunic eval of the merged model failed"
/usr/bin/python3 - "$T" <<'PY' || fail "examples/eval differs from tunic eval"
import json, sys
T = sys.argv[1]
def example(path):
    lines = open(path).read().splitlines()
    ex = [l for l in lines if l.startswith("example ")]
    acc = float([l for l in lines if l.startswith("accuracy: ")][0].split()[1])
    return lines, acc, {l.split(":", 1)[0][8:]: l.split(": ", 1)[1] for l in ex}
def cli(path):
    rows = [json.loads(l) for l in open(path)]
    s = json.load(open(path.replace(".jsonl", ".summary.json")))
    return s["accuracy"], {str(r["id"]): "correct=%d extracted=[%s] method=%s tokens=%d" % (r["correct"], r["extracted"], r["method"], r["tokens"]) for r in rows}
lines, acc, ex = example(T + "/ev_ex.out")
assert lines[0] == "extract: strict=42 flexible=2 boxed=\\frac{1}{2} chain=\\frac{1}{2}(boxed) equiv=1", lines[0]
cacc, cex = cli(T + "/ev_cli.jsonl")
n = sum(1 for _ in open(T + "/ev.jsonl"))
assert n >= 4 and len(ex) == n and ex == cex, (n, ex, cex)
assert abs(acc - cacc) < 1e-6, (acc, cacc)
_, macc, mex = example(T + "/evm_ex.out")
mcacc, mcex = cli(T + "/evm_cli.jsonl")
assert mex == mcex and abs(macc - mcacc) < 1e-6, (mex, mcex)
print(f"ok    examples/eval == tunic eval ({n} examples, accuracy {acc:.3f}; merged model {macc:.3f}), tn_merge_save == tunic merge")
PY
