"""`tunic serve` over raw HTTP (http.client / sockets, no client library): the limits and errors
of issue 18, and the server's numbers against `tunic generate` (an independent code path:
tn_generate's own batch loop).

- body larger than --max-body: 413; malformed JSON, wrong types, unknown fields, unknown
  models, max_tokens over --max-tokens, a prompt over --ctx: OpenAI-style error objects with
  400/404 (type, param, code), the server still serving afterwards;
- --max-requests: the request beyond gets 429 with Retry-After;
- a client that disconnects mid-stream frees its slot at once (the queued request behind it
  starts; tunic_requests_cancelled_total counts it);
- --timeout: a request still generating gets 504 (a stream: an error event, then [DONE]);
- --api-key: 401 without/with a wrong key, 200 with it; /health stays open;
- greedy output (text and per-token log-probs, 1e-4) equals `tunic generate` for the base and
  for a LoRA adapter, alone and with two requests batched together;
- adapters: POST /v1/adapters loads, DELETE unloads while a request on it is in flight (that
  request finishes on it; new ones get 404);
- routing: model "auto" with --route picks the adapter by keyword, says so in x-tunic-route and
  in tunic_route, and /metrics counts it; --traces-jsonl gets one line per conversation;
- SIGTERM: an in-flight stream finishes with [DONE], the process exits 0; past --stop-deadline a
  stream gets an error event instead.
"""
import json
import os
import socket
import subprocess
import threading
import time

from serve_common import TUNIC, Server, check, finish, tiny_models, workdir

d = workdir("serve-limits")
model, adapter = tiny_models(d)


def err(status, j, want_status, code=None, param=None):
    e = (j or {}).get("error") or {}
    ok = status == want_status and isinstance(e.get("message"), str) and e.get("type") and (code is None or e.get("code") == code)
    if param is not None:
        ok = ok and e.get("param") == param
    return ok


def chat(msgs="hi", **kw):
    b = {"model": "base", "messages": [{"role": "user", "content": msgs}] if isinstance(msgs, str) else msgs}
    b.update(kw)
    return b


def sse_open(sv, body, path="/v1/chat/completions"):
    s = socket.create_connection(("127.0.0.1", sv.port), timeout=30)
    data = json.dumps(body).encode()
    s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
              str(len(data)).encode() + b"\r\n\r\n" + data)
    return s


def read_until(s, token, limit=30):
    buf = b""
    t0 = time.time()
    while token not in buf and time.time() - t0 < limit:
        k = s.recv(65536)
        if not k:
            break
        buf += k
    return buf


route = os.path.join(d, "route.yaml")
with open(route, "w") as f:
    f.write("default: base\nroutes:\n  - category: math\n    adapter: lora\n    keywords: [\"+\", sum, equation]\n")
traces = os.path.join(d, "traces.jsonl")
sv = Server(d, model, "--slots", 2, "--max-requests", 3, "--max-body", 4096, "--max-tokens", 1500, "--ctx", 2048,
            "--adapter", f"lora={adapter}", "--route", route, "--traces-jsonl", traces)

# ---- errors ----
st, h, j, _ = sv.request("POST", "/v1/chat/completions", raw="x" * 5000)
check(err(st, j, 413, "request_too_large"), f"body of 5000 bytes over --max-body 4096: 413 ({st})")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", raw='{"model": "base", "messages": [')
check(err(st, j, 400, "invalid_json"), f"malformed JSON: 400 invalid_json ({st} {j})")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", raw='[1, 2]')
check(err(st, j, 400, "invalid_json"), "a JSON array as the body: 400")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(temperature="hot"))
check(err(st, j, 400, "invalid_type", "temperature"), f"temperature as a string: 400 invalid_type naming it ({j})")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(max_tokens=1.5))
check(err(st, j, 400, "invalid_type", "max_tokens"), "max_tokens 1.5: 400 invalid_type")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(n=0))
check(err(st, j, 400, "invalid_value", "n"), "n 0: 400 invalid_value")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", {"model": "base", "messages": "hi"})
check(err(st, j, 400, "invalid_type", "messages"), "messages as a string: 400")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", {"model": "base", "messages": [{"role": "wizard", "content": "x"}]})
check(err(st, j, 400, "invalid_value"), "an unknown role: 400")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(foo=1))
check(err(st, j, 400, "unknown_parameter", "foo"), "an unknown field: 400 unknown_parameter naming it")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(stop=[1]))
check(err(st, j, 400, "invalid_type", "stop"), "stop [1]: 400")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(model="nope"))
check(err(st, j, 404, "model_not_found", "model"), "an unknown model: 404 model_not_found")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(max_tokens=5000))
check(err(st, j, 400, "invalid_value", "max_tokens"), "max_tokens over --max-tokens: 400")
st, h, j, _ = sv.request("POST", "/v1/completions", {"model": "base", "prompt": [5] * 700, "max_tokens": 1400})
check(err(st, j, 400, "context_length_exceeded"), "prompt + max_tokens over --ctx: 400 context_length_exceeded")
st, h, j, _ = sv.request("GET", "/v1/nothing")
check(err(st, j, 404), "an unknown path: 404 with an error object")
st, h, j, _ = sv.request("GET", "/health")
check(st == 200 and j["status"] == "ok", "still healthy after the errors")

