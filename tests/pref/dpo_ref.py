#!/usr/bin/python3
"""Issue 6: `tunic dpo` step-1 numbers against an independent PyTorch computation.

The policy (tiny llama, seed 3) and a DIFFERENT reference (--ref-model, seed 4) make the
log-ratio h non-zero at step 1, so the loss depends on every log-prob. PyTorch (float64,
tests/ref/hf_decoder.py) computes for each pair the response log-probs (summed; averaged for
IPO and ORPO, as TRL's DPOTrainer / ORPOTrainer do), then TRL's formulas written out here:
  sigmoid  -(1-ls) logsig(b h) - ls logsig(-b h)            h = (pc - pr) - (rc - rr)
  ipo      (h - 1/(2b))^2
  hinge    relu(1 - b h)
  robust   ((1-ls)(-logsig(b h)) + ls logsig(-b h)) / (1 - 2 ls)
  orpo     CE over all chosen tokens (token mean) - lam * mean logsig(log_odds),
           log_odds = (ac - ar) - (log(1 - e^ac) - log(1 - e^ar))
and autograd gives the gradient norm over every weight. Checked against step 1 of metrics.jsonl
(computed at the initial weights): loss, rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies, logps/chosen, logps/rejected, grad_norm (pre-clip). Each variant runs as one
micro-batch of 4 pairs and as 1 pair x 4 micro-batches (--grad-accum 4: the step's loss is the
mean over all its pairs, ORPO's NLL the mean over all its chosen tokens).
Also: conversational JSONL (message lists) gives the log-probs of the chat-template tokens
(built here by hand from the template's text); --max-prompt-length / --max-response-length
truncation (prompt keeps its end, responses their start); --precompute-ref and the frozen copy
agree; with LoRA and no --ref-model the reference is the adapter-off base (step 1 is exactly
log 2 with zero rewards, and after training pc - rewards/beta equals the BASE model's
log-probs); bad lines fail naming FILE:LINE.
Tolerances: loss and statistics 2e-5 absolute (f32 sums of ~25 log-probs vs float64), grad norm
1e-4 relative.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import check, expect_error, finish, init_model, jsonl, ok_run, read_metrics, workdir  # noqa: E402
from hf_decoder import Decoder  # noqa: E402

torch.set_num_threads(1)
W = workdir("dporef")
POL = init_model(os.path.join(W, "pol"), seed=3)
REF = init_model(os.path.join(W, "ref"), seed=4)
ENV = {"OMP_NUM_THREADS": "1", "TN_PROGRESS": "off"}
BOS, EOS, SOT, EOT = 257, 258, 259, 260
TOL, GN_RTOL = 2e-5, 1e-4

PAIRS = [("what is two plus two?\n", "4.", "Sorry, it is 4, I think."),
         ("name a colour:\n", "red", "well... maybe blue, sorry"),
         ("say hi\n", "hi there", "no"),
         ("count to three:\n", "1 2 3", "one, two, and then three!!")]
DATA = jsonl(os.path.join(W, "p.jsonl"), [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS])


def enc(p, c, r):
    """(prompt, chosen, rejected) ids as pref.h defines the plain form: BOS + prompt | text + EOS."""
    return [BOS] + list(p.encode()), list(c.encode()) + [EOS], list(r.encode()) + [EOS]


def resp_logps(dec, prompt, resp):
    """sum of log p(resp tokens | prompt + earlier resp tokens), and the count"""
    ids = prompt + resp
    lp = F.log_softmax(dec.forward(torch.tensor(ids)[None])[0], dim=-1)  # (T, V)
    tgt = torch.tensor(ids[len(prompt):])
    return lp[len(prompt) - 1:-1].gather(1, tgt[:, None])[:, 0].sum(), len(resp)


def logsig(x):
    return F.logsigmoid(x)


def reference(kind, beta=0.5, ls=0.0, lam=0.3, pairs=PAIRS, encoded=None):
    pol = Decoder.load(POL, dtype=torch.float64, requires_grad=True)
    ref = Decoder.load(REF, dtype=torch.float64)
    avg = kind in ("ipo", "orpo")
    pcs, prs, rcs, rrs, lens_c = [], [], [], [], []
    for i, pr in enumerate(pairs):
        p, c, r = encoded[i] if encoded else enc(*pr)
        sc, nc = resp_logps(pol, p, c)
        sr, nr = resp_logps(pol, p, r)
        with torch.no_grad():
            tc, _ = resp_logps(ref, p, c)
            tr, _ = resp_logps(ref, p, r)
        lens_c.append(nc)
        if avg:
            sc, sr, tc, tr = sc / nc, sr / nr, tc / nc, tr / nr
        pcs.append(sc), prs.append(sr), rcs.append(tc), rrs.append(tr)
    pc, pr_, rc, rr = torch.stack(pcs), torch.stack(prs), torch.stack(rcs), torch.stack(rrs)
    out = {}
    if kind == "orpo":
        lo = (pc - pr_) - (torch.log1p(-torch.exp(pc)) - torch.log1p(-torch.exp(pr_)))
        n = torch.tensor(lens_c, dtype=torch.float64)
        nll = (-(pc * n)).sum() / n.sum()
        loss = nll - lam * logsig(lo).mean()
        rch, rrj = lam * pc.detach(), lam * pr_.detach()
        out["nll_loss"] = nll.item()
        out["log_odds_ratio"] = logsig(lo).mean().item()
        out["log_odds_chosen"] = lo.mean().item()
    else:
        h = (pc - pr_) - (rc - rr)
        z = beta * h
        if kind == "sigmoid":
            per = -(1 - ls) * logsig(z) - ls * logsig(-z)
        elif kind == "ipo":
            per = (h - 1 / (2 * beta)) ** 2
        elif kind == "hinge":
            per = torch.relu(1 - z)
        elif kind == "robust":
            per = ((1 - ls) * -logsig(z) + ls * logsig(-z)) / (1 - 2 * ls)
        loss = per.mean()
        rch, rrj = beta * (pc - rc).detach(), beta * (pr_ - rr).detach()
    loss.backward()
    gn = math.sqrt(sum(float((p.grad ** 2).sum()) for p in pol.params.values() if p.grad is not None))
    out.update({"loss": loss.item(), "rewards/chosen": rch.mean().item(), "rewards/rejected": rrj.mean().item(),
                "rewards/margins": (rch - rrj).mean().item(), "rewards/accuracies": (rch > rrj).double().mean().item(),
                "logps/chosen": pc.mean().item(), "logps/rejected": pr_.mean().item(), "grad_norm": gn})
    return out


def dpo(out, *extra, data=DATA, env=ENV):
    ok_run(["dpo", "--model", POL, "--data", data, "--out", out, "--seed", 1, "--lr", 1e-3, *extra],
           f"dpo {os.path.basename(out)}", env=env)
    return read_metrics(out)


def compare(name, got, want):
    for k, v in want.items():
        g = got.get(k)
        if k == "grad_norm":
            ok = g is not None and abs(g - v) <= GN_RTOL * abs(v)
        else:
            ok = g is not None and abs(g - v) <= TOL
        check(ok, f"{name}: {k} tunic {g} vs torch {v:.7g}")


VARIANTS = [("sigmoid", ["--loss", "sigmoid"], dict()),
            ("sigmoid_ls", ["--loss", "sigmoid", "--label-smoothing", 0.1], dict(ls=0.1)),
            ("ipo", ["--loss", "ipo"], dict()),
            ("hinge", ["--loss", "hinge"], dict()),
            ("robust", ["--loss", "robust", "--label-smoothing", 0.2], dict(ls=0.2)),
            ("orpo", ["--algorithm", "orpo", "--orpo-lambda", 0.3], dict())]
for name, flags, kw in VARIANTS:
    kind = "orpo" if name == "orpo" else flags[1]
    want = reference(kind, **kw)
    ref_flags = [] if kind == "orpo" else ["--ref-model", REF, "--beta", 0.5]
    m1 = dpo(os.path.join(W, name), "--steps", 1, "--batch-size", 4, *flags, *ref_flags)[0]
    compare(f"{name} (4 pairs x 1)", m1, want)
    m2 = dpo(os.path.join(W, name + "_acc"), "--steps", 1, "--batch-size", 1, "--grad-accum", 4, *flags, *ref_flags)[0]
    compare(f"{name} (1 pair x 4 micro-batches)", m2, want)
    if name in ("sigmoid", "orpo"):  # every sequence whole instead of the prompt shared by chosen and rejected
        m3 = dpo(os.path.join(W, name + "_whole"), "--steps", 1, "--batch-size", 4, *flags, *ref_flags,
                 env={**ENV, "TN_NO_SHARED_PREFIX": "1"})[0]
        compare(f"{name} (4 pairs x 1, prompts not shared)", m3, want)

# sanity of the comparison: a reference that sums instead of averaging (IPO) would differ
alt = reference("sigmoid")
check(abs(alt["loss"] - reference("ipo")["loss"]) > 100 * TOL, "the variants' losses differ from each other")

# ---- conversational form: the chat template's tokens ----
conv = jsonl(os.path.join(W, "conv.jsonl"), [
    {"prompt": [{"role": "user", "content": p.strip()}], "chosen": [{"role": "assistant", "content": c}],
     "rejected": [{"role": "assistant", "content": r}]} for p, c, r in PAIRS])
implicit = jsonl(os.path.join(W, "implicit.jsonl"), [
    {"chosen": [{"role": "user", "content": p.strip()}, {"role": "assistant", "content": c}],
     "rejected": [{"role": "user", "content": p.strip()}, {"role": "assistant", "content": r}]} for p, c, r in PAIRS])


def chat_enc(p, c, r):
    """the byte tokenizer's Gemma-style template, by hand: prompt with the generation prompt;
    response = content (trimmed) + <end_of_turn> (the template's trailing newline excluded)"""
    pr = [BOS, SOT] + list(b"user\n") + list(p.strip().encode()) + [EOT] + list(b"\n") + [SOT] + list(b"model\n")
    return pr, list(c.strip().encode()) + [EOT], list(r.strip().encode()) + [EOT]


want = reference("sigmoid", encoded=[chat_enc(*x) for x in PAIRS])
for nm, d in (("conversational", conv), ("implicit prompt", implicit)):
    m = dpo(os.path.join(W, "conv_" + nm[:4]), "--steps", 1, "--batch-size", 4, "--ref-model", REF, "--beta", 0.5,
            data=d)[0]
    compare(nm, m, want)
m = dpo(os.path.join(W, "chatflag"), "--steps", 1, "--batch-size", 4, "--ref-model", REF, "--beta", 0.5, "--chat")[0]
compare("strings with --chat", m, want)

# ---- truncation: prompt keeps its last 5 tokens, responses their first 3 ----
def trunc(p, c, r):
    p, c, r = enc(p, c, r)
    return p[-5:], c[:3], r[:3]


want = reference("sigmoid", encoded=[trunc(*x) for x in PAIRS])
m = dpo(os.path.join(W, "trunc"), "--steps", 1, "--batch-size", 4, "--ref-model", REF, "--beta", 0.5,
        "--max-prompt-length", 5, "--max-response-length", 3)[0]
compare("truncated", m, want)

# ---- precomputed reference == frozen copy (full fine-tuning, 5 steps, ref = initial weights) ----
a = dpo(os.path.join(W, "frozen"), "--steps", 5, "--batch-size", 2)
b = dpo(os.path.join(W, "precomp"), "--steps", 5, "--batch-size", 2, "--precompute-ref")
check(abs(a[0]["loss"] - math.log(2)) < 1e-6 and a[0]["rewards/chosen"] == 0, "step 1 with ref = policy: loss log 2, reward 0")
d = max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in ("loss", "rewards/margins", "grad_norm"))
check(len(a) == len(b) == 5 and d < 1e-5, f"--precompute-ref matches the frozen copy over 5 steps (max diff {d:.2e})")
check(a[-1]["rewards/margins"] > 0.01, f"rewards/margins grows ({a[-1]['rewards/margins']:.4f})")

