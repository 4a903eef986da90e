#!/usr/bin/python3
"""Issue 19 at the HTTP level: `tunic serve --store DB --log-traces` serves the store's API and
page next to the OpenAI API. The seeds' calls exactly as written (generate 100 games of seed 42,
build hcd_baseline-v1, export tunix_sft) over real HTTP; the export's sha256 = the manifest's and
equal to the CLI's export from the same file; validation errors are 400 naming the field; 16
concurrent HTTP clients posting traces lose nothing; a served chat completion is stored as a
serve trace (--log-traces); /ui/ is served; the page and API need the key when --api-key is set.
"""
import hashlib
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
from serve_common import Server, check, finish, ok_run, workdir  # noqa: E402
from common import run  # noqa: E402

W = workdir("serve-store")
DB = os.path.join(W, "store.db")
model = os.path.join(W, "tiny")
ok_run(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--seed", 1, "--out", model], "tunic init tiny")
sv = Server(W, model, "--store", DB, "--log-traces", "--quiet")
try:
    st, _, j, _ = sv.request("POST", "/api/ungar/high-card-duel/generate", {"count": 100, "seed": 42, "persist": True})
    check(st == 201 and len(j["ids"]) == 100, f"POST /api/ungar/high-card-duel/generate: 201, 100 ids ({st})")
    st, _, m, _ = sv.request("POST", "/api/datasets/build", {
        "dataset_name": "hcd_baseline", "dataset_version": "v1", "filters": {"source": "ungar", "game": "high_card_duel"},
        "limit": 100, "selection_strategy": "latest"})
    check(st == 201 and m["key"] == "hcd_baseline-v1" and m["counts"]["traces"] == 100, f"POST /api/datasets/build: 201 ({st})")
    st, _, j2, _ = sv.request("POST", "/api/datasets/build", {
        "dataset_name": "hcd_baseline", "dataset_version": "v1", "filters": {"source": "ungar", "game": "high_card_duel"},
        "limit": 100, "selection_strategy": "latest"})
    check(st == 200 and j2["build_id"] == m["build_id"], "the identical build again: 200, the same build id")
    st, _, j2, _ = sv.request("POST", "/api/datasets/build", {"dataset_name": "hcd_baseline", "dataset_version": "v1", "limit": 7})
    check(st == 409 and "immutable" in j2["error"]["message"], "a different build of the same name-version: 409")
    c = sv.conn()
    c.request("GET", "/api/datasets/hcd_baseline-v1/export.jsonl?format=tunix_sft")
    r = c.getresponse()
    body = r.read()
    c.close()
    check(r.status == 200 and hashlib.sha256(body).hexdigest() == m["sha256"]["tunix_sft"],
          "GET export.jsonl?format=tunix_sft: 200, its sha256 is the manifest's")
    check(body.count(b"\n") == 100, "100 lines")
    p = run(["store", "datasets", "export", "hcd_baseline-v1", "--format", "tunix_sft"], env={"TUNIC_STORE": DB})
    check(p.returncode == 0 and p.stdout.encode() == body, "the CLI's export from the same file (while the server runs) is the same bytes")
    st, _, j, _ = sv.request("GET", "/api/datasets/hcd_baseline-v1/export.jsonl?format=dpo")
    check(st == 200, "the dpo export")
    st, _, j, _ = sv.request("GET", "/api/traces?source=ungar&limit=7")
    check(st == 200 and len(j["traces"]) == 7 and j["next_cursor"], "GET /api/traces?source=ungar&limit=7: a page of 7 and a cursor")
    st, _, j2, _ = sv.request("GET", f"/api/traces?source=ungar&limit=7&cursor={j['next_cursor']}")
    check(st == 200 and j2["traces"][0]["id"] < j["traces"][-1]["id"], "the next page continues after the cursor")
    st, _, j, _ = sv.request("GET", "/api/traces?limit=abc")
    check(st == 400 and "limit" in j["error"]["message"], "400 naming limit")
    st, _, j, _ = sv.request("POST", "/api/traces", {"source": "x", "messages": [{"role": "bot", "content": "hi"}]})
    check(st == 400 and "messages[0].role" in j["error"]["message"], "400 naming messages[0].role")
    st, _, j, _ = sv.request("POST", "/api/traces", raw="{broken")
    check(st == 400 and "JSON" in j["error"]["message"], "400 on a body that is not JSON")
    st, _, j, _ = sv.request("GET", "/api/datasets/nope-v1")
    check(st == 404, "404 for an unknown dataset")

    # 16 concurrent clients, 25 posts of 2 traces each
    errors = []

    def client(k):
        for i in range(25):
            s, _, _, t = sv.request("POST", "/api/traces", [{"source": f"c{k}", "prompt": f"p{i}", "completion": "x"},
                                                            {"source": f"c{k}", "prompt": f"q{i}", "completion": "y"}])
            if s != 201:
                errors.append((k, i, s, t[:200]))
    th = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    [t.start() for t in th]
    [t.join() for t in th]
    counts = []
    for k in range(16):
        s, _, j, _ = sv.request("GET", f"/api/traces?source=c{k}&limit=1000")
        counts.append(len(j["traces"]))
    check(not errors and counts == [50] * 16, f"16 concurrent HTTP clients: every trace stored ({errors[:2]}, {counts})")

    # a served conversation becomes a trace
    st, _, j, _ = sv.request("POST", "/v1/chat/completions", {"model": "base", "messages": [{"role": "user", "content": "hello"}],
                                                               "max_tokens": 4, "temperature": 0})
    check(st == 200, f"a chat completion ({st})")
    st, _, j, _ = sv.request("GET", "/api/traces?source=serve")
    ok = st == 200 and len(j["traces"]) == 1 and j["traces"][0]["messages"][0]["content"] == "hello" \
        and j["traces"][0]["messages"][-1]["role"] == "assistant"
    check(ok, "--log-traces: the conversation is stored as a serve trace (user + assistant)")
    st, h, _, text = sv.request("GET", "/ui/")
    check(st == 200 and "text/html" in h.get("content-type", "") and "app.js" in text, "GET /ui/: the page")
    st, _, _, _ = sv.request("GET", "/ui/app.js")
    check(st == 200, "GET /ui/app.js")
    st, _, j, _ = sv.request("GET", "/v1/models")
    check(st == 200, "the OpenAI API is still there")
finally:
    rc = sv.stop()
check(rc == 0, f"tunic serve stops cleanly on SIGTERM ({rc})")

sv = Server(W, model, "--store", DB, "--api-key", "k3y", "--quiet", name="auth")
try:
    st, _, _, _ = sv.request("GET", "/api/datasets")
    check(st == 401, "with --api-key the store's API needs the key")
    st, _, j, _ = sv.request("GET", "/api/datasets", headers={"Authorization": "Bearer k3y"})
    check(st == 200 and j["datasets"][0]["key"] == "hcd_baseline-v1", "and answers with it (the same file, reopened)")
finally:
    sv.stop()
p = run(["serve", "--model", model, "--store", "/nonexistent/dir/x.db", "--port", "0"])
check(p.returncode != 0 and "/nonexistent/dir/x.db" in p.stderr, "an unusable --store is an error naming it")
finish()
