#!/usr/bin/python3
"""env_good.py - a well-behaved --env-cmd environment for tests/agent (the protocol of
docs/agentic.md): reset starts a guessing episode whose secret is len(episode id); step gives
reward 1 when the assistant's content holds the secret, ends the episode on the second step.
--out-of-order: a worker thread answers every 30 ms all the requests received since, newest
first, so responses come back out of order. --tools: reset also lists a tool schema.
"""
import json
import sys
import threading
import time

OUT_OF_ORDER = "--out-of-order" in sys.argv
lock = threading.Lock()
episodes = {}


def answer(req):
    m, p = req.get("method"), req.get("params") or {}
    ep = p.get("episode")
    if m == "reset":
        episodes[ep] = {"secret": len(ep), "turns": 0}
        res = {"messages": [{"role": "user", "content": f"episode {ep}: guess my number"}]}
        if "--tools" in sys.argv:
            res["tools"] = [{"type": "function", "function": {"name": "guess", "description": "guess",
                                                              "parameters": {"type": "object"}}}]
        return {"id": req["id"], "result": res}
    if m == "step":
        st = episodes[ep]
        st["turns"] += 1
        content = (p.get("message") or {}).get("content") or ""
        ok = str(st["secret"]) in content
        return {"id": req["id"], "result": {
            "messages": [{"role": "user", "content": f"episode {ep} turn {st['turns']}: {'right' if ok else 'wrong'}"}],
            "reward": 1.0 if ok else 0.0, "done": st["turns"] >= 2, "info": {"turns": st["turns"]}}}
    if m == "close":
        episodes.pop(ep, None)
        return {"id": req["id"], "result": {}}
    return {"id": req["id"], "error": {"code": -32601, "message": f"unknown method {m}"}}


def emit(resp):
    with lock:
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()


pending = []


def worker():
    # every 30 ms: answer everything received since, newest first
    global pending
    while True:
        time.sleep(0.03)
        with lock:
            batch, pending = pending[::-1], []
        for r in batch:
            emit(answer(r))


if OUT_OF_ORDER:
    threading.Thread(target=worker, daemon=True).start()
for line in sys.stdin:
    req = json.loads(line)
    if OUT_OF_ORDER:
        with lock:
            pending.append(req)
    else:
        emit(answer(req))
time.sleep(0.1)
