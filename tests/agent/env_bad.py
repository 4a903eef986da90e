#!/usr/bin/python3
"""env_bad.py MODE - misbehaving --env-cmd environments for tests/agent. Resets are answered
properly; then, by MODE:
  dies     exits with status 3 at the first step (writes a last word on stderr)
  hangs    never answers a step (resets and closes still answered)
  garbage  answers a step whose message content is "garbage" with a line that is not JSON,
           one whose content is "badshape" with a result of the wrong shape, others properly
  errors   answers steps with a JSON error object
"""
import json
import sys

mode = sys.argv[1]
for line in sys.stdin:
    req = json.loads(line)
    m, p = req["method"], req.get("params") or {}
    if m == "reset" or m == "close":
        out = {"id": req["id"], "result": {"messages": [{"role": "user", "content": "hello"}]} if m == "reset" else {}}
    elif mode == "dies":
        sys.stderr.write("env_bad: dying on purpose\n")
        sys.exit(3)
    elif mode == "hangs":
        continue
    elif mode == "errors":
        out = {"id": req["id"], "error": {"code": 1, "message": "the step failed on purpose"}}
    else:
        content = (p.get("message") or {}).get("content")
        if content == "garbage":
            sys.stdout.write("this is not json {{{\n")
            sys.stdout.flush()
            continue
        if content == "badshape":
            out = {"id": req["id"], "result": {"messages": "not a list", "reward": "high"}}
        else:
            out = {"id": req["id"], "result": {"messages": [], "reward": 0.5, "done": True}}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
