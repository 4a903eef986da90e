#!/usr/bin/python3
"""Issue 6: `tunic distill` against PyTorch, and distillation beating labels alone.

1. Step 1 vs PyTorch (float64, tests/ref/hf_decoder.py; teacher and student different random
   tiny llamas of different widths): with --lr 0 the weights stay as loaded, so the step-1 loss and
   pre-clip gradient norm (over every student weight and, with features, the projections) must
   equal autograd's for
     classic KD   alpha T^2 KL(softmax(u/T) || softmax(z/T)) + (1 - alpha) CE(z, y)   (T 2, alpha 0.5)
     top-k        both distributions on the teacher's 5 largest logits, renormalised
     GKD JSD      beta 0.5: beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q (TRL)
     features     + gamma * mean over pairs of mean((P h_s - h_t)^2) over kept rows and teacher dims,
                  P read from the run's projections.safetensors; hidden states taken from the
                  reference decoder's input to each layer's input_layernorm (and the final norm)
   each averaged over the rows that predict a completion token, pooled over 2 micro-batches.
   Tolerance: loss 1e-5 absolute, grad norm 1e-4 relative.
2. A teacher (tiny llama, hidden 64, SFT on 260 arithmetic examples) and a smaller student
   (hidden 32) trained on only 60 of them, 150 steps each, same seed: the distilled student
   (alpha 0.5, T 2) reaches a lower held-out loss (CE on 40 unseen examples) than the same student
   trained on labels alone (alpha 0); measured about 0.234 vs 0.267 (teacher 0.182). Also run:
   top-k, JSD, on-policy (--lmbda 0.5), features, bf16 teacher (teacher eval loss within 1%).
3. Resume with features and on-policy steps: byte-identical student and projections.
4. Different vocabularies fail with a message naming both models.
"""
import hashlib
import json
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import check, expect_error, finish, init_model, jsonl, ok_run, read_metrics, workdir  # noqa: E402
from hf_decoder import Decoder, read_safetensors  # noqa: E402

torch.set_num_threads(1)
W = workdir("distill")
ENV = {"OMP_NUM_THREADS": "1", "TN_PROGRESS": "off"}
BOS, EOS = 257, 258
SMALL = '{"hidden_size":32,"intermediate_size":64,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":16}'

# ---------------- 1. step 1 vs PyTorch ----------------
TCH = init_model(os.path.join(W, "t0"), seed=5)
STU = init_model(os.path.join(W, "s0"), seed=6, extra=["--override", SMALL])
EX = [("what is one plus two?\n", "3."), ("hello\n", "hi there"), ("name a colour:\n", "red"), ("2+2=", "4")]
DATA = jsonl(os.path.join(W, "d.jsonl"), [{"prompt": p, "completion": c} for p, c in EX])


def run_with_hidden(dec, ids):
    """logits (T, V) and hidden states [after 0 .. L layers] (each (T, C)) of one sequence"""
    P, L = dec.params, dec.spec.n_layers
    marks = {id(P[f"model.layers.{l}.input_layernorm.weight"]): l for l in range(L)}
    marks[id(P["model.norm.weight"])] = L
    hs = {}
    orig = dec._norm

    def norm(x, w):
        if id(w) in marks:
            hs[marks[id(w)]] = x[0]
        return orig(x, w)
    dec._norm = norm
    logits = dec.forward(torch.tensor(ids)[None])[0]
    dec._norm = orig
    return logits, [hs[k] for k in range(L + 1)]


