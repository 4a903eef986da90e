"""Shared helpers of the GRPO end-to-end tests (tests/grpo/*.py, registered in tests/grpo.cmake).

What it is for: a tiny byte-level model and the math prompts made with the CLI, running
`tunic grpo` with the test settings, reading the --dump-rollouts JSONL and --dump-grads files,
an independent transcription of the GRPO loss (TRL's GRPOTrainer / docs/losses.md) in PyTorch
float64 over tests/ref/hf_decoder.py's Decoder, and safetensors weights as numpy arrays.
What it is not: the tests themselves (each script states what it checks and with which tolerance).
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
from common import TUNIC, check, finish, init_model, ok_run, read_metrics, run, workdir, expect_error  # noqa: E402,F401

REWARD_CMD = f"/usr/bin/python3 {os.path.join(HERE, 'reward_letters.py')}"
ENV = {"OMP_NUM_THREADS": "1"}
EOS_IDS = (258, 260)  # the byte tokenizer's eos ids (tunic init --tokenizer bytes: config.json eos_token_id)


def make_data(w, n=40, seed=1):
    d = os.path.join(w, "data")
    ok_run(["data", "math", "--profile", "easy", "--n", n, "--seed", seed, "--out", d], "tunic data math")
    return d


def grpo(model, data, out, *extra, env=ENV, what=None, timeout=300):
    args = ["grpo", "--model", model, "--data", data, "--out", out, *extra]
    return ok_run(args, what or f"grpo {os.path.basename(out)}", env=env, timeout=timeout)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def st_arrays(path):
    """{name: numpy float32 array (flat)} of an f32 safetensors file."""
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=np.float32).reshape(v["shape"])
    return out


def metrics_without_timing(rows):
    drop = ("elapsed_s", "rollout_tokens_per_s", "train_tokens_per_s")
    return [{k: v for k, v in r.items() if k not in drop and not k.startswith("time")} for r in rows]


def completion_logprobs(dec, rows, T):
    """per rollout row: log_softmax(logits / T) of its completion tokens (torch float64 vector)."""
    import torch
    import torch.nn.functional as F
    out = []
    for r in rows:
        p, c = r["prompt_ids"], r["completion_ids"]
        ids = torch.tensor(p + c, dtype=torch.int64)
        logits = dec.forward(ids[None])[0]  # (P + n, V)
        lp = F.log_softmax(logits[len(p) - 1:len(p) + len(c) - 1] / T, dim=-1)
        out.append(lp.gather(1, torch.tensor(c)[:, None])[:, 0])
    return out


def grpo_loss_ref(lp, old, ref, adv, mask, beta, eps_lo, eps_hi, kl="k3", agg="sequence-mean-token-mean",
                  max_len=None):
    """TRL GRPOTrainer._compute_loss in the padded (S, L) form with a completion mask.
    lp: list of S float64 tensors (differentiable); old, ref: lists of tensors or None.
    Returns (loss, mean KL over kept tokens)."""
    import torch
    S = len(lp)
    L = max(1, max(len(x) for x in lp))
    pad = lambda xs: torch.stack([torch.cat([x, x.new_zeros(L - len(x))]) for x in xs])  # noqa: E731
    LP = pad(lp)
    OLD = pad([torch.as_tensor(o, dtype=torch.float64) for o in old])
    M = torch.stack([torch.cat([torch.ones(len(x), dtype=torch.float64) * mask[i],
                                torch.zeros(L - len(x), dtype=torch.float64)]) for i, x in enumerate(lp)])
    A = torch.tensor(adv, dtype=torch.float64)[:, None]
    ratio = torch.exp(LP - OLD)
    clipped = torch.clamp(ratio, 1 - eps_lo, 1 + eps_hi)
    per_tok = -torch.min(ratio * A, clipped * A)
    klv = torch.zeros_like(LP)
    if ref is not None:
        REF = pad([torch.as_tensor(o, dtype=torch.float64) for o in ref])
        if kl == "k3":
            klv = torch.exp(REF - LP) - (REF - LP) - 1
        elif kl == "k1":
            klv = LP - REF
        else:
            klv = 0.5 * (LP - REF) ** 2
        per_tok = per_tok + beta * klv
    if agg == "sequence-mean-token-mean":
        loss = ((per_tok * M).sum(1) / M.sum(1).clamp(min=1)).mean()
    elif agg == "token-mean":
        loss = (per_tok * M).sum() / M.sum().clamp(min=1)
    else:
        loss = (per_tok * M).sum() / (S * max_len)
    klm = float((klv * M).sum() / M.sum().clamp(min=1))
    return loss, klm
