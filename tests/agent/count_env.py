#!/usr/bin/python3
"""A test environment over --env-cmd (the JSON-lines protocol of docs/agentic.md): each episode
lasts 3 model turns; after each turn it answers with a user message, and a turn's reward is the
fraction of letters in the assistant's content (so rewards differ between episodes).
Arguments: "sleep S" sleeps S seconds in every step; "die" exits at the first step.
Not for: anything but tests."""
import json
import sys
import time

SLEEP = float(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "sleep" else 0
DIE = len(sys.argv) > 1 and sys.argv[1] == "die"

turns = {}
for line in sys.stdin:
    req = json.loads(line)
    m, p, rid = req["method"], req.get("params", {}), req["id"]
    if m == "reset":
        turns[p["episode"]] = 0
        q = (p.get("task") or {}).get("prompt", "hello")
        res = {"messages": [{"role": "user", "content": "Q: " + str(q)[:20]}]}
    elif m == "step":
        if DIE:
            sys.exit(3)
        time.sleep(SLEEP)
        ep = p["episode"]
        turns[ep] += 1
        c = p["message"].get("content", "") or ""
        r = sum(ch.isalpha() for ch in c) / max(1, len(c))
        done = turns[ep] >= 3
        res = {"messages": [] if done else [{"role": "user", "content": "more %d" % turns[ep]}], "reward": r, "done": done}
    else:
        turns.pop(p.get("episode"), None)
        res = {}
    sys.stdout.write(json.dumps({"id": rid, "result": res}) + "\n")
    sys.stdout.flush()
