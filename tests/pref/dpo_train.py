#!/usr/bin/python3
"""Issue 6: DPO moves a tiny model toward the preferred style (measured), and resumes exactly.

Data (tests/pref/gen_prefs.py): arithmetic questions answered concisely ("7.") or verbosely
(apologies and filler around "the answer is 7."); 240 training pairs, 40 held-out pairs.
1. SFT a tiny llama from scratch on a 50/50 mix of both styles (300 steps), so it produces both.
2. `tunic dpo` (sigmoid, beta 0.1, full fine-tuning against a frozen copy, 30 steps of 8 pairs).
Required: held-out preference accuracy (chosen reward > rejected reward) >= 0.9 at the end (it
is 0 at step 1 where policy = reference; measured 1.0), held-out reward margin > 1;
sampled generations (T = 1, 4 samples x 40 held-out prompts, seed fixed) shorter on average by
at least half and with "sorry" in at most half as many of them as the SFT model's (measured:
mean length 43.8 -> 5.8 tokens, "sorry" 36% -> 1%).
3. ORPO from the same SFT model (30 steps): held-out accuracy (average log-prob of chosen >
rejected) >= 0.9 and generations shorter than the SFT model's.
4. Resume: a DPO run of 6 steps (checkpoints every 3) whose step_6 and final weights are deleted,
resumed with --resume, ends with byte-identical weights and the same metrics for steps 4-6.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from common import TUNIC, check, finish, init_model, ok_run, read_metrics, workdir  # noqa: E402

W = workdir("dpotrain")
ENV = {"OMP_NUM_THREADS": "1", "TN_PROGRESS": "off"}
D = os.path.join(W, "data")
subprocess.run(["/usr/bin/python3", os.path.join(HERE, "gen_prefs.py"), "--out", D, "--seed", "1"], check=True)
BASE = init_model(os.path.join(W, "m"), seed=1)
ok_run(["sft", "--model", BASE, "--data", os.path.join(D, "sft_mix.jsonl"), "--out", os.path.join(W, "sft"),
        "--steps", 300, "--batch-size", 8, "--lr", 3e-3, "--seed", 1], "sft on both styles", env=ENV)
SFT = os.path.join(W, "sft", "model")
prompts = [l.rstrip("\n") for l in open(os.path.join(D, "prompts_eval.txt"))]
IDS = ";".join(",".join(str(i) for i in [257] + list((p + "\n").encode())) for p in prompts)


def gen_stats(model):
    p = ok_run(["generate", "--model", model, "--ids", IDS, "--temperature", 1, "--n", 4, "--max-new-tokens", 100,
                "--seed", 5, "--json"], f"generate with {os.path.relpath(model, W)}", env=ENV)
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    texts = [bytes(i for i in r["ids"] if i < 256).decode("utf-8", "replace") for r in rows]
    n = len(rows)
    return n, sum(len(r["ids"]) for r in rows) / n, sum("orry" in t for t in texts) / n


n0, len0, sorry0 = gen_stats(SFT)
print(f"SFT model: {n0} samples, mean length {len0:.1f} tokens, 'sorry' in {sorry0:.0%}")
check(n0 == 160 and sorry0 > 0.2 and len0 > 20, "the SFT model produces both styles")

common = ["--model", SFT, "--data", os.path.join(D, "prefs_train.jsonl"), "--eval-data",
          os.path.join(D, "prefs_eval.jsonl"), "--batch-size", 8, "--seed", 1]
ok_run(["dpo", *common, "--out", os.path.join(W, "dpo"), "--steps", 30, "--lr", 3e-4, "--eval-every", 30],
       "dpo 30 steps", env=ENV)
m = read_metrics(os.path.join(W, "dpo"))
check(m[0]["rewards/accuracies"] == 0 and abs(m[0]["rewards/margins"]) < 1e-12, "step 1: policy = reference (accuracy 0)")
acc, margin = m[-1]["eval/rewards/accuracies"], m[-1]["eval/rewards/margins"]
check(acc >= 0.9, f"held-out preference accuracy {acc:.3f} >= 0.9")
check(margin > 1.0, f"held-out reward margin {margin:.3f} > 1")
n1, len1, sorry1 = gen_stats(os.path.join(W, "dpo", "model"))
print(f"DPO model: mean length {len1:.1f} tokens, 'sorry' in {sorry1:.0%}")
check(len1 <= 0.5 * len0, f"generations shorter: mean length {len0:.1f} -> {len1:.1f} tokens (at most half)")
check(sorry1 <= 0.5 * sorry0, f"fewer apologies: {sorry0:.0%} -> {sorry1:.0%} of samples (at most half)")

ok_run(["dpo", *common, "--algorithm", "orpo", "--orpo-lambda", 1.0, "--out", os.path.join(W, "orpo"), "--steps", 30,
        "--lr", 3e-4, "--eval-every", 30], "orpo 30 steps", env=ENV)
o = read_metrics(os.path.join(W, "orpo"))
check(o[-1]["eval/rewards/accuracies"] >= 0.9, f"ORPO held-out accuracy {o[-1]['eval/rewards/accuracies']:.3f} >= 0.9")
n2, len2, sorry2 = gen_stats(os.path.join(W, "orpo", "model"))
print(f"ORPO model: mean length {len2:.1f} tokens, 'sorry' in {sorry2:.0%}")
check(len2 < len0, f"ORPO generations shorter: {len0:.1f} -> {len2:.1f} tokens")

# ---- resume ----
args = ["dpo", *common, "--out", os.path.join(W, "r"), "--steps", 6, "--lr", 3e-4, "--save-every", 3, "--keep-last", 3]
ok_run(args, "dpo 6 steps", env=ENV)
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()  # noqa: E731
final = os.path.join(W, "r", "model", "model.safetensors")
h0, m0 = sha(final), read_metrics(os.path.join(W, "r"))
shutil.rmtree(os.path.join(W, "r", "checkpoints", "step_6"))
shutil.rmtree(os.path.join(W, "r", "model"))
ok_run(args + ["--resume"], "dpo --resume from step 3", env=ENV)
m1 = read_metrics(os.path.join(W, "r"))
check(sha(final) == h0, "resumed run: final weights byte-identical")
same = [a["step"] == b["step"] and a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"] for a, b in zip(m0, m1)]
check(len(m1) == 6 and all(same), "resumed run: metrics of steps 1-6 equal the uninterrupted run's")
finish()