# ---- LoRA: the reference is the base with the adapter off ----
l = dpo(os.path.join(W, "lora"), "--steps", 8, "--batch-size", 4, "--lora-rank", 4, "--lora-alpha", 8, "--lr", 1e-2,
        "--eval-data", DATA, "--eval-every", 8, "--loss", "sigmoid", "--beta", 0.5)
check(abs(l[0]["loss"] - math.log(2)) < 1e-6 and l[0]["rewards/margins"] == 0, "LoRA step 1: loss log 2, zero rewards")
ev = l[-1]
base = Decoder.load(POL, dtype=torch.float64)
with torch.no_grad():
    base_c = sum(resp_logps(base, *enc(*x)[:2])[0].item() for x in PAIRS) / len(PAIRS)
got_rc = ev["eval/logps/chosen"] - ev["eval/rewards/chosen"] / 0.5
check(abs(got_rc - base_c) < 1e-4 and abs(ev["eval/rewards/chosen"]) > 1e-3,
      f"LoRA: reference log-probs = the base model's ({got_rc:.6f} vs torch {base_c:.6f}; reward {ev['eval/rewards/chosen']:.4f})")
check(os.path.exists(os.path.join(W, "lora", "adapter", "adapter_model.safetensors")), "LoRA run saved a PEFT adapter")

# ---- errors name FILE:LINE ----
bad = jsonl(os.path.join(W, "bad.jsonl"), [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}])
expect_error(["dpo", "--model", POL, "--data", bad, "--out", os.path.join(W, "bad")], "missing rejected", [f"{bad}:2", "rejected"])
bad2 = jsonl(os.path.join(W, "bad2.jsonl"), [{"prompt": "a", "chosen": ["x"], "rejected": "c"}])
expect_error(["dpo", "--model", POL, "--data", bad2, "--out", os.path.join(W, "bad2")], "mixed types", [f"{bad2}:1", "chosen"])
expect_error(["dpo", "--model", POL, "--data", DATA, "--out", os.path.join(W, "bad3"), "--loss", "nope"], "bad loss", ["nope"])
finish()
