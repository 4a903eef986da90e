#!/bin/sh
# install_examples.sh - the public API as a program outside the tree sees it:
# 1. `cmake --install` into a temporary prefix; examples/*.c build against that prefix alone
#    (pkg-config --cflags --libs tunic; no src/ on the include path) with -Wall -Werror;
# 2. libtunic.so exports exactly the functions include/tunic/*.h declares TN_API: no other
#    symbol, and none of the declared ones missing;
# 3. the examples run: examples/generate greedy on a tiny model gives the same text and
#    token ids as `tunic generate --json` (same library, other code path: the CLI).
# Usage: install_examples.sh SRC BUILD TUNIC
set -eu
SRC=$1 BUILD=$2 TUNIC=$3
T=$(mktemp -d /tmp/tn_api_XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
export PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig"
pkg-config --exists tunic || fail "pkg-config does not find tunic.pc in $PKG_CONFIG_PATH"
for f in "$SRC"/examples/*.c; do
  n=$(basename "$f" .c)
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror "$f" -o "$T/$n" $(pkg-config --cflags --libs tunic) -Wl,-rpath,"$T/prefix/lib" ||
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