# ---- the same numbers as tunic generate (greedy; base and adapter; alone and batched) ----
prompts = [[1, 2, 3, 4, 5], [9, 8, 7]]
eos = json.load(open(os.path.join(model, "config.json"))).get("eos_token_id")


def gen_ref(p, extra=()):
    out = subprocess.run([TUNIC, "generate", "--model", model, "--ids", ",".join(map(str, p)), "--max-new-tokens", "12",
                          "--json", *extra], capture_output=True, text=True, timeout=120)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    ids = [t for t in r["ids"] if t != eos]  # the server's text leaves the end-of-sequence token out
    r["text"] = subprocess.run([TUNIC, "detokenize", "--model", model, "--skip-special"], input=" ".join(map(str, ids)),
                               capture_output=True, text=True, timeout=60).stdout
    return r


def served(p, m, box=None):
    st, h, j, _ = sv.request("POST", "/v1/completions", {"model": m, "prompt": p, "max_tokens": 12, "temperature": 0,
                                                         "logprobs": 0})
    r = (st, j)
    if box is not None:
        box.append(r)
    return r


for name, extra in (("base", ()), ("lora", ("--adapter", adapter))):
    refs = [gen_ref(p, extra) for p in prompts]
    for k, p in enumerate(prompts):
        st, j = served(p, name)
        c = j["choices"][0]
        lp = c["logprobs"]["token_logprobs"]
        diff = max(abs(a - b) for a, b in zip(lp, refs[k]["logprobs"])) if len(lp) == len(refs[k]["logprobs"]) else 1e9
        check(st == 200 and c["text"] == refs[k]["text"] and diff < 1e-4,
              f"{name} prompt {k}: text and log-probs = tunic generate (max |dlp| {diff:.2e})")
    boxes = [[], []]
    ts = [threading.Thread(target=served, args=(p, name, boxes[k])) for k, p in enumerate(prompts)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    same = all(b and b[0][0] == 200 and b[0][1]["choices"][0]["text"] == refs[k]["text"] for k, b in enumerate(boxes))
    check(same, f"{name}: two requests at once give the texts of each alone")
base_text = gen_ref(prompts[0])["text"]
lora_text = gen_ref(prompts[0], ("--adapter", adapter))["text"]
check(base_text != lora_text, "the adapter changes the greedy output (so the check above is not vacuous)")

# ---- a prompt prefix shared with a running request is read from its cache, same numbers ----
pre = list(range(100, 140))
a = sse_open(sv, {"model": "base", "prompt": pre + [1], "max_tokens": 300, "stream": True}, "/v1/completions")
read_until(a, b"data: ")
st, j = served(pre + [2], "base")
ref = gen_ref(pre + [2])
a.close()
reused = sv.metrics().get("tunic_prefix_reused_tokens_total", 0)
lp = j["choices"][0]["logprobs"]["token_logprobs"]
diff = max(abs(x - y) for x, y in zip(lp, ref["logprobs"])) if len(lp) == len(ref["logprobs"]) else 1e9
check(reused >= 40 and j["choices"][0]["text"] == ref["text"] and diff < 1e-4,
      f"a 40-token prefix shared with a running request: {reused:.0f} tokens reused, text and log-probs = tunic generate ({diff:.1e})")

# ---- routing ----
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat("what is the sum 2+2?", model="auto", max_tokens=4))
check(st == 200 and h.get("x-tunic-route") == "math" and j.get("tunic_route") == "math" and j["model"] == "lora",
      f"auto: a math prompt goes to the math route (header {h.get('x-tunic-route')}, model {j and j.get('model')})")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat("write a poem about rain", model="auto", max_tokens=4))
