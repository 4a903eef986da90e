#!/usr/bin/python3
"""Issue 22: `tunic ppo --critic DIR` (a separate critic model with a value head) is PPO's formula,
recomputed independently (PyTorch float64), and a killed run resumes to the same weights.

Run: the tiny llama policy (byte tokenizer) and a smaller critic over the same tokenizer (1 layer,
hidden 32), 2 steps of 2 prompts x 2 completions, 20 tokens, beta 0.1 with the KL in the rewards,
gamma 0.9, gae_lambda 0.8, clip_range_value 0.2, vf_coef 0.5, ent_coef 0.1, lr 1e-3, critic lr 3e-3,
--dump-rollouts, --dump-grads and a checkpoint after each step.
  - each step (tests/grpo/ppo_ref.py): returns = GAE over the dumped values (1e-6), whitened
    advantages (1e-6 relative), explained variance (1e-6), policy and value losses = metrics (1e-6);
  - step 2: the critic of checkpoints/step_1/critic (model folder + value_head.safetensors) run by
    tests/ref/hf_decoder.py: its values = the dumped rollout values (1e-4); autograd's gradient of
    vf_coef x value loss w.r.t. every critic weight = --dump-grads' critic/step_2.safetensors and the
    value head's = vhead_step_2 (|d| <= 1e-4 + 1e-3 |ref|); the policy's gradient = that of policy
    loss - ent_coef entropy alone (the value loss does not reach the policy); without vf_coef the
    critic's gradient is further off (so the test can fail);
  - a run killed after its step-1 checkpoint (step 2 and the final folders removed) resumed with
    --resume ends with the uninterrupted run's policy, critic and value head, bit for bit;
  - --critic with another vocabulary is refused with a message naming it.
"""
import os
import shutil

from common_grpo import ENV, check, expect_error, finish, init_model, make_data, ok_run, read_metrics, st_arrays, workdir
import numpy as np
import torch
import torch.nn.functional as F
from hf_decoder import Decoder
from ppo_ref import autograd_terms, run_checked

torch.set_num_threads(1)
W = workdir("ppocritic")
MODEL = init_model(os.path.join(W, "m"), seed=5)
SMALL = '{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}'
CRITIC = init_model(os.path.join(W, "c"), seed=9, extra=["--override", SMALL])
D = make_data(W)
HERE = os.path.dirname(os.path.abspath(__file__))
LETTERS = f"/usr/bin/python3 {os.path.join(HERE, 'reward_letters.py')}"
B, G, MAXTOK, BETA, EPS, GAMMA, LAM, CLIPV, VF, ENT, T = 2, 2, 20, 0.1, 0.2, 0.9, 0.8, 0.2, 0.5, 0.1, 0.9
ARGS = ["--model", MODEL, "--critic", CRITIC, "--data", os.path.join(D, "train_grpo.jsonl"), "--steps", 2,
        "--batch-size", B, "--num-generations", G, "--max-tokens-to-generate", MAXTOK, "--beta", BETA, "--epsilon", EPS,
        "--gamma", GAMMA, "--gae-lambda", LAM, "--clip-range-value", CLIPV, "--vf-coef", VF, "--ent-coef", ENT,
        "--temperature", T, "--lr", 1e-3, "--critic-lr", 3e-3, "--max-grad-norm", 1.0, "--seed", 3,
        "--reward", "format_exact:1", "--reward-cmd", LETTERS, "--save-every", 1, "--keep-last", 0]
OUT = os.path.join(W, "run")
metrics, rolls = run_checked(ARGS, OUT, "ppo --critic run", B * G, {"BETA": BETA, "GAMMA": GAMMA, "LAM": LAM, "EPS": EPS,
                                                         "CLIPV": CLIPV})

