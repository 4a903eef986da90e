#!/bin/bash
# bench.sh BUILD_DIR - run every benchmark driver bench/run_*.sh (called by `make bench`).
# Each driver takes the build directory, prints its own tables and exits non-zero on failure;
# this script runs them all (BENCH_ONLY=infer to run a subset by name) and fails if any failed.
set -u
BUILD=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
fail=0
for d in "$SRC"/bench/run_*.sh; do
  [ -e "$d" ] || continue
  n=$(basename "$d" .sh); n=${n#run_}
  if [ -n "${BENCH_ONLY:-}" ] && ! [[ " $BENCH_ONLY " == *" $n "* ]]; then continue; fi
  echo "=== bench: $n ($d)"
  if ! bash "$d" "$BUILD"; then echo "=== bench: $n FAILED" >&2; fail=1; fi
done
exit $fail