check(st == 200 and h.get("x-tunic-route") == "default" and j["model"] == "base", "auto: other prompts go to the default")
m = sv.metrics()
check(m.get('tunic_route_total{category="math",adapter="lora"}') == 1 and
      m.get('tunic_route_total{category="default",adapter="base"}') == 1, "/metrics counts the routes")
time.sleep(0.3)
lines = [json.loads(x) for x in open(traces)]
chats = [t for t in lines if "messages" in t]
check(len(chats) >= 2 and chats[-1]["messages"][-1]["role"] == "assistant" and chats[-1]["source"] == "serve"
      and chats[-1]["messages"][0]["content"] == "write a poem about rain",
      f"--traces-jsonl: one line per conversation, ending with the assistant's reply ({len(lines)} lines)")

# ---- 429, disconnect, adapter unload in flight ----
long_ = chat("tell me a long story", max_tokens=1400, stream=True)
a = sse_open(sv, long_)
b = sse_open(sv, long_)
first_a = read_until(a, b"data: ")
first_b = read_until(b, b"data: ")
q = sse_open(sv, long_)  # third: queued behind the 2 slots (--max-requests 3)
time.sleep(0.3)
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(max_tokens=4))
check(st == 429 and h.get("retry-after") == "1" and (j["error"]["type"] == "rate_limit_error"),
      f"beyond --max-requests 3: 429 with Retry-After ({st}, {h.get('retry-after')})")
m0 = sv.metrics()
check(m0.get("tunic_queue_depth") == 1, f"queue depth 1 in /metrics ({m0.get('tunic_queue_depth')})")
t0 = time.time()
a.close()  # a client goes away mid-stream
first_q = read_until(q, b"data: ", limit=10)
dt = time.time() - t0
check(b"data: " in first_q and dt < 2.0, f"a disconnect frees the slot: the queued stream starts {dt:.2f} s later")
time.sleep(0.2)
check(sv.metrics().get("tunic_requests_cancelled_total", 0) >= 1, "the disconnect counts as cancelled")
b.close()
q.close()
time.sleep(0.5)
check(sv.metrics().get("tunic_requests_running") == 0, "all slots free after the clients left")

# an adapter unloaded while a request runs on it: that request finishes on it
s = sse_open(sv, chat("x", model="lora", max_tokens=60, stream=True, temperature=0))
read_until(s, b"data: ")
st, h, j, _ = sv.request("DELETE", "/v1/adapters/lora")
check(st == 200 and j.get("deleted") is True, "DELETE /v1/adapters/lora while a request uses it: 200")
rest = read_until(s, b"data: [DONE]")
s.close()
n_chunks = rest.count(b"data: {")
check(b"data: [DONE]" in rest and b'"error"' not in rest, f"the in-flight request finishes ({n_chunks} more chunks, [DONE])")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(model="lora", max_tokens=2))
check(err(st, j, 404, "model_not_found"), "after DELETE the adapter is gone: 404")
st, h, j, _ = sv.request("POST", "/v1/adapters", {"name": "lora2", "path": adapter})
check(st == 201, "POST /v1/adapters loads it again under a new name")
st, h, j, _ = sv.request("POST", "/v1/completions", {"model": "lora2", "prompt": prompts[0], "max_tokens": 12, "temperature": 0})
check(st == 200 and j["choices"][0]["text"] == lora_text, "the reloaded adapter gives the adapter's output")
# two adapters at once: their slots share every forward step (mixed-adapter batches: about 2
# sequences sampled per step while both run, where turns gave 1), each request's numbers are
# those it has alone
a = sse_open(sv, {"model": "base", "prompt": [3, 4], "max_tokens": 400, "stream": True}, "/v1/completions")
b = sse_open(sv, {"model": "lora2", "prompt": [3, 4], "max_tokens": 400, "stream": True}, "/v1/completions")
fa, fb = read_until(a, b"data: {", 20), read_until(b, b"data: {", 20)
check(b"data: {" in fa and b"data: {" in fb and b"[DONE]" not in fa + fb, "base and adapter streams both progress")
m0 = sv.metrics()
time.sleep(0.4)
m1 = sv.metrics()
dc = m1["tunic_batch_occupancy_count"] - m0["tunic_batch_occupancy_count"]
occ = (m1["tunic_batch_occupancy_sum"] - m0["tunic_batch_occupancy_sum"]) / max(dc, 1)
check(dc > 5 and occ > 1.9, f"base and adapter decoded in the same steps: {occ:.2f} sequences per step over {dc:.0f} steps")
b.close()  # --max-requests 3: the base stream and the two requests below
time.sleep(0.2)
boxes = [[], []]
ts = [threading.Thread(target=served, args=(prompts[0], nm, boxes[k])) for k, nm in enumerate(("base", "lora2"))]
[t.start() for t in ts]
[t.join() for t in ts]
a.close()
check(boxes[0][0][1]["choices"][0]["text"] == base_text and boxes[1][0][1]["choices"][0]["text"] == lora_text,
      "base and adapter requests interleaved: each gives its own output")