# ---- step 2: the critic's values and gradients, the policy's gradient ----
rows = [r for r in rolls if r["step"] == 2]
ck1 = os.path.join(OUT, "checkpoints", "step_1")
pol = Decoder.load(ck1, dtype=torch.float64, requires_grad=True)
cri = Decoder.load(os.path.join(ck1, "critic"), dtype=torch.float64, requires_grad=True)
vh = st_arrays(os.path.join(ck1, "critic", "value_head.safetensors"))
wv = torch.tensor(np.concatenate([vh["v_head.weight"].reshape(-1), vh["v_head.bias"]]).astype(np.float64), requires_grad=True)
check(wv.numel() == 33 and float(wv.abs().max()) > 0, f"the critic's value head ({wv.numel()} values) moved in step 1")
ntok = sum(len(r["completion_ids"]) for r in rows)
pl = vl = ent = 0.0
e_v = 0.0
for r in rows:
    p, c = r["prompt_ids"], r["completion_ids"]
    ids = torch.tensor(p + c)[None]
    sl = slice(len(p) - 1, len(p) + len(c) - 1)
    logits = pol.forward(ids)
    lsm = F.log_softmax(logits[0, sl] / T, dim=-1)
    _, hid = cri.forward(ids, return_hidden=True)
    V = hid[0, sl] @ wv[:-1] + wv[-1]
    a, b, h, e = autograd_terms(r, lsm, V, len(rows), ntok, EPS, CLIPV)
    pl, vl, ent, e_v = pl + a, vl + b, ent + h, max(e_v, e)
check(e_v <= 1e-4, f"step 2: the critic's value head on the reference decoder's hidden states = the dumped rollout values "
      f"(max err {e_v:.1e})")


def compare(model, total, dumped, extra=None):
    names = list(model.params)
    gs = torch.autograd.grad(total, [model.params[n] for n in names] + ([extra] if extra is not None else []),
                             allow_unused=True, retain_graph=True)
    worst, bad = 0.0, 0
    for n, g in zip(names, gs):
        ref = (g if g is not None else torch.zeros_like(model.params[n])).numpy().reshape(-1)
        d = np.abs(dumped[n].astype(np.float64) - ref)
        worst = max(worst, float(d.max()))
        bad += int((d > 1e-4 + 1e-3 * np.abs(ref)).sum())
    return worst, bad, (gs[-1].numpy() if extra is not None else None)


cg = st_arrays(os.path.join(OUT, "grads", "critic", "step_2.safetensors"))
vg = st_arrays(os.path.join(OUT, "grads", "vhead_step_2.safetensors"))["v_head"].astype(np.float64)
worst, bad, gv = compare(cri, VF * vl, cg, wv)
dv = float(np.abs(vg - gv).max())
check(bad == 0 and dv <= 1e-4, f"step 2: the critic's gradient = autograd's of vf_coef x value loss for every weight "
      f"(max abs err {worst:.1e}) and the value head's (max err {dv:.1e})")
w2, bad2, _ = compare(cri, vl, cg)
check(bad2 > 0, f"step 2: without vf_coef the critic's gradient is further off ({bad2} elements beyond the tolerance)")
worst, bad, _ = compare(pol, pl - ENT * ent, st_arrays(os.path.join(OUT, "grads", "step_2.safetensors")))
check(bad == 0, f"step 2: the policy's gradient = autograd's of policy loss - ent_coef entropy (max abs err {worst:.1e})")

# ---- killed after step 1's checkpoint, resumed: the same weights as the uninterrupted run ----
RES = os.path.join(W, "resumed")
shutil.copytree(OUT, RES)
for d in ("checkpoints/step_2", "model", "critic"):
    shutil.rmtree(os.path.join(RES, d))
ok_run(["ppo", *ARGS, "--out", RES, "--resume"], "ppo --critic --resume from step 1", env=ENV, timeout=300)
for f in ("model/model.safetensors", "critic/model.safetensors", "critic/value_head.safetensors",
          "critic/optimizer.safetensors"):
    same = open(os.path.join(OUT, f), "rb").read() == open(os.path.join(RES, f), "rb").read()
    check(same, f"resumed run's {f} = the uninterrupted run's, byte for byte")
m2 = read_metrics(RES)
check(len(m2) == 2 and m2[1]["value_loss"] == metrics[1]["value_loss"], "resumed step 2's value loss is the same")

# ---- a critic over another vocabulary is refused ----
OTHER = init_model(os.path.join(W, "o"), seed=2, extra=["--vocab", 300])
expect_error(["ppo", *[OTHER if a == CRITIC else a for a in ARGS], "--out", os.path.join(W, "bad")],
             "--critic with another vocabulary", ["--critic", "vocabulary of 300 tokens"], env=ENV)
finish()