def kd_reference(T=2.0, alpha=0.5, top_k=0, jsd=None, feats=(), gamma=1.0, proj=None):
    stu = Decoder.load(STU, dtype=torch.float64, requires_grad=True)
    tch = Decoder.load(TCH, dtype=torch.float64)
    projs = [torch.tensor(proj[f"distill.projection.{j}.weight"].numpy(), dtype=torch.float64, requires_grad=True)
             for j in range(len(feats))]
    D, CE, FE, M = [], [], [], 0
    for p, c in EX:
        pi = [BOS] + list(p.encode())
        ids = pi + list(c.encode()) + [EOS]
        z, hs = run_with_hidden(stu, ids)
        with torch.no_grad():
            u, ht = run_with_hidden(tch, ids)
        rows = torch.arange(len(pi) - 1, len(ids) - 1)  # rows predicting the completion (+EOS)
        y = torch.tensor(ids[len(pi):])
        z, u = z[rows], u[rows]
        M += len(rows)
        if top_k:
            idx = u.topk(top_k, dim=-1).indices
            zs, us = z.gather(1, idx), u.gather(1, idx)
        else:
            zs, us = z, u
        lq, lp = F.log_softmax(zs / T, -1), F.log_softmax(us / T, -1)
        if jsd is None:
            d = T * T * (lp.exp() * (lp - lq)).sum(-1)
        else:
            b = torch.tensor(jsd, dtype=torch.float64)
            lm = torch.logsumexp(torch.stack([lq + torch.log(1 - b), lp + torch.log(b)]), dim=0)
            d = b * (lp.exp() * (lp - lm)).sum(-1) + (1 - b) * (lq.exp() * (lq - lm)).sum(-1)
        D.append(d)
        CE.append(F.cross_entropy(z, y, reduction="none"))
        for j, (ks, kt) in enumerate(feats):
            FE.append((j, ((hs[ks][rows] @ projs[j].T - ht[kt][rows]) ** 2).sum() / ht[kt].shape[1]))
    D, CE = torch.cat(D), torch.cat(CE)
    loss = alpha * D.mean() + (1 - alpha) * CE.mean()
    if feats:
        loss = loss + gamma / len(feats) * sum(v for _, v in FE) / M
    loss.backward()
    g2 = sum(float((p.grad ** 2).sum()) for p in list(stu.params.values()) + projs if p.grad is not None)
    return loss.item(), g2 ** 0.5


def distill(out, *extra, teacher=TCH, student=STU, data=DATA, env=ENV):
    ok_run(["distill", "--teacher", teacher, "--student", student, "--data", data, "--out", out, "--seed", 1, *extra],
           f"distill {os.path.basename(out)}", env=env)
    return read_metrics(out)


CASES = [("kd", ["--temperature", 2, "--alpha", 0.5], {}),
         ("topk", ["--temperature", 2, "--alpha", 0.5, "--top-k", 5], dict(top_k=5)),
         ("jsd", ["--temperature", 1, "--alpha", 0.7, "--jsd-beta", 0.5], dict(T=1.0, alpha=0.7, jsd=0.5)),
         ("features", ["--temperature", 2, "--alpha", 0.5, "--feature-layers", "1:2,2:1", "--feature-weight", 0.3],
          dict(feats=((1, 2), (2, 1)), gamma=0.3))]
for name, flags, kw in CASES:
    out = os.path.join(W, "ref_" + name)
    m = distill(out, "--steps", 1, "--batch-size", 2, "--grad-accum", 2, "--lr", 0, *flags)[0]
    if "feats" in kw:
        kw["proj"] = read_safetensors(os.path.join(out, "projections.safetensors"))
    loss, gn = kd_reference(**kw)
    check(abs(m["loss"] - loss) < 1e-5, f"{name}: step-1 loss tunic {m['loss']:.7f} vs torch {loss:.7f}")
    check(abs(m["grad_norm"] - gn) < 1e-4 * gn, f"{name}: grad norm tunic {m['grad_norm']:.7f} vs torch {gn:.7f}")

# ---------------- 2. distillation vs labels alone ----------------
W_ = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
OPS = [("plus", lambda a, b: a + b), ("times", lambda a, b: a * b), ("minus", lambda a, b: a - b)]
rows = [{"prompt": f"what is {W_[a]} {n} {W_[b]}?\n", "completion": f"the answer is {f(a, b)}."}
        for a in range(10) for b in range(10) for n, f in OPS]
random.Random(7).shuffle(rows)
EVAL = jsonl(os.path.join(W, "kd_eval.jsonl"), rows[:40])
TDATA = jsonl(os.path.join(W, "kd_teacher.jsonl"), rows[40:])
SDATA = jsonl(os.path.join(W, "kd_student.jsonl"), rows[40:100])
T1 = init_model(os.path.join(W, "t1"), seed=5)
ok_run(["sft", "--model", T1, "--data", TDATA, "--out", os.path.join(W, "tsft"), "--steps", 400, "--batch-size", 8,
        "--lr", 3e-3, "--seed", 1], "teacher SFT", env=ENV)
TEACHER = os.path.join(W, "tsft", "model")
S1 = init_model(os.path.join(W, "s1"), seed=9, extra=["--override", SMALL])
common = ["--data", SDATA, "--eval-data", EVAL, "--eval-every", 150, "--steps", 150, "--batch-size", 8, "--lr", 5e-3]
res = {}
for name, flags in (("labels", ["--alpha", 0]), ("kd", ["--alpha", 0.5, "--temperature", 2]),
                    ("topk", ["--alpha", 0.5, "--temperature", 2, "--top-k", 20]),
                    ("jsd", ["--alpha", 0.5, "--jsd-beta", 0.5]),
                    ("onpolicy", ["--alpha", 0.5, "--temperature", 2, "--lmbda", 0.5, "--max-new-tokens", 24]),
                    ("features", ["--alpha", 0.5, "--temperature", 2, "--feature-layers", "1:1,2:2"])):
    m = distill(os.path.join(W, "kd_" + name), *common, *flags, teacher=TEACHER, student=S1)
    res[name] = m[-1]
    print(f"  {name:9s} eval loss student {m[-1]['eval/student_loss']:.4f} teacher {m[-1]['eval/teacher_loss']:.4f}")
