"""OpenAI's frequency_penalty and presence_penalty (issue 18): tunic's sampler against an
independent recomputation, through `tunic generate` and `tunic serve`.

What it checks:
1. `tunic generate --frequency-penalty F --presence-penalty P --json` (greedy) on a tiny Qwen3: at
   every step, numpy applies OpenAI's formula to the raw logits `tunic logits` dumps for the prefix
   (logit[j] -= count[j] * F + (count[j] > 0) * P, counts over the tokens generated so far - the
   prompt's tokens do not count): the generated token is the argmax and its log-prob the
   log-softmax of the penalised row (1e-4). Several (F, P) pairs, negative ones included; at least
   one of them changes the output (else the check would be vacuous).
2. `tunic serve` /v1/completions with the same token-id prompt and penalties: the same tokens and
   log-probs (1e-4) as tunic generate; top_logprobs come from the penalised distribution (the chosen
   token's entry equals its logprob).
3. Out of range (2.5, -3) is 400 naming the parameter; tunic generate refuses 2.5 with exit 2.
What it is not: the openai-client end-to-end check (tests/serve/client.mjs does that).
"""
import json
import os

import numpy as np

from serve_common import Server, tiny_base, check, finish, ok_run, workdir
from common import run  # noqa: E402  (tests/e2e, on the path through serve_common)

d = workdir("serve-pen")
model = tiny_base(d, seed=3)
prompt = [1, 2, 3, 4, 5, 3, 3]
NEW = 14


def gen(fp, pp):
    p = ok_run(["generate", "--model", model, "--ids", ",".join(map(str, prompt)), "--max-new-tokens", NEW, "--json",
                "--frequency-penalty", fp, "--presence-penalty", pp], f"generate F={fp} P={pp}")
    j = json.loads(p.stdout.strip().splitlines()[-1])
    return j["ids"], j["logprobs"]


def raw_rows(ids):
    """the raw next-token logits after prompt + ids[:k], for k = 0..len(ids)-1 (float64): one causal
    forward of the whole sequence, position len(prompt) - 1 + k"""
    out = os.path.join(d, "l.npy")
    ok_run(["logits", "--model", model, "--ids", ",".join(map(str, prompt + ids)), "--out", out, "--force"],
           "tunic logits of the sequence")
    lg = np.load(out)[0].astype(np.float64)
    return [lg[len(prompt) - 1 + k] for k in range(len(ids))]


def penalised(row, gen_so_far, fp, pp):
    row = row.copy()
    cnt = np.zeros(row.shape[0])
    for t in gen_so_far:
        cnt[t] += 1
    return row - cnt * fp - (cnt > 0) * pp


plain, _ = gen(0, 0)
changed = False
for fp, pp in [(0.0, 2.0), (1.5, 0.0), (0.6, 0.9), (-0.4, -1.0)]:
    ids, lps = gen(fp, pp)
    rows = raw_rows(ids)
    worst, argmax_ok = 0.0, True
    for k, t in enumerate(ids):
        z = penalised(rows[k], ids[:k], fp, pp)
        lsm = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
        argmax_ok = argmax_ok and int(np.argmax(z)) == t
        worst = max(worst, abs(lsm[t] - lps[k]))
    check(argmax_ok and worst < 1e-4, f"generate F={fp} P={pp}: each token is the argmax of the recomputed penalised "
          f"logits, log-probs within {worst:.1e} (<= 1e-4)")
    changed = changed or ids != plain
    if (fp, pp) == (0.0, 2.0):
        pres = ids
    if (fp, pp) == (0.6, 0.9):
        mixed, mixed_lp = ids, lps
check(changed, f"the penalties change the greedy output (plain {plain})")
check(len(set(plain)) < len(plain), "without penalties greedy repeats a token (the case the penalties are for)")

sv = Server(d, model, "--slots", 4)
st, _, j, _ = sv.request("POST", "/v1/completions", {"model": "base", "prompt": prompt, "max_tokens": NEW,
                                                       "temperature": 0, "frequency_penalty": 0.6, "presence_penalty": 0.9,
                                                       "logprobs": 3, "stop": None})
ok = st == 200
if ok:
    lp = j["choices"][0]["logprobs"]
    diff = max(abs(a - b) for a, b in zip(lp["token_logprobs"], mixed_lp))
    check(len(lp["token_logprobs"]) == len(mixed) and diff < 1e-4,
          f"serve: the log-probs of tunic generate's penalised tokens (max diff {diff:.1e})")
    top_ok = all(abs(max(t.values()) - v) < 1e-5 for t, v in zip(lp["top_logprobs"], lp["token_logprobs"]))
    check(top_ok, "serve: top_logprobs are the penalised distribution's (greedy's token is the top entry)")
check(ok, f"serve: /v1/completions with penalties: {st}")
for name, v in [("frequency_penalty", 2.5), ("presence_penalty", -3)]:
    st, _, j, _ = sv.request("POST", "/v1/completions", {"model": "base", "prompt": "x", name: v})
    check(st == 400 and j["error"]["param"] == name, f"serve: {name} {v} is 400 naming it ({st})")
check(sv.stop() == 0, "serve: SIGTERM, exit 0")
p = run(["generate", "--model", model, "--ids", "1,2", "--presence-penalty", "2.5"])
check(p.returncode == 2 and "presence-penalty" in p.stderr, f"generate --presence-penalty 2.5: exit 2 ({p.stderr.strip()})")
finish()
