// client.mjs - `tunic serve` driven by the official OpenAI client (npm `openai`, a client no one
// here wrote), run by tests/serve/run_node.py against a live server (TN_SERVE_URL) that serves a
// tiny Qwen3 with the adapter "lora" and a route file for "auto".
// Checks: models (base, adapter, auto), chat (usage adds up, seed reproduces, n choices), streaming
// (the chunks concatenate to the non-streamed greedy answer; usage chunk), logprobs/top_logprobs
// (the greedy token is the top one), frequency/presence penalties, stop strings, tools (rendered into the prompt, a tool-call
// turn and a tool result accepted, streamed with tools), completions (string, list, logprobs),
// routing (x-tunic-route through withResponse), adapters loaded and deleted through the client,
// and errors as the client's typed exceptions (NotFoundError, BadRequestError).
// Not for: limits and disconnects (limits.py does them over raw HTTP).
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.TN_NPM, "x.js"));
const { OpenAI, NotFoundError, BadRequestError } = require("openai");

const client = new OpenAI({ baseURL: process.env.TN_SERVE_URL + "/v1", apiKey: "none", maxRetries: 0, timeout: 120000 });
let failed = 0;
function check(ok, what) {
  console.log((ok ? "ok    " : "FAIL  ") + what);
  if (!ok) failed++;
}
const user = (t) => [{ role: "user", content: t }];

// models
const models = await client.models.list();
const ids = models.data.map((m) => m.id);
check(ids.includes("base") && ids.includes("lora") && ids.includes("auto"), `models.list: ${ids.join(", ")}`);

// chat
const c1 = await client.chat.completions.create({ model: "base", messages: user("Hello there"), max_tokens: 12, temperature: 0 });
const u = c1.usage;
check(c1.object === "chat.completion" && c1.choices[0].message.role === "assistant" && typeof c1.choices[0].message.content === "string",
      "chat: an assistant message");
check(u.prompt_tokens > 5 && u.completion_tokens >= 1 && u.completion_tokens <= 12 && u.total_tokens === u.prompt_tokens + u.completion_tokens,
      `chat: usage adds up (${JSON.stringify(u)})`);
check(["stop", "length"].includes(c1.choices[0].finish_reason), `chat: finish_reason ${c1.choices[0].finish_reason}`);
const greedy = c1.choices[0].message.content;

const s1 = await client.chat.completions.create({ model: "base", messages: user("Hello there"), max_tokens: 12, temperature: 1, seed: 7 });
const s2 = await client.chat.completions.create({ model: "base", messages: user("Hello there"), max_tokens: 12, temperature: 1, seed: 7 });
const s3 = await client.chat.completions.create({ model: "base", messages: user("Hello there"), max_tokens: 12, temperature: 1, seed: 8 });
check(s1.choices[0].message.content === s2.choices[0].message.content, "chat: the same seed gives the same sample");
check(s1.choices[0].message.content !== s3.choices[0].message.content, "chat: another seed gives another sample");
const nres = await client.chat.completions.create({ model: "base", messages: user("Hi"), max_tokens: 6, temperature: 1, n: 3, seed: 1 });
check(nres.choices.length === 3 && nres.choices.map((c) => c.index).join() === "0,1,2" &&
      new Set(nres.choices.map((c) => c.message.content)).size > 1, "chat: n = 3 gives 3 different choices");

// streaming
const stream = await client.chat.completions.create({ model: "base", messages: user("Hello there"), max_tokens: 12, temperature: 0,
                                                      stream: true, stream_options: { include_usage: true } });
