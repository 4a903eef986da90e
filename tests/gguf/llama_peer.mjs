// llama_peer.mjs - llama.cpp (the prebuilt binaries of the npm package node-llama-cpp) as the
// peer of tunic's GGUF export: reads one JSON request {model, texts, prompts, n_new, probs}
// from argv[2] and writes {tokens, greedy, logprobs} as JSON to the file req.out:
//   tokens[i]   llama.cpp's ids of texts[i] (special tokens parsed, the model's bos rule)
//   greedy[i]   n_new greedy tokens after prompts[i] (token ids), fresh sequence each
//   logprobs[i] (probs) log-probabilities of every vocabulary entry after each position of
//               prompts[i] (temperature 1, no top-k/p), [position][token]
// argv[3]: the npm cache directory holding node_modules/node-llama-cpp (never downloads or builds).
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const pkg = path.join(process.argv[3], "node_modules", "node-llama-cpp", "dist", "index.js");
const {getLlama} = await import(pathToFileURL(pkg).href);

const req = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath: req.model, useMmap: true});
const out = {tokens: [], greedy: [], logprobs: []};
// tokenize() parses special tokens but adds none: the bos rule is llama.cpp's reading of the
// file (tokenizer.ggml.add_bos_token, llama_vocab_get_add_bos), applied here
const bos = model.tokens.shouldPrependBosToken ? [model.tokens.bos] : [];
for (const t of req.texts || []) out.tokens.push([...bos, ...Array.from(model.tokenize(t, true))]);
if ((req.prompts || []).length) {
  const ctx = await model.createContext({contextSize: req.context || 256, batchSize: 256, threads: req.threads || 2, sequences: 1,
    // f32 K/V cache and no flash attention (llama.cpp's defaults round keys, values and the
    // attention to f16: 1e-3 relative), so the f32 file is compared at f32 precision
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", flashAttention: false});
  for (const p of req.prompts) {
    const seq = ctx.getSequence();
    const got = [];
    if (req.n_new > 0) {
      for await (const tok of seq.evaluate(p, {temperature: 0})) {
        got.push(tok);
        if (got.length >= req.n_new) break;
      }
    }
    out.greedy.push(got);
    await seq.clearHistory();
    if (req.probs) {
      const items = p.map((t) => [t, {generateNext: {probabilities: true, options: {temperature: 1, topK: 0, topP: 1, minP: 0}}}]);
      const res = await seq.controlledEvaluate(items);
      const rows = [];
      for (let i = 0; i < p.length; i++) {
        const pr = res[i]?.next?.probabilities;
        const row = new Array(req.n_vocab).fill(null);
        if (pr) for (const [k, v] of pr) row[k] = Math.log(v);
        rows.push(row);
      }
      out.logprobs.push(rows);
      await seq.clearHistory();
    }
    seq.dispose();
  }
  await ctx.dispose();
}
await model.dispose();
fs.writeFileSync(req.out, JSON.stringify(out)); // a file: stdout would be cut by process.exit
process.exit(0);
