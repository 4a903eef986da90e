#!/usr/bin/python3
"""Issue 16: the episode loop's statuses and limits through `tunic generate --chat --json` and
`tunic eval` with an --env-cmd environment (tests/agent/count_env.py: 3 turns, a user message
after each), on a tiny random model (its turns are whatever it samples, cut at --max-new-tokens):
  - done after the environment's 3 turns; messages alternate assistant / user; mask 0 on the prompt
    and the environment's messages, 1 on the model's tokens (as many segments as turns);
  - --max-turns 2: status max_turns after 2 turns;
  - --max-episode-tokens small: truncated, the transcript within prompt + budget;
  - an environment sleeping 3 s per step with --episode-timeout 1: timeout, in well under 3 turns' time;
  - an environment that dies: env_error with the reason, exit 0 (the episode fails, not the run);
  - a template that re-renders earlier turns differently (not prefix-preserving): env_error naming it;
  - tunic eval with the environment: exit 0 and the episodes' line.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from common import check, finish, init_model, ok_run, run, workdir  # noqa: E402

W = workdir("episodes")
M = init_model(os.path.join(W, "m"), seed=3)
ENV = f"/usr/bin/python3 {os.path.join(HERE, 'count_env.py')}"


def episode(*extra, env_args="", what="generate"):
    p = ok_run(["generate", "--model", M, "--chat", "--prompt", "hello there", "--json", "--max-new-tokens", 6,
                "--env-cmd", ENV + env_args, *extra], what)
    return json.loads(p.stdout.strip().splitlines()[-1])


e = episode(what="3-turn episode")
msgs = e["messages"]
check(e["status"] == "done" and e["turns"] == 3, f"done after the environment's 3 turns ({e['status']}, {e['turns']})")
check([m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user", "assistant"], "messages alternate")
mask, P = e["mask"], e["prompt_len"]
segs = sum(1 for i in range(P, len(mask)) if mask[i] == 1 and (i == P or mask[i - 1] == 0))
check(not any(mask[:P]) and segs == 3 and mask[P] == 1, f"mask: 0 on the prompt, {segs} model segments for 3 turns")
check(all(lp == 0 for lp, k in zip(e["logprobs"], mask) if not k) and all(lp < 0 for lp, k in zip(e["logprobs"], mask) if k),
      "log-probs on model tokens only")
e = episode("--max-turns", 2, what="max turns")
check(e["status"] == "max_turns" and e["turns"] == 2, f"--max-turns 2: {e['status']} after {e['turns']} turns")
e = episode("--max-episode-tokens", 20, what="budget")
check(e["status"] == "truncated" and len(e["ids"]) <= e["prompt_len"] + 20, f"--max-episode-tokens 20: {e['status']}, {len(e['ids']) - e['prompt_len']} tokens")
t0 = time.time()
e = episode("--episode-timeout", 1, env_args=" sleep 3", what="timeout")
dt = time.time() - t0
check(e["status"] == "timeout" and dt < 8, f"--episode-timeout 1 with a 3 s environment: {e['status']} after {dt:.1f} s")
e = episode(env_args=" die", what="dying environment")
check(e["status"] == "env_error" and "exit" in e.get("error", ""), f"a dying environment: {e['status']} ({e.get('error', '')[:80]})")
bad = os.path.join(W, "bad.jinja")
with open(bad, "w") as f:  # the last user message is written differently from earlier ones
    f.write("{% for m in messages %}{% if loop.last %}[LAST]{% endif %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")
e = episode("--chat-template", bad, what="non prefix-preserving template")
check(e["status"] == "env_error" and "prefix-preserving" in e.get("error", ""), f"non prefix-preserving template: {e['status']}")
d = os.path.join(W, "ev.jsonl")
with open(d, "w") as f:
    for i in range(3):
        f.write(json.dumps({"id": i, "prompt": f"q{i}", "answer": "1"}) + "\n")
p = run(["eval", "--model", M, "--data", d, "--out", os.path.join(W, "r.jsonl"), "--env-cmd", ENV, "--max-new-tokens", 4, "--quiet"])
check(p.returncode == 0 and "episodes: 3, 3.00 turns" in p.stdout, "tunic eval with --env-cmd: 3 episodes of 3 turns")
finish()
