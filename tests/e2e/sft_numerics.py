#!/usr/bin/python3
"""Issue 4, `tunic sft` numerics end to end, against tests/ref/hf_decoder.py (PyTorch, float64):

1. Loss mask. Prompt/completion data: the step-1 loss in metrics.jsonl (taken at the initial
   weights) equals the reference's mean cross-entropy over the COMPLETION (+EOS) targets only, and
   target_tokens equals their count; the same texts as {"text": prompt+completion} give the mean
   over ALL targets instead. The two means differ by far more than the tolerance, so a trainer
   that counted prompt tokens (or dropped the mask) fails. Token ids: byte-level tokenizer, built
   independently here (BOS=257, bytes, EOS=258) and cross-checked with `tunic tokenize`.
2. Gradient accumulation. Four examples with very different target counts (2..41): one step of
   --batch-size 4 --grad-accum 1 and of --batch-size 2 --grad-accum 2 both report the pooled
   mean loss (mean over all target tokens of all micro-batches) and the reference's gradient norm
   of that loss; a mean of per-micro-batch means (every possible pairing) would be detectably
   different. After 6 steps (AdamW, clipping, cosine) the weights of the two agree to
   max |diff| <= 2e-5 (f32 sums in a different order).
3. Overfitting. A tiny llama from scratch on 20 prompt/completion pairs: train loss (last 3 steps)
   below 0.6 within 200 steps, from about ln(264) = 5.6 (measured: ~0.1-0.2; bound has margin).
Tolerances: loss 1e-5 abs (f32 logits vs f64), grad norm 1e-4 relative.
"""
import itertools
import json
import math
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import TUNIC, check, finish, init_model, jsonl, ok_run, read_metrics, workdir  # noqa: E402
from hf_decoder import Decoder, read_safetensors  # noqa: E402

torch.set_num_threads(1)
W = workdir("sftnum")
MODEL = init_model(os.path.join(W, "m"), seed=3)
ENV = {"OMP_NUM_THREADS": "1"}
BOS, EOS = 257, 258
LOSS_TOL, GN_RTOL = 1e-5, 1e-4


def tok_cli(text, special):
    p = subprocess.run([TUNIC, "tokenize", "--model", MODEL, "--ids"] + ([] if special else ["--no-special"]),
                       input=text.encode(), capture_output=True, timeout=30)
    return [int(x) for x in p.stdout.decode().split()]


def encode_pc(prompt, completion):
    """(ids, mask) as data.h defines for prompt/completion: BOS prompt | completion EOS, mask on the latter."""
    p = [BOS] + list(prompt.encode())
    c = list(completion.encode()) + [EOS]
    return p + c, [0] * len(p) + [1] * len(c)


def ref_losses(dec, examples):
    """per example: (sum of CE over masked targets, count) in float64; examples = [(ids, mask)]."""
    out = []
    for ids, mask in examples:
        logits = dec.forward(torch.tensor(ids)[None])[0]  # (T, V)
        lp = F.log_softmax(logits[:-1], dim=-1)
        tgt = torch.tensor(ids[1:])
        nll = -lp.gather(1, tgt[:, None])[:, 0]
        m = torch.tensor(mask[1:], dtype=nll.dtype)
        out.append(((nll * m).sum(), int(sum(mask[1:]))))
    return out


def sft(out, data, *extra):
    ok_run(["sft", "--model", MODEL, "--data", data, "--out", out, "--seed", 1, *extra], f"sft {os.path.basename(out)}",
           env=ENV)
    return read_metrics(out)


dec = Decoder.load(MODEL, dtype=torch.float64)

# ---------------- 1. loss mask ----------------
words = "one two three four five six seven eight nine ten plus minus is equals".split()
import random  # noqa: E402

