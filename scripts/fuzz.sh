#!/bin/sh
# fuzz.sh - build the libFuzzer harnesses (tests/fuzz, clang build in build-fuzz/) and run
# each for SECONDS (default 60), one after the other at nice 10 in one process (the machine
# may be shared). New inputs go to build-fuzz/corpus/NAME (the committed seeds in
# tests/fuzz/corpus/NAME are read, never written); findings go to build-fuzz/artifacts/.
# FUZZ_RUNS=N: also stop each harness after N executions (whichever comes first).
# Usage: scripts/fuzz.sh [SECONDS] [NAME...]   (NAME: safetensors, tokenizer, ...; default all;
# SECONDS 0: only build the harnesses and tests/allocfail.c; FUZZ_BUILD=DIR: build there)
# Exit status 1 when any harness reported a crash, leak, UB or timeout.
set -e
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=${FUZZ_BUILD:-$SRC/build-fuzz}
CLANG=$(command -v clang || command -v clang-14 || true)
[ -n "$CLANG" ] || { echo "fuzz.sh: clang not found (scripts/deps.sh installs clang-14)" >&2; exit 1; }
if [ -f "$B/CMakeCache.txt" ]; then cmake -S "$SRC" -B "$B" >/dev/null
else cmake -S "$SRC" -B "$B" -DCMAKE_C_COMPILER="$CLANG" -DTN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null; fi
cmake --build "$B" --target fuzz_all -j "${JOBS:-2}" >"$B/build.log" 2>&1 || { cat "$B/build.log" >&2; exit 1; }
[ "$SECONDS_EACH" = 0 ] && exit 0
names="$*"
[ -n "$names" ] || names=$(cd "$SRC/tests/fuzz" && ls fuzz_*.c | sed -e 's/^fuzz_//' -e 's/\.c$//')
mkdir -p "$B/artifacts"
fail=0
for n in $names; do
  mkdir -p "$B/corpus/$n"
  seeds="$SRC/tests/fuzz/corpus/$n"
  [ -d "$seeds" ] || seeds="$SRC/tests/fuzz/$n"   # a harness may keep its seeds beside it
  dict=""
  [ -f "$SRC/tests/fuzz/$n.dict" ] && dict="-dict=$SRC/tests/fuzz/$n.dict"
  log="$B/artifacts/$n.log"
  set +e
  nice -n 10 "$B/tests/fuzz/fuzz_$n" -max_total_time="$SECONDS_EACH" ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} -timeout=20 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$B/artifacts/$n-" $dict \
    "$B/corpus/$n" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    fail=1
    echo "fuzz $n: FINDING after ${runs:-?} runs (log: $log)"
    grep -E "ERROR|runtime error|SUMMARY|Test unit written" "$log" | head -5
  else
    echo "fuzz $n: ${runs:-?} runs, ${secs:-?} exec/s, $(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1 s/p' "$log" | tail -1), no findings"
  fi
done
exit $fail