st, h, j, _ = sv.request("POST", "/v1/adapters", {"name": "x", "path": os.path.join(d, "nothing")})
check(err(st, j, 400, "adapter_load_failed"), "loading a missing adapter: 400 naming the problem")

# ---- SIGTERM: the stream in flight finishes, exit 0 ----
s = sse_open(sv, chat("x", max_tokens=30, stream=True))
read_until(s, b"data: ")
sv.p.send_signal(15)
rest = read_until(s, b"data: [DONE]")
s.close()
rc = sv.stop()
check(b"data: [DONE]" in rest and b'"error"' not in rest, "SIGTERM: the in-flight stream still ends with [DONE]")
check(rc == 0, f"SIGTERM: exit 0 ({rc})")

# ---- auth, timeout, stop deadline ----
sv = Server(d, model, "--api-key", "sekret", "--timeout", "1", "--max-tokens", 4000, name="auth")
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(max_tokens=2))
check(err(st, j, 401, "invalid_api_key"), "no API key: 401")
st, h, j, _ = sv.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
check(err(st, j, 401, "invalid_api_key"), "a wrong API key: 401")
st, h, j, _ = sv.request("GET", "/v1/models", headers={"Authorization": "Bearer sekret"})
check(st == 200 and j["data"][0]["id"] == "base", "the right API key: 200")
st, h, j, _ = sv.request("GET", "/health")
check(st == 200, "/health needs no key")
auth = {"Authorization": "Bearer sekret"}
t0 = time.time()
st, h, j, _ = sv.request("POST", "/v1/chat/completions", chat(max_tokens=3000), headers=auth)
check(err(st, j, 504, "timeout") and time.time() - t0 < 5, f"--timeout 1: 504 timeout after {time.time() - t0:.1f} s")
s = socket.create_connection(("127.0.0.1", sv.port), timeout=30)
data = json.dumps(chat(max_tokens=3000, stream=True)).encode()
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\nContent-Length: " +
          str(len(data)).encode() + b"\r\n\r\n" + data)
out = read_until(s, b"data: [DONE]", limit=10)
s.close()
check(b'"code":"timeout"' in out and b"data: [DONE]" in out, "--timeout on a stream: an error event, then [DONE]")
check(sv.stop() == 0, "stopped")
sv = Server(d, model, "--stop-deadline", "0.5", "--max-tokens", 4000, name="deadline")
s = sse_open(sv, chat(max_tokens=3000, stream=True))
read_until(s, b"data: ")
t0 = time.time()
sv.p.send_signal(15)
out = read_until(s, b"data: [DONE]", limit=10)
s.close()
rc = sv.stop()
check(b"stopping" in out and b"data: [DONE]" in out and rc == 0 and time.time() - t0 < 5,
      f"SIGTERM past --stop-deadline 0.5: the stream gets an error event and [DONE], exit {rc} in {time.time() - t0:.1f} s")
finish()