let text = "", finish = null, usage = null, chunks = 0, role = null;
for await (const ch of stream) {
  chunks++;
  if (ch.usage) usage = ch.usage;
  for (const c of ch.choices) {
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(text === greedy, `stream: the chunks concatenate to the non-streamed answer (${chunks} chunks)`);
check(role === "assistant" && finish === c1.choices[0].finish_reason, "stream: role in the first delta, finish_reason at the end");
check(usage && usage.completion_tokens === u.completion_tokens && usage.prompt_tokens === u.prompt_tokens, "stream: the usage chunk");

// logprobs
const lp = await client.chat.completions.create({ model: "base", messages: user("Hello there"), max_tokens: 6, temperature: 0,
                                                  logprobs: true, top_logprobs: 3 });
const lc = lp.choices[0].logprobs.content;
check(lc.length === lp.usage.completion_tokens && lc.every((e) => e.top_logprobs.length === 3), "logprobs: one entry per token, 3 alternatives each");
check(lc.every((e) => Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-5 && e.token === e.top_logprobs[0].token &&
                      e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob && e.logprob <= 0),
      "logprobs: greedy picks the top alternative, sorted, <= 0");

// frequency/presence penalties (OpenAI's: logit[j] -= count[j] * fp + (count[j] > 0) * pp over the tokens
// generated so far): greedy on the tiny model repeats a token; with presence_penalty 2 every step's pick
// is still the top of the (penalised) distribution it was sampled from, the output changes, and as the
// tiny model's top alternatives lie within 2 of each other (checked on the plain run), a used token
// lowered by 2 does not beat the best unused one: no token repeats
const pargs = { model: "base", prompt: "Once upon a time", max_tokens: 12, temperature: 0, logprobs: 5 };
const plain = (await client.completions.create(pargs)).choices[0].logprobs;
const pres = (await client.completions.create({ ...pargs, presence_penalty: 2 })).choices[0].logprobs;
const spread = Math.max(...plain.top_logprobs.map((t) => Math.max(...Object.values(t)) - Math.min(...Object.values(t))));
check(new Set(plain.tokens).size < plain.tokens.length, `penalties: greedy without them repeats a token (${plain.tokens.length} tokens, ${new Set(plain.tokens).size} distinct)`);
check(spread < 2 && new Set(pres.tokens).size === pres.tokens.length && pres.tokens.join("") !== plain.tokens.join(""),
      `penalties: presence_penalty 2 - no token repeats, the output changed (top-5 spread ${spread.toFixed(3)} < 2)`);
check(pres.token_logprobs.every((v, i) => Math.abs(v - Math.max(...Object.values(pres.top_logprobs[i]))) < 1e-5),
      "penalties: each penalised pick is the top of its (penalised) top_logprobs");
try {
  await client.completions.create({ ...pargs, frequency_penalty: 2.5 });
  check(false, "frequency_penalty 2.5 raises");
} catch (e) {
  check(e instanceof BadRequestError && e.param === "frequency_penalty", `frequency_penalty 2.5: BadRequestError naming ${e.param}`);
}

// stop strings
if (greedy.length >= 6) {
  const stop = greedy.slice(3, 5);
  const st = await client.chat.completions.create({ model: "base", messages: user("Hello there"), max_tokens: 12, temperature: 0, stop: [stop] });
  check(st.choices[0].message.content === greedy.slice(0, greedy.indexOf(stop)) && st.choices[0].finish_reason === "stop",
        `stop: the answer ends before ${JSON.stringify(stop)}`);
} else check(true, "stop: skipped (greedy answer too short)");

// tools
const tools = [{ type: "function", function: { name: "get_weather", description: "Weather in a city",
                 parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
const t1 = await client.chat.completions.create({ model: "base", messages: user("Weather in Paris?"), tools, max_tokens: 8, temperature: 0 });
const t0 = await client.chat.completions.create({ model: "base", messages: user("Weather in Paris?"), max_tokens: 8, temperature: 0 });
check(t1.usage.prompt_tokens > t0.usage.prompt_tokens + 30, `tools: rendered into the prompt (${t0.usage.prompt_tokens} -> ${t1.usage.prompt_tokens} tokens)`);
const msg = t1.choices[0].message;
check(typeof msg.content === "string" || Array.isArray(msg.tool_calls), "tools: a message with content or tool_calls");
const turn = [...user("Weather in Paris?"),
  { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
  { role: "tool", tool_call_id: "call_1", content: '{"temp_c": 21}' }];
const t2 = await client.chat.completions.create({ model: "base", messages: turn, tools, max_tokens: 8 });
check(t2.usage.prompt_tokens > t1.usage.prompt_tokens, "tools: a tool-call turn and its result are rendered");
const ts = await client.chat.completions.create({ model: "base", messages: user("Weather in Paris?"), tools, max_tokens: 8, temperature: 0, stream: true });
let tsText = "", tsFin = null;
for await (const ch of ts) for (const c of ch.choices) { if (c.delta.content) tsText += c.delta.content; if (c.finish_reason) tsFin = c.finish_reason; }
check(tsFin !== null && (tsText === (msg.content || "") || tsFin === "tool_calls"), "tools: streamed with tools, same answer");
const tn = await client.chat.completions.create({ model: "base", messages: user("Weather in Paris?"), tools, tool_choice: "none", max_tokens: 8, temperature: 0 });
check(tn.usage.prompt_tokens === t0.usage.prompt_tokens, "tools: tool_choice none leaves them out");

// completions
const k1 = await client.completions.create({ model: "base", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
check(k1.object === "text_completion" && typeof k1.choices[0].text === "string" && k1.usage.completion_tokens <= 8, "completions: a text");
const k2 = await client.completions.create({ model: "base", prompt: ["Once upon a time", "The answer is"], max_tokens: 5, temperature: 0, logprobs: 2 });
check(k2.choices.length === 2 && k2.choices[0].text === k1.choices[0].text.slice(0, k2.choices[0].text.length) &&
      k2.choices[1].logprobs.tokens.length === k2.choices[1].logprobs.token_logprobs.length &&
      Object.keys(k2.choices[1].logprobs.top_logprobs[0]).length >= 1, "completions: a list of prompts, logprobs");
const ks = await client.completions.create({ model: "lora", prompt: "Once upon a time", max_tokens: 8, temperature: 0, stream: true });
let kt = "";
for await (const ch of ks) kt += ch.choices.map((c) => c.text).join("");
const kl = await client.completions.create({ model: "lora", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
check(kt === kl.choices[0].text, "completions: streamed = not streamed (adapter lora)");

// routing
const { data: ra, response } = await client.chat.completions.create({ model: "auto", messages: user("solve the equation 2+2"), max_tokens: 4 }).withResponse();
check(response.headers.get("x-tunic-route") === "math" && ra.tunic_route === "math" && ra.model === "lora", `auto: routed to math (${response.headers.get("x-tunic-route")})`);

// adapters through the client's generic calls
const added = await client.post("/adapters", { body: { name: "extra", path: process.env.TN_SERVE_ADAPTER } });
const ids2 = (await client.models.list()).data.map((m) => m.id);
check(added.id === "extra" && ids2.includes("extra"), "POST /v1/adapters: listed in models");
const del = await client.delete("/adapters/extra");
const ids3 = (await client.models.list()).data.map((m) => m.id);
check(del.deleted === true && !ids3.includes("extra"), "DELETE /v1/adapters/extra: gone");

// errors as the client's exceptions
try {
  await client.chat.completions.create({ model: "no-such-model", messages: user("x") });
  check(false, "unknown model raises");
} catch (e) {
  check(e instanceof NotFoundError && e.status === 404 && e.code === "model_not_found", `unknown model: NotFoundError ${e.status} ${e.code}`);
}
try {
  await client.chat.completions.create({ model: "base", messages: user("x"), temperature: "warm" });
  check(false, "a wrong type raises");
} catch (e) {
  check(e instanceof BadRequestError && e.status === 400 && e.param === "temperature", `wrong type: BadRequestError naming ${e.param}`);
}
try {
  await client.chat.completions.create({ model: "base", messages: user("x"), not_a_field: true });
  check(false, "an unknown field raises");
} catch (e) {
  check(e instanceof BadRequestError && e.code === "unknown_parameter", `unknown field: BadRequestError ${e.code}`);
}
try {
  await client.chat.completions.create({ model: "base", messages: [] });
  check(false, "empty messages raise");
} catch (e) {
  check(e instanceof BadRequestError, "empty messages: BadRequestError");
}
console.log(failed ? `\n${failed} check(s) failed` : "\nall checks passed");
process.exit(failed ? 1 : 0);