rng = random.Random(7)
pairs = []
for i in range(20):
    a, b = rng.randint(1, 60), rng.randint(1, 60)
    pad = " ".join(rng.choice(words) for _ in range(rng.randint(0, 8)))
    pairs.append((f"{pad} {a} plus {b} is", f" {a + b}" + "!" * rng.randint(0, 6)))
check(tok_cli(pairs[0][0], True) == [BOS] + list(pairs[0][0].encode()),
      "tunic tokenize agrees with the independent byte encoding (prompt, with BOS)")
check(tok_cli(pairs[0][1], False) == list(pairs[0][1].encode()),
      "tunic tokenize agrees with the independent byte encoding (completion, no specials)")
PC = jsonl(os.path.join(W, "pc.jsonl"), [{"prompt": p, "completion": c} for p, c in pairs])
TX = jsonl(os.path.join(W, "text.jsonl"), [{"text": p + c} for p, c in pairs])

ex_pc = [encode_pc(p, c) for p, c in pairs]
ex_tx = [([BOS] + list((p + c).encode()) + [EOS], [1] * (len((p + c).encode()) + 2)) for p, c in pairs]
with torch.no_grad():
    r_pc, r_tx = ref_losses(dec, ex_pc), ref_losses(dec, ex_tx)
masked = float(sum(s for s, _ in r_pc)) / sum(n for _, n in r_pc)
full = float(sum(s for s, _ in r_tx)) / sum(n for _, n in r_tx)
print(f"    reference: completion-only mean CE {masked:.6f} over {sum(n for _, n in r_pc)} targets, "
      f"all-token mean {full:.6f} over {sum(n for _, n in r_tx)}")
check(abs(masked - full) > 100 * LOSS_TOL, "the two reference means differ by > 100x the tolerance (test can fail)")

m_pc = sft(os.path.join(W, "pc"), PC, "--batch-size", 20, "--steps", 1)
m_tx = sft(os.path.join(W, "tx"), TX, "--batch-size", 20, "--steps", 1)
check(abs(m_pc[0]["loss"] - masked) <= LOSS_TOL,
      f"prompt/completion step-1 loss {m_pc[0]['loss']:.6f} == reference masked mean {masked:.6f} (tol {LOSS_TOL})")
check(m_pc[0]["target_tokens"] == sum(n for _, n in r_pc),
      f"prompt/completion target_tokens {m_pc[0]['target_tokens']} == completion+EOS count {sum(n for _, n in r_pc)}")
check(abs(m_tx[0]["loss"] - full) <= LOSS_TOL,
      f"text step-1 loss {m_tx[0]['loss']:.6f} == reference all-token mean {full:.6f} (tol {LOSS_TOL})")

# ---------------- 2. gradient accumulation ----------------
acc_pairs = [("a is", "x"), ("tell me the numbers", " one two"), ("z", " seven eight nine"),
             ("count up please:", " one two three four five six seven eight!")]
ex_acc = [encode_pc(p, c) for p, c in acc_pairs]
ACC = jsonl(os.path.join(W, "acc.jsonl"), [{"prompt": p, "completion": c} for p, c in acc_pairs])
counts = [sum(m[1:]) for _, m in ex_acc]
print(f"    accumulation data: target counts {counts}")

decg = Decoder.load(MODEL, dtype=torch.float64, requires_grad=True)


def grad_norm_of(loss):
    for p in decg.params.values():
        p.grad = None
    loss.backward()
    return math.sqrt(sum(float((p.grad ** 2).sum()) for p in decg.params.values() if p.grad is not None))


per = ref_losses(decg, ex_acc)
pooled_loss = sum(s for s, _ in per) / sum(n for _, n in per)
pooled = float(pooled_loss)
pooled_gn = grad_norm_of(pooled_loss)
mom = []  # mean of means for every split into two micro-batches of 2
for pair in [(0, 1), (0, 2), (0, 3)]:
    rest = tuple(i for i in range(4) if i not in pair)
    per = ref_losses(decg, ex_acc)
    mm = 0.5 * (sum(per[i][0] for i in pair) / sum(per[i][1] for i in pair)
                + sum(per[i][0] for i in rest) / sum(per[i][1] for i in rest))
    mom.append((float(mm), grad_norm_of(mm)))
