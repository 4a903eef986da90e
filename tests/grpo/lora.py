#!/usr/bin/python3
"""Issue 5: GRPO with LoRA: the reference is the base model with the adapter switched off, the
policy is base + adapter, and only the adapter is trained.

Run: tiny llama, 2 steps of 2 prompts x 4 generations, --lora-rank 4 (alpha 16, q/k/v/o), beta 0.1,
lr 1e-2 (so the step-2 policy visibly differs from the base), checkpoint every step, with
--dump-rollouts and --dump-grads. Checked with tests/ref/hf_decoder.py (float64):
  - every step's dumped reference log-probs equal the ORIGINAL base model's (1e-4 abs): the
    reference pass has the adapter off and the base weights in memory never moved;
  - every step's policy log-probs equal base + (alpha/r) B A with the adapter of the previous
    checkpoint (PEFT layout read independently; step 1: B = 0, so the base) (1e-4 abs), and at
    step 2 they differ from the reference log-probs by more than 1e-3 somewhere (the adapter is on);
  - the dumped gradients and the saved adapter hold only lora_A/lora_B tensors of the target
    modules, and the step-2 gradient equals autograd's w.r.t. A and B of the GRPO loss
    (|diff| <= 1e-4 + 1e-3 |ref|);
  - the base checkpoint files are byte-identical after training (sha256).
"""
import hashlib
import json
import os

from common_grpo import (REWARD_CMD, check, completion_logprobs, finish, grpo, grpo_loss_ref, init_model, make_data,
                         read_jsonl, read_metrics, st_arrays, workdir)
import numpy as np
import torch
from hf_decoder import Decoder

torch.set_num_threads(1)
W = workdir("grpolora")
MODEL = init_model(os.path.join(W, "m"), seed=6)
D = make_data(W)
OUT = os.path.join(W, "run")
T, BETA, EPS, R, ALPHA, B, G = 0.9, 0.1, 0.2, 4, 16.0, 2, 4
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


before = {f: sha(os.path.join(MODEL, f)) for f in sorted(os.listdir(MODEL))}
grpo(MODEL, os.path.join(D, "train_grpo.jsonl"), OUT, "--steps", 2, "--batch-size", B, "--num-generations", G,
     "--lora-rank", R, "--lora-alpha", ALPHA, "--beta", BETA, "--temperature", T, "--lr", "1e-2", "--max-grad-norm", 1.0,
     "--max-tokens-to-generate", 20, "--seed", 4, "--reward", "format_approx:1,numeric:1", "--reward-cmd", REWARD_CMD,
     "--save-every", 1, "--keep-last", 0,
     "--dump-rollouts", os.path.join(OUT, "roll.jsonl"), "--dump-grads", os.path.join(OUT, "grads"))
after = {f: sha(os.path.join(MODEL, f)) for f in sorted(os.listdir(MODEL))}
check(before == after, f"base model files byte-identical after LoRA GRPO ({', '.join(before)})")
rolls = read_jsonl(os.path.join(OUT, "roll.jsonl"))
metrics = read_metrics(OUT)
L = json.load(open(os.path.join(MODEL, "config.json")))["num_hidden_layers"]
want_names = {f"base_model.model.model.layers.{l}.self_attn.{t}.lora_{ab}.weight" for l in range(L) for t in TARGETS
              for ab in "AB"}
adapter = st_arrays(os.path.join(OUT, "adapter", "adapter_model.safetensors"))
check(set(adapter) == want_names, f"final adapter holds exactly the {len(want_names)} lora_A/lora_B tensors")
for step in (1, 2):
    g = st_arrays(os.path.join(OUT, "grads", f"step_{step}.safetensors"))
    check(set(g) == want_names, f"step {step}: the gradient covers only the adapter ({len(g)} tensors)")

base = Decoder.load(MODEL, dtype=torch.float64)
W0 = {k: v.detach().clone() for k, v in base.params.items()}


def policy_with_adapter(ad, requires_grad=False):
    """a Decoder whose projection weights are W0 + (alpha/r) B A (A, B leaves when requires_grad)"""
    dec = Decoder.load(MODEL, dtype=torch.float64)
    leaves = {}
    for name in want_names:
        leaves[name] = torch.tensor(ad[name].astype(np.float64), requires_grad=requires_grad)
    for l in range(L):
        for t in TARGETS:
            pre = f"base_model.model.model.layers.{l}.self_attn.{t}"
            A, Bm = leaves[pre + ".lora_A.weight"], leaves[pre + ".lora_B.weight"]
            hf = f"model.layers.{l}.self_attn.{t}.weight"
            dec.params[hf] = W0[hf] + (ALPHA / R) * (Bm @ A)
    return dec, leaves


def max_err(a_list, rows, key):
    return max(float((a.detach() - torch.tensor(r[key], dtype=torch.float64)).abs().max()) for a, r in zip(a_list, rows)
               if len(a))


for step in (1, 2):
    rows = [r for r in rolls if r["step"] == step]
    with torch.no_grad():
        ref_lp = completion_logprobs(base, rows, T)
    e = max_err(ref_lp, rows, "ref_logprobs")
    check(e <= 1e-4, f"step {step}: reference log-probs = the original base model's (adapter off) (max err {e:.2e})")
    if step == 1:
        e = max_err(ref_lp, rows, "logprobs")
        check(e <= 1e-4, f"step 1: policy log-probs = base (B = 0 at init) (max err {e:.2e})")
        continue
    ad = st_arrays(os.path.join(OUT, "checkpoints", "step_1", "adapter_model.safetensors"))
    pol, leaves = policy_with_adapter(ad, requires_grad=True)
    lp = completion_logprobs(pol, rows, T)
    e = max_err(lp, rows, "logprobs")
    check(e <= 1e-4, f"step 2: policy log-probs = base + (alpha/r) B A of checkpoint step_1 (max err {e:.2e})")
    e_old = max_err(lp, rows, "old_logprobs")
    check(e_old <= 1e-4, f"step 2: rollout log-probs (pi_old) = base + adapter (max err {e_old:.2e})")
    d = max(float((a.detach() - b).abs().max()) for a, b in zip(lp, ref_lp) if len(a))
    check(d > 1e-3, f"step 2: policy and reference log-probs differ (max {d:.2e}): the adapter is on for the policy only")
    loss, klm = grpo_loss_ref(lp, [r["old_logprobs"] for r in rows], ref_lp, [r["advantage"] for r in rows],
                              [r["seq_mask"] for r in rows], BETA, EPS, EPS)
    check(abs(float(loss) - metrics[1]["loss"]) <= 1e-5 and abs(klm - metrics[1]["kl"]) <= 1e-5,
          f"step 2: loss {metrics[1]['loss']:.6e} / kl {metrics[1]['kl']:.6e} = reference {float(loss):.6e} / {klm:.6e}")
    names = sorted(leaves)
    grads = torch.autograd.grad(loss, [leaves[n] for n in names])
    ours = st_arrays(os.path.join(OUT, "grads", "step_2.safetensors"))
    worst, bad = 0.0, []
    for n, gr in zip(names, grads):
        a, b = ours[n].astype(np.float64), gr.numpy().reshape(-1)
        dd = np.abs(a - b)
        worst = max(worst, float(dd.max()))
        if (dd > 1e-4 + 1e-3 * np.abs(b)).any():
            bad.append(n)
    gmax = max(float(gr.abs().max()) for gr in grads)
    check(not bad and gmax > 1e-3, f"step 2: adapter gradient = autograd's (max |ref| {gmax:.2e}, max err {worst:.2e})"
          + (f" -- off: {bad[:3]}" if bad else ""))
finish()
