// llama_bench.mjs - llama.cpp's inference speed (the prebuilt binaries of the npm package
// node-llama-cpp) on a GGUF file, the same work bench_infer does for tunic: B prompts of P tokens
// from bench_infer's formula, prefill (all prompts in one batch) then NEW greedy decode steps of
// one token per sequence (B sequences decoded together: node-llama-cpp puts the B pending tokens
// into one llama_decode batch). Median of REPS after one warm-up. Usage:
//   node bench/llama_bench.mjs REQ.json NPM_DIR   (REQ: {model, P, NEW, batches, reps, threads, V, out})
// Writes {engine: "llama.cpp", batches: [{B, prefill_s, prefill_tok_s, decode_s, decode_tok_s}]}.
// Not for: correctness (tests/gguf).
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const req = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const {getLlama} = await import(pathToFileURL(path.join(process.argv[3], "node_modules", "node-llama-cpp", "dist", "index.js")).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const t0 = performance.now();
const model = await llama.loadModel({modelPath: req.model, useMmap: true});
const load_s = (performance.now() - t0) / 1e3;
const V = req.V, P = req.P, NEW = req.NEW;
const promptTok = (b, t) => 3 + Number((BigInt(b) * 1000003n + BigInt(t) * 7919n + 12345n) % BigInt(V - 3));
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const out = {engine: "llama.cpp", model: req.model, load_s, threads: req.threads, batches: []};
for (const B of req.batches) {
  const ctx = await model.createContext({contextSize: Math.max(B * (P + NEW + 16), 1024), batchSize: Math.max(B * P, 512),
                                         threads: req.threads, sequences: B});
  const tp = [], td = [];
  const seqs = Array.from({length: B}, () => ctx.getSequence());
  for (let rep = -1; rep < req.reps; rep++) {
    for (const s of seqs) await s.clearHistory();
    const prompts = seqs.map((_, b) => Array.from({length: P}, (_, t) => promptTok(b, t)));
    const a = performance.now();
    // prefill: all but the last prompt token (the last one is the first decode step's input)
    await Promise.all(seqs.map((s, b) => s.evaluateWithoutGeneratingNewTokens(prompts[b].slice(0, P - 1))));
    const bt = performance.now();
    await Promise.all(seqs.map(async (s, b) => {
      let n = 0;
      for await (const tok of s.evaluate([prompts[b][P - 1]], {temperature: 0})) { if (++n >= NEW) break; }
    }));
    const ct = performance.now();
    if (rep >= 0) { tp.push((bt - a) / 1e3); td.push((ct - bt) / 1e3); }
  }
  const r = {B, prefill_s: median(tp), decode_s: median(td)};
  r.prefill_tok_s = B * (P - 1) / r.prefill_s;
  r.decode_tok_s = B * NEW / r.decode_s;
  out.batches.push(r);
  await ctx.dispose();
}
await model.dispose();
fs.writeFileSync(req.out, JSON.stringify(out));
process.exit(0);
