#!/usr/bin/python3
"""Issue 16: one step of multi-turn (agentic) GRPO is the GRPO formula over the model's tokens of
whole transcripts, recomputed independently from the dumped transcripts.

Run: a tiny llama (byte tokenizer), math prompts, 1 step of 2 prompts x 4 episodes against
tests/agent/count_env.py over --env-cmd (3 model turns per episode, each answered with a user
message "more k"; a turn's reward = the fraction of letters of the assistant's content),
--reward env:1, beta 0.1 (k3), temperature 0.9, 8 tokens per turn, --max-episode-tokens 70 and
--filter-statuses truncated, with --dump-rollouts and --dump-grads.

Checks, each from the dump and tests/ref/hf_decoder.py's Decoder (float64, autograd):
  - masks: the tokens after the prompt alternate model segments (mask 1) and environment segments
    (mask 0) that are exactly the byte template's rendering of the returned user message
    ([<end_of_turn> when the turn did not end with it] "\\n" <start_of_turn> "user\\n" "more k"
    <end_of_turn> "\\n" <start_of_turn> "model\\n"); one model segment per turn;
  - the behaviour log-probs (sampler, dumped per model token) = log_softmax(logits / T) of the
    whole transcript at the model's positions (1e-4 abs): the KV cache extended across turns gives
    the logits of the whole transcript;
  - env reward = the sum over turns of the letter fraction of each assistant message (1e-6), the
    total = env weight x it, advantages = group-normalised totals (1e-5), seq_mask = 0 exactly
    for the truncated episodes;
  - the loss (TRL's padded form, sequence-mean-token-mean, k3 KL) over the model tokens = the
    logged loss (1e-5) and its gradient = the dumped gradient (|diff| <= 1e-4 + 1e-3|ref|); the
    variant with the loss on every token after the prompt (tool/env tokens unmasked) is further off
    than the tolerance (so the test can fail).
"""
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "grpo"))
from common_grpo import (check, finish, grpo, grpo_loss_ref, init_model, make_data, read_jsonl, read_metrics,  # noqa: E402
                         st_arrays, workdir)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hf_decoder import Decoder  # noqa: E402

torch.set_num_threads(1)
W = workdir("agentstep")
MODEL = init_model(os.path.join(W, "m"), seed=5)
D = make_data(W)
OUT = os.path.join(W, "run")
T, BETA, EPS, B, G, TURN, BUDGET = 0.9, 0.1, 0.2, 2, 4, 8, 70
ENVCMD = f"/usr/bin/python3 {os.path.join(HERE, 'count_env.py')}"
grpo(MODEL, os.path.join(D, "train_grpo.jsonl"), OUT, "--steps", 1, "--batch-size", B, "--num-generations", G,
     "--beta", BETA, "--temperature", T, "--epsilon", EPS, "--lr", 1e-3, "--max-tokens-to-generate", TURN,
     "--max-episode-tokens", BUDGET, "--max-turns", 5, "--env-cmd", ENVCMD, "--reward", "env:1", "--seed", 3,
     "--no-system-prompt", "--filter-statuses", "truncated", "--save-every", 0,
     "--dump-rollouts", os.path.join(OUT, "roll.jsonl"), "--dump-grads", os.path.join(OUT, "grads"))
m = read_metrics(OUT)[0]
rows = read_jsonl(os.path.join(OUT, "roll.jsonl"))
S = len(rows)
check(S == B * G, f"{B * G} dumped transcripts ({S})")
BOS, SOT, EOT = 257, 259, 260
eot_b = list(b"\n")


def env_segment(k, after_eot):
    return ([] if after_eot else [EOT]) + [10, SOT] + list(b"user\n") + list(b"more %d" % k) + [EOT, 10, SOT] + list(b"model\n")


# ---- masks: model segments and environment segments ----
ok_mask, ok_turns = True, True
for r in rows:
    ids, mask, P = r["ids"], r["mask"], r["prompt_len"]
    ok_mask &= len(ids) == len(mask) and not any(mask[:P]) and len(ids) <= P + BUDGET
    segs, p = [], P
    while p < len(ids):
        q = p
        while q < len(ids) and mask[q] == mask[p]:
            q += 1
        segs.append((mask[p], ids[p:q]))
        p = q
    model_segs = [s for k, s in segs if k == 1]
    env_segs = [s for k, s in segs if k == 0]
    ok_turns &= len(model_segs) == r["turns"] and segs[0][0] == 1
    for k, e in enumerate(env_segs):
        want = env_segment(k + 1, model_segs[k][-1] == EOT)
        full = e == want
        if not full and k == len(env_segs) - 1:  # a cut at the budget: the last one may be missing (never partial)
            full = False
        ok_mask &= full
check(ok_mask, "mask 0 on the prompt and on every environment message, which is the template's rendering of it; 1 on the model's tokens")
check(ok_turns, "one model segment per turn")
print("    statuses:", [r["status"] for r in rows], "turns:", [r["turns"] for r in rows])

# ---- behaviour log-probs over the whole transcript ----
pol = Decoder.load(MODEL, dtype=torch.float64, requires_grad=True)
ref_dec = Decoder.load(MODEL, dtype=torch.float64)