print(f"    reference: pooled loss {pooled:.6f} grad norm {pooled_gn:.6f}; mean of means (3 pairings): "
      + ", ".join(f"{a:.6f}/{b:.6f}" for a, b in mom))
check(all(abs(a - pooled) > 10 * LOSS_TOL for a, _ in mom),
      "every mean-of-means loss differs from the pooled loss by > 10x the tolerance (test can fail)")
check(all(abs(g - pooled_gn) > 10 * GN_RTOL * pooled_gn for _, g in mom),
      "every mean-of-means grad norm differs from the pooled one by > 10x the tolerance (test can fail)")

common_args = ["--steps", 6, "--lr", "3e-3", "--schedule", "cosine", "--warmup-steps", 1, "--max-grad-norm", "1.0",
               "--weight-decay", "0.01"]
m41 = sft(os.path.join(W, "b4a1"), ACC, "--batch-size", 4, "--grad-accum", 1, *common_args)
m22 = sft(os.path.join(W, "b2a2"), ACC, "--batch-size", 2, "--grad-accum", 2, *common_args)
m14 = sft(os.path.join(W, "b1a4"), ACC, "--batch-size", 1, "--grad-accum", 4, *common_args)
for name, m in (("4x1", m41), ("2x2", m22), ("1x4", m14)):
    check(abs(m[0]["loss"] - pooled) <= LOSS_TOL, f"{name}: step-1 loss {m[0]['loss']:.6f} == pooled {pooled:.6f}")
    check(abs(m[0]["grad_norm"] - pooled_gn) <= GN_RTOL * pooled_gn,
          f"{name}: step-1 grad norm {m[0]['grad_norm']:.6f} == reference {pooled_gn:.6f} (rel {GN_RTOL})")
    check(m[0]["target_tokens"] == sum(counts), f"{name}: target_tokens {m[0]['target_tokens']} == {sum(counts)}")
w41 = read_safetensors(os.path.join(W, "b4a1", "model", "model.safetensors"))
w0 = read_safetensors(os.path.join(MODEL, "model.safetensors"))
for name, d in (("2x2", "b2a2"), ("1x4", "b1a4")):
    w = read_safetensors(os.path.join(W, d, "model", "model.safetensors"))
    diff = max(float((w[k] - w41[k]).abs().max()) for k in w41)
    moved = max(float((w0[k] - w41[k]).abs().max()) for k in w41)
    check(diff <= 2e-5 and moved > 1e-3,
          f"after 6 steps, weights of {name} == 4x1: max |diff| {diff:.2e} <= 2e-5 (training moved them {moved:.2e})")
    for s in range(6):
        a, b = m41[s]["loss"], (m22 if d == "b2a2" else m14)[s]["loss"]
        if abs(a - b) > 1e-4:
            check(False, f"{name}: step {s + 1} loss {b} vs 4x1 {a}")
            break

# ---------------- 3. overfitting ----------------
m_of = sft(os.path.join(W, "overfit"), PC, "--batch-size", 4, "--steps", 200, "--lr", "5e-3", "--schedule", "cosine",
           "--warmup-steps", 10, "--max-grad-norm", "1.0")
last = sum(r["loss"] for r in m_of[-3:]) / 3
print(f"    overfit: step 1 loss {m_of[0]['loss']:.3f}, mean of the last 3 steps {last:.4f}")
check(m_of[0]["loss"] > 4.5, f"overfit: starts near ln(264) (step-1 loss {m_of[0]['loss']:.3f} > 4.5)")
check(last < 0.6, f"overfit: mean train loss of the last 3 of 200 steps {last:.4f} < 0.6")

shutil.rmtree(W)
finish()
