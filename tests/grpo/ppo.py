#!/usr/bin/python3
"""Issue 22: one `tunic ppo` step is PPO's formula, recomputed independently (PyTorch float64).

Run: the tiny llama (byte tokenizer), 2 steps of 2 prompts x 2 completions, 24 tokens, beta 0.1 with
the KL in the rewards (k1 of the rollout's log-probs against the reference's, -beta per token),
gamma 0.9, gae_lambda 0.8, clip_range_value 0.2, vf_coef 0.5, ent_coef 0.1, lr 1e-3,
--dump-rollouts, --dump-grads and a checkpoint after each step.
For each step, from the dump:
  - GAE: per-token rewards (-beta (old - ref), plus the total on the last token), the dumped
    rollout values -> returns (1e-6) and advantages whitened over the batch's tokens (token mean,
    population variance, 1/sqrt(max(var, 1e-8))) = the dumped token advantages (1e-6 x max(1, |A|));
    explained_variance = 1 - Var(R - V) / Var(R) (1e-6);
  - the policy loss from the dumped log-probs with those advantages (clipped ratio per token,
    per-sequence token mean then mean) = metrics loss, the value loss 0.5 max((V - R)^2,
    (V_clip - R)^2) as a token mean = metrics value_loss (1e-6 relative);
  - step 2 (the head is no longer zero): the policy of checkpoints/step_1 and its value head
    (value_head.safetensors) run by tests/ref/hf_decoder.py with autograd: the values = the dumped
    old values (1e-4), and the gradient of policy loss + vf_coef value loss - ent_coef entropy w.r.t.
    every weight = --dump-grads (|d| <= 1e-4 + 1e-3 |ref|), the value head's gradient likewise; the
    same without the value term or without the entropy term is further off (so the test can fail).
Resume: the run resumed from checkpoints/step_1 (the value head and its AdamW state restored)
repeats step 2's metrics exactly.
"""
import math
import os
import shutil

from common_grpo import check, completion_logprobs, finish, init_model, make_data, ok_run, read_metrics, st_arrays, workdir, ENV
import numpy as np
import torch
import torch.nn.functional as F
from hf_decoder import Decoder
from ppo_ref import autograd_terms, run_checked

torch.set_num_threads(1)
W = workdir("ppostep")
MODEL = init_model(os.path.join(W, "m"), seed=5)
D = make_data(W)
HERE = os.path.dirname(os.path.abspath(__file__))
LETTERS = f"/usr/bin/python3 {os.path.join(HERE, 'reward_letters.py')}"
B, G, MAXTOK, BETA, EPS, GAMMA, LAM, CLIPV, VF, ENT, T = 2, 2, 24, 0.1, 0.2, 0.9, 0.8, 0.2, 0.5, 0.1, 0.9
ARGS = ["--model", MODEL, "--data", os.path.join(D, "train_grpo.jsonl"), "--steps", 2, "--batch-size", B,
        "--num-generations", G, "--max-tokens-to-generate", MAXTOK, "--beta", BETA, "--epsilon", EPS, "--gamma", GAMMA,
        "--gae-lambda", LAM, "--clip-range-value", CLIPV, "--vf-coef", VF, "--ent-coef", ENT, "--temperature", T,
        "--lr", 1e-3, "--max-grad-norm", 1.0, "--seed", 3, "--reward", "format_exact:1", "--reward-cmd", LETTERS,
        "--save-every", 1, "--keep-last", 0]
OUT = os.path.join(W, "run")
metrics, rolls = run_checked(ARGS, OUT, "ppo run", B * G, {"BETA": BETA, "GAMMA": GAMMA, "LAM": LAM, "EPS": EPS,
                                                         "CLIPV": CLIPV})