def model_logprobs(dec, r, all_after_prompt=False):
    ids = torch.tensor(r["ids"], dtype=torch.int64)
    logits = dec.forward(ids[None])[0]
    lps = F.log_softmax(logits[:-1] / T, dim=-1).gather(1, ids[1:, None])[:, 0]
    sel = [p - 1 for p in range(1, len(r["ids"])) if (r["mask"][p] or (all_after_prompt and p >= r["prompt_len"]))]
    return lps[sel]


lp = [model_logprobs(pol, r) for r in rows]
e_old = max(float((a.detach() - torch.tensor(r["old_logprobs"], dtype=torch.float64)).abs().max()) for a, r in zip(lp, rows) if len(a))
check(all(len(a) == len(r["old_logprobs"]) for a, r in zip(lp, rows)), "one dumped log-prob per model token")
check(e_old <= 1e-4, f"sampler log-probs across turns = the whole transcript's log-probs at the model's positions (max err {e_old:.2e})")
with torch.no_grad():
    ref_lp = [model_logprobs(ref_dec, r) for r in rows]

# ---- rewards, advantages, filters ----


def stepped(r):
    """the assistant messages the environment saw: all but a turn cut at the episode's budget"""
    a = [msg for msg in r["messages"] if msg["role"] == "assistant"]
    return a[:-1] if r["status"] == "truncated" and r["mask"][-1] == 1 else a


env_r = [sum(sum(c.isalpha() for c in msg["content"]) / max(1, len(msg["content"])) for msg in stepped(r)) for r in rows]
check(max(abs(a - r["env_reward"]) for a, r in zip(env_r, rows)) <= 1e-6,
      "env reward = sum over the stepped turns of the environment's rewards (a turn cut at the budget is not stepped)")
tot = [r["total"] for r in rows]
check(max(abs(a - b) for a, b in zip(tot, env_r)) <= 1e-5, "total = env:1 x env reward")
adv = []
for g in range(B):
    grp = tot[g * G:(g + 1) * G]
    mu = sum(grp) / G
    sd = math.sqrt(sum((x - mu) ** 2 for x in grp) / (G - 1))
    adv += [(x - mu) / (sd + 1e-4) for x in grp]
check(max(abs(a - r["advantage"]) for a, r in zip(adv, rows)) <= 1e-5, "advantages per trajectory within the group")
check(any(abs(a) > 0.1 for a in adv), f"some advantage is non-zero (max |A| {max(abs(a) for a in adv):.3f})")
smask = [r["seq_mask"] for r in rows]
check(all((s == 0) == (r["status"] == "truncated") for s, r in zip(smask, rows)), "--filter-statuses truncated drops exactly the truncated episodes")
check(abs(m["episode/turns"] - sum(r["turns"] for r in rows) / S) <= 1e-9, f"episode/turns {m['episode/turns']} = mean turns")
check(m["episode/status/truncated"] == sum(r["status"] == "truncated" for r in rows), "status counts in metrics.jsonl")

# ---- loss and gradient ----
old = [r["old_logprobs"] for r in rows]
loss, klm = grpo_loss_ref(lp, old, ref_lp, adv, smask, BETA, EPS, EPS)
check(abs(float(loss) - m["loss"]) <= 1e-5, f"loss {m['loss']:.8f} = reference {float(loss):.8f}")
names = list(pol.params)
grads = torch.autograd.grad(loss, [pol.params[n] for n in names], allow_unused=True, retain_graph=True)
ref_g = {n: (g if g is not None else torch.zeros_like(pol.params[n])).numpy().reshape(-1) for n, g in zip(names, grads)}
ours = st_arrays(os.path.join(OUT, "grads", "step_1.safetensors"))
bad, worst = [], 0.0
for n in ref_g:
    d = np.abs(ours[n].astype(np.float64) - ref_g[n])
    worst = max(worst, float(d.max()))
    if (d > 1e-4 + 1e-3 * np.abs(ref_g[n])).any():
        bad.append(n)
gmax = max(float(np.abs(g).max()) for g in ref_g.values())
print(f"    gradient: max |ref| {gmax:.3e}, max abs err {worst:.2e}")
check(not bad and set(ours) == set(ref_g), "every gradient element within 1e-4 + 1e-3|ref|" + (f" -- off: {bad[:4]}" if bad else ""))
# the variant with tool/env tokens in the loss is further off than the tolerance
lpa = [model_logprobs(pol, r, True) for r in rows]
olda = []
for r, a in zip(rows, lpa):
    # behaviour = current policy at step 1: old log-probs of the extra tokens are the policy's own
    olda.append(a.detach().tolist())
lv, _ = grpo_loss_ref(lpa, olda, [x.detach() for x in lpa], adv, smask, BETA, EPS, EPS)
gv = torch.autograd.grad(lv, [pol.params[n] for n in names], allow_unused=True)
dv = max(float(np.abs(ours[n].astype(np.float64) - (g.numpy().reshape(-1) if g is not None else 0)).max()) for n, g in zip(names, gv))
check(dv > 1e-4 + 1e-3 * gmax, f"the variant with the environment's tokens in the loss differs beyond the tolerance (max diff {dv:.2e})")
finish()