lab, kd, tl = res["labels"]["eval/student_loss"], res["kd"]["eval/student_loss"], res["kd"]["eval/teacher_loss"]
check(kd < lab - 0.01, f"distilled student's eval loss {kd:.4f} < labels-only {lab:.4f} (teacher {tl:.4f})")
for name in ("topk", "features"):
    check(res[name]["eval/student_loss"] < lab, f"{name}: eval loss {res[name]['eval/student_loss']:.4f} < labels-only {lab:.4f}")
onp = read_metrics(os.path.join(W, "kd_onpolicy"))
n_on = sum(r["on_policy"] for r in onp)
check(40 < n_on < 110, f"on-policy: {n_on} of 150 steps on student samples (lmbda 0.5)")
check(all(r["loss"] == r["loss"] for r in onp) and res["onpolicy"]["eval/student_loss"] < 1.0,
      f"on-policy run trains (eval loss {res['onpolicy']['eval/student_loss']:.4f})")
b = distill(os.path.join(W, "kd_bf16"), *common, "--steps", 1, "--alpha", 0.5, "--teacher-dtype", "bf16",
            teacher=TEACHER, student=S1)[-1]
check(0 < abs(b["eval/teacher_loss"] - tl) < 0.01 * tl,
      f"bf16 teacher: eval loss {b['eval/teacher_loss']:.7f} vs f32 {tl:.7f} (rounded weights: close, not equal)")

q = {}
for dt in ("f32", "nf4"):  # QLoRA student: LoRA on an NF4-stored student, the teacher in f32
    q[dt] = distill(os.path.join(W, "kd_qlora_" + dt), *common, "--steps", 1, "--alpha", 0.5, "--lora-rank", 8,
                    "--base-dtype", dt, teacher=TEACHER, student=S1)[-1]["eval/student_loss"]
check(os.path.exists(os.path.join(W, "kd_qlora_nf4", "adapter", "adapter_model.safetensors")),
      "QLoRA student: a PEFT adapter is written")
check(0 < abs(q["nf4"] - q["f32"]) < 0.05 * q["f32"],
      f"QLoRA student: eval loss on the NF4 base {q['nf4']:.5f} vs f32 base {q['f32']:.5f} (close, not equal)")
expect_error(["distill", "--teacher", TEACHER, "--student", S1, "--data", SDATA, "--out", os.path.join(W, "bad_q"),
              "--base-dtype", "nf4"], "NF4 student without LoRA", ["--base-dtype nf4", "LoRA"])

# ---------------- 3. resume ----------------
args = ["--data", SDATA, "--steps", 6, "--batch-size", 4, "--lr", 5e-3, "--save-every", 3, "--keep-last", 3,
        "--feature-layers", "2:2", "--lmbda", 0.5, "--max-new-tokens", 8]
out = os.path.join(W, "r")
distill(out, *args, teacher=TEACHER, student=S1)
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()  # noqa: E731
files = [os.path.join(out, "model", "model.safetensors"), os.path.join(out, "projections.safetensors")]
h0, m0 = [sha(f) for f in files], read_metrics(out)
shutil.rmtree(os.path.join(out, "checkpoints", "step_6"))
shutil.rmtree(os.path.join(out, "model"))
os.remove(files[1])
distill(out, *args, "--resume", teacher=TEACHER, student=S1)
m1 = read_metrics(out)
check([sha(f) for f in files] == h0, "resumed run: student weights and projections byte-identical")
check(len(m1) == 6 and all(a["loss"] == b["loss"] and a["on_policy"] == b["on_policy"] for a, b in zip(m0, m1)),
      "resumed run: the same losses and on-policy steps")

# ---------------- 4. vocabulary mismatch ----------------
V2 = init_model(os.path.join(W, "v2"), seed=1, extra=["--override", '{"vocab_size":300}'])
expect_error(["distill", "--teacher", V2, "--student", STU, "--data", DATA, "--out", os.path.join(W, "bad")],
             "different vocabularies", [V2, STU, "vocabulary"])
finish()