# ---- step 2's gradient through the value head into the backbone ----
rows = [r for r in rolls if r["step"] == 2]
ck1 = os.path.join(OUT, "checkpoints", "step_1")
pol = Decoder.load(ck1, dtype=torch.float64, requires_grad=True)
vh = st_arrays(os.path.join(ck1, "value_head.safetensors"))
wv = torch.tensor(np.concatenate([vh["v_head.weight"].reshape(-1), vh["v_head.bias"]]).astype(np.float64), requires_grad=True)
check(float(wv.abs().max()) > 0, "the value head moved in step 1")
ntok = sum(len(r["completion_ids"]) for r in rows)


def losses():
    pl = vl = ent = 0.0
    e_v = 0.0
    for r in rows:
        p, c = r["prompt_ids"], r["completion_ids"]
        logits, hid = pol.forward(torch.tensor(p + c)[None], return_hidden=True)
        sl = slice(len(p) - 1, len(p) + len(c) - 1)
        lsm = F.log_softmax(logits[0, sl] / T, dim=-1)
        V = hid[0, sl] @ wv[:-1] + wv[-1]
        a, b, h, e = autograd_terms(r, lsm, V, len(rows), ntok, EPS, CLIPV)
        pl, vl, ent, e_v = pl + a, vl + b, ent + h, max(e_v, e)
    return pl, vl, ent, e_v


pl, vl, ent, e_v = losses()
check(e_v <= 1e-4, f"step 2: the value head on the reference decoder's hidden states = the dumped rollout values (max err {e_v:.1e})")
names = list(pol.params)
ours = st_arrays(os.path.join(OUT, "grads", "step_2.safetensors"))
ours_v = st_arrays(os.path.join(OUT, "grads", "vhead_step_2.safetensors"))["v_head"].astype(np.float64)


def max_err(total):
    gs = torch.autograd.grad(total, [pol.params[n] for n in names] + [wv], allow_unused=True, retain_graph=True)
    worst, bad, gmax = 0.0, 0, 0.0
    for n, g in zip(names, gs[:-1]):
        ref = (g if g is not None else torch.zeros_like(pol.params[n])).numpy().reshape(-1)
        d = np.abs(ours[n].astype(np.float64) - ref)
        worst = max(worst, float(d.max()))
        gmax = max(gmax, float(np.abs(ref).max()))
        bad += int((d > 1e-4 + 1e-3 * np.abs(ref)).sum())
    dv = float(np.abs(ours_v - (gs[-1].numpy() if gs[-1] is not None else 0)).max())
    return worst, bad, gmax, dv


worst, bad, gmax, dv = max_err(pl + VF * vl - ENT * ent)
check(bad == 0 and dv <= 1e-4, f"step 2: gradient of policy + vf_coef value - ent_coef entropy = the dumped one for every weight "
      f"(max abs err {worst:.1e}, max |ref| {gmax:.2e}) and the value head's (max err {dv:.1e})")
for what, tot in (("without the value loss", pl - ENT * ent), ("without the entropy bonus", pl + VF * vl)):
    w2, bad2, _, _ = max_err(tot)
    check(bad2 > 0, f"step 2: the gradient {what} is further off ({bad2} elements beyond the tolerance, max {w2:.1e})")

# ---- resume from step 1: the value head and its optimizer come back ----
RES = os.path.join(W, "resumed")
shutil.copytree(OUT, RES)
shutil.rmtree(os.path.join(RES, "checkpoints", "step_2"))
os.remove(os.path.join(RES, "roll.jsonl"))
ok_run(["ppo", *ARGS, "--out", RES, "--resume"], "ppo --resume from step 1", env=ENV, timeout=300)
m2 = read_metrics(RES)
drop = ("elapsed_s", "rollout_tokens_per_s", "train_tokens_per_s")
same = len(m2) == 2 and all(m2[1][k] == v for k, v in metrics[1].items() if k not in drop)
check(same, "resumed step 2 has the uninterrupted run's metrics exactly (value_loss "
      f"{m2[-1].get('value_loss')} vs {metrics[1]['value_loss']})")
finish()
