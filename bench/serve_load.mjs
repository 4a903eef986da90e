// serve_load.mjs - load test of `tunic serve` on loopback (issue 18): C concurrent clients, each
// sending streaming /v1/completions requests one after another until the level's request count
// (or its time limit) is reached. Per request: time to first token (arrival of the first chunk
// with text), the gaps between tokens (chunk arrival times / tokens in the chunk), and the tokens
// (usage). Prints one JSON line per level: tokens/s over the level's wall time, p50/p99 TTFT and
// per-token latency. C = 1 is the sequential baseline (one request at a time).
// usage: node serve_load.mjs URL LABEL C1,C2,... REQS_PER_CLIENT MAX_TOKENS TIME_LIMIT_S [MODEL,MODEL,...]
// (request i goes to the i-th model of the list, round-robin: several adapters at once; default base)
// Not for: correctness (tests/serve/).
const [url, label, levels, perClient, maxTokens, limitS, modelList] = process.argv.slice(2);
const models = (modelList || "base").split(",");
const pct = (a, p) => { if (!a.length) return NaN; const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };

async function one(i) {
  const t0 = performance.now();
  const r = await fetch(url + "/v1/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: models[i % models.length], prompt: `Request ${i}: tell me a story about the number ${i}.`, max_tokens: Number(maxTokens),
                           temperature: 1, seed: i, stream: true, stream_options: { include_usage: true } }) });
  if (!r.ok) throw new Error("HTTP " + r.status + " " + await r.text());
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = "", first = 0, last = 0, tokens = 0, gaps = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const now = performance.now();
    buf += dec.decode(value, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k); buf = buf.slice(k + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      if (j.usage) tokens = j.usage.completion_tokens;
      else if (j.choices && j.choices.length) {
        if (!first) first = now;
        else gaps.push(now - last);
        last = now;
      }
    }
  }
  return { ttft: first - t0, gaps, tokens, t: performance.now() - t0 };
}

for (const C of levels.split(",").map(Number)) {
  const n = C * Number(perClient), deadline = performance.now() + Number(limitS) * 1000;
  let next = 0;
  const res = [];
  let errors = 0, firstError = null;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, async () => {
    while (next < n && performance.now() < deadline) {
      try { res.push(await one(next++)); } catch (e) { errors++; firstError = firstError || String(e.cause || e); }
    }
  }));
  const wall = (performance.now() - t0) / 1000, toks = res.reduce((a, r) => a + r.tokens, 0);
  const gaps = res.flatMap((r) => r.gaps);
  console.log(JSON.stringify({ label, clients: C, requests: res.length, tokens: toks, wall_s: +wall.toFixed(2),
    tok_per_s: +(toks / wall).toFixed(1), ttft_p50_ms: +pct(res.map((r) => r.ttft), 50).toFixed(1),
    ttft_p99_ms: +pct(res.map((r) => r.ttft), 99).toFixed(1), tpot_p50_ms: +pct(gaps, 50).toFixed(1),
    tpot_p99_ms: +pct(gaps, 99).toFixed(1), ...(errors ? { errors, first_error: firstError } : {}) }));
}
