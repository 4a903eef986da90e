#!/usr/bin/python3
"""torch_pref.py - the PyTorch side of the DPO / distillation benchmark (bench/bench_pref.sh).

What it is for: time, in plain eager PyTorch (Debian's torch 1.13, f32, 2 threads), the same
training steps `tunic dpo`, `tunic distill` and `tunic sft` run, on the same checkpoints and the
same data (this script writes the JSONL both sides read), so tokens/s compare like for like:
  dpo      policy forward over the 2B sequences (prompt+chosen, prompt+rejected) + a frozen
           reference forward (no grad) + summed response log-probs + sigmoid DPO loss (beta 0.1)
  distill  frozen teacher forward (no grad) + student forward + 0.5 T^2 KL + 0.5 CE (T = 2) over
           the response rows
  sft      forward + CE over the response rows (the baseline DPO's extra cost is measured against)
then backward, global-norm clipping to 1 and AdamW (0.9/0.999, eps 1e-8, no weight decay,
constant lr 1e-5). The model is tests/ref/hf_decoder.py's Decoder (batched, eager attention with
an additive causal mask) in f32; every sequence of a batch has the same length, so no padding is
computed on either side. Tokens/s = tokens of the trained model's forward / step time; the
median step after warm-up steps is reported, with the first two losses (tunic's must agree).

Not for: correctness tests (tests/pref), inference speed (torch_infer.py).

    torch_pref.py --write-data DIR --pairs B --prompt-len P --resp-len R
    torch_pref.py --mode dpo|distill|sft --model DIR [--teacher DIR] --data DIR --steps 5 --warmup 2
        [--threads 2] [--label NAME] [--json FILE]
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from hf_decoder import Decoder  # noqa: E402

BOS, EOS = 257, 258


def text(i, k, n):
    return "".join(chr(97 + (i * 7919 + k * 104729 + j * 31 + (j * j) % 17) % 26) for j in range(n))


def write_data(d, pairs, P, R):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "prefs.jsonl"), "w") as f, open(os.path.join(d, "sft.jsonl"), "w") as g:
        for i in range(pairs):
            p, c, r = text(i, 0, P), text(i, 1, R), text(i, 2, R)
            f.write(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n")
            # SFT / distillation data: both responses, i.e. the same 2B sequences a DPO step runs
            g.write(json.dumps({"prompt": p, "completion": c}) + "\n")
            g.write(json.dumps({"prompt": p, "completion": r}) + "\n")


def load_rows(d, name):
    return [json.loads(l) for l in open(os.path.join(d, name))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-data")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--resp-len", type=int, default=64)
    ap.add_argument("--mode", choices=["dpo", "distill", "sft"])
    ap.add_argument("--model")
    ap.add_argument("--teacher")
    ap.add_argument("--data")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label", default="")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.write_data:
        write_data(a.write_data, a.pairs, a.prompt_len, a.resp_len)
        return
    torch.set_num_threads(a.threads)
    dec = Decoder.load(a.model, dtype=torch.float32, requires_grad=True)
    params = list(dec.params.values())
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    if a.mode == "dpo":
        rows = load_rows(a.data, "prefs.jsonl")
        ref = Decoder.load(a.model, dtype=torch.float32)
        seqs = []
        for r in rows:
            p = [BOS] + list(r["prompt"].encode())
            seqs += [p + list(r["chosen"].encode()) + [EOS], p + list(r["rejected"].encode()) + [EOS]]
    else:
        rows = load_rows(a.data, "sft.jsonl")
        seqs = [[BOS] + list(r["prompt"].encode()) + list(r["completion"].encode()) + [EOS] for r in rows]
        tch = Decoder.load(a.teacher, dtype=torch.float32) if a.mode == "distill" else None
    np_ = 1 + len(rows[0]["prompt"].encode())
    ids = torch.tensor(seqs)  # (S, L), all the same length
    S, L = ids.shape
    tgt = ids[:, np_:]  # targets of rows np_-1 .. L-2 (the response + EOS)

    def resp_logps(logits):
        lp = F.log_softmax(logits[:, np_ - 1:-1].float(), dim=-1)
        return lp.gather(2, tgt[..., None])[..., 0].sum(-1)  # (S)

    def step():
        opt.zero_grad(set_to_none=True)
        if a.mode == "dpo":
            with torch.no_grad():
                rl = resp_logps(ref.forward(ids))
            pl = resp_logps(dec.forward(ids))
            h = (pl[0::2] - pl[1::2]) - (rl[0::2] - rl[1::2])
            loss = -F.logsigmoid(0.1 * h).mean()
        elif a.mode == "distill":
            T = 2.0
            with torch.no_grad():
                u = tch.forward(ids)[:, np_ - 1:-1].reshape(-1, tch.spec.vocab)
            z = dec.forward(ids)[:, np_ - 1:-1].reshape(-1, dec.spec.vocab)
            lq, lp = F.log_softmax(z / T, -1), F.log_softmax(u / T, -1)
            kl = (lp.exp() * (lp - lq)).sum(-1).mean() * T * T
            loss = 0.5 * kl + 0.5 * F.cross_entropy(z, tgt.reshape(-1))
        else:
            z = dec.forward(ids)[:, np_ - 1:-1].reshape(-1, dec.spec.vocab)
            loss = F.cross_entropy(z, tgt.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    times, losses = [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        losses.append(step())
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"label": a.label, "tok_s": S * L / med, "tok_s_best": S * L / times[0], "step_s": med,
           "tokens": S * L, "losses": losses[:2], "rss_peak_mb": rss}
    print(json.dumps(out))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
