#!/usr/bin/python3
"""Issue 22: every advantage estimator and loss type of `tunic grpo`, recomputed from the dumped
rollouts (PyTorch float64, an independent transcription of OpenRLHF's estimators and TRL's loss
types; docs/rl.md).

Runs (tiny llama, byte tokenizer, 2 steps of 4 prompts x 4 generations, beta 0.1 k3, 24 tokens):
  rloo               + --loss-type dr_grpo     + --overlong-buffer-len 8 --overlong-penalty 0.5
  reinforce          + --loss-type dapo
  reinforce_baseline + --loss-type bnpo        + --importance-sampling-level sequence (GSPO)
  drgrpo             + --loss-type grpo        + --dynamic-sampling --max-num-gen-batches 3
  grpo (group_norm)  + --loss-agg-mode token-mean (Tunix's name)
For each run and step, from the dump alone:
  - total = sum of weight x per-function reward + the overlong penalty, and the penalty is DAPO's
    -factor * min(len - (max - buffer), buffer) / buffer (0 below the ramp) (1e-6);
  - the advantages are the estimator's from the totals (1e-6 x max(1, |A|)): RLOO r - mean of the
    other G-1; REINFORCE++ r whitened over the batch's tokens (token mean, population variance,
    rstd = 1/sqrt(max(var, 1e-8))); -baseline the same after subtracting the group mean; Dr.GRPO r -
    group mean; GRPO (r - mean) / (sample std + 1e-4); and the GRPO estimator's advantages differ
    from a non-GRPO run's dump by more than the tolerance (so the test can fail);
  - the loss from the dumped policy / old / reference log-probs and advantages, aggregated as the
    loss type says (TRL: grpo = per-sequence token mean then mean; dr_grpo = sum / (S x max
    tokens); dapo and bnpo = sum / kept tokens; sequence level: one ratio exp(mean(logp - old)) per
    completion), equals metrics.jsonl's loss (1e-6 x max(1e-3, |loss|): the losses are small), and at step 2 the other
    aggregations differ from it where lengths differ;
  - dynamic sampling: logged generation rounds in [1, 3]; when below the cap every group of the
    batch has a reward spread; kept_groups = the number of groups with a spread; at least one step
    needed a refill round (the coarse 0/1 reward makes flat groups common), and a run resumed from
    step 1 repeats step 2 exactly (the refill prompts are a function of the step).
"""
import math
import os
import shutil

from common_grpo import check, finish, grpo, init_model, make_data, read_jsonl, read_metrics, workdir
import torch

torch.set_num_threads(1)
W = workdir("grpoest")
MODEL = init_model(os.path.join(W, "m"), seed=5)
D = make_data(W)
HERE = os.path.dirname(os.path.abspath(__file__))
LETTERS = f"/usr/bin/python3 {os.path.join(HERE, 'reward_letters.py')}"
COARSE = f"/usr/bin/python3 {os.path.join(HERE, 'reward_coarse.py')}"
B, G, MAXTOK, BETA, EPS = 4, 4, 24, 0.1, 0.2
TOL = 1e-6

RUNS = [
    ("rloo", "rloo", ["--loss-type", "dr_grpo", "--overlong-buffer-len", 8, "--overlong-penalty", 0.5], LETTERS),
    ("reinforce", "reinforce", ["--loss-type", "dapo"], LETTERS),
    ("reinforce_baseline", "reinforce_baseline", ["--loss-type", "bnpo", "--importance-sampling-level", "sequence"], LETTERS),
    ("drgrpo", "dr_grpo", ["--loss-type", "grpo", "--dynamic-sampling", "--max-num-gen-batches", 3, "--save-every", 1,
                           "--keep-last", 0], COARSE),
    ("grpo", "group_norm", ["--loss-agg-mode", "token-mean"], LETTERS),
]
AGG = {"rloo": "dr_grpo", "reinforce": "dapo", "reinforce_baseline": "bnpo", "drgrpo": "grpo", "grpo": "token"}


def advantages(est, tot, lens):
    r = torch.tensor(tot, dtype=torch.float64).reshape(-1, G)
    L = torch.tensor(lens, dtype=torch.float64)
    if est == "rloo":
        a = r - (r.sum(1, keepdim=True) - r) / (G - 1)
    elif est in ("drgrpo",):
        a = r - r.mean(1, keepdim=True)
    elif est == "grpo":
        a = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)
    else:
        a = r if est == "reinforce" else r - r.mean(1, keepdim=True)
        a = a.reshape(-1)
        mu = (a * L).sum() / L.sum()
        var = ((a - mu) ** 2 * L).sum() / L.sum()
        a = (a - mu) / var.clamp(min=1e-8).sqrt()
    return a.reshape(-1)


def loss_ref(rows, adv, agg, seq_level):
    S = len(rows)
    total, kept_tok = 0.0, sum(len(r["completion_ids"]) for r in rows if r["seq_mask"])
    for r, a in zip(rows, adv):
        n = len(r["completion_ids"])
        if n == 0 or not r["seq_mask"]:
            continue
        lp = torch.tensor(r["logprobs"], dtype=torch.float64)
        old = torch.tensor(r["old_logprobs"], dtype=torch.float64)
        ref = torch.tensor(r["ref_logprobs"], dtype=torch.float64)
        ratio = torch.exp(lp - old)
        if seq_level:
            ratio = torch.exp((lp - old).mean()).expand(n)
        per = -torch.min(ratio * a, ratio.clamp(1 - EPS, 1 + EPS) * a) + BETA * (torch.exp(ref - lp) - (ref - lp) - 1)
        if agg == "grpo":
            total += float(per.sum()) / n / S
        elif agg == "dr_grpo":
            total += float(per.sum()) / (S * MAXTOK)
        else:  # dapo, bnpo, Tunix token-mean: over the kept tokens of the batch
            total += float(per.sum()) / kept_tok
    return total


for name, est_flag, extra, cmd in RUNS:
    out = os.path.join(W, name)
    grpo(MODEL, os.path.join(D, "train_grpo.jsonl"), out, "--steps", 2, "--batch-size", B, "--num-generations", G,
         "--beta", BETA, "--epsilon", EPS, "--lr", 1e-3, "--max-tokens-to-generate", MAXTOK, "--seed", 3,
         "--reward", "format_exact:1", "--reward-cmd", cmd, "--advantage-estimator", est_flag, *extra,
         "--dump-rollouts", os.path.join(out, "roll.jsonl"))
    metrics = read_metrics(out)
    rolls = read_jsonl(os.path.join(out, "roll.jsonl"))
    check(len(metrics) == 2 and len(rolls) == 2 * B * G, f"{name}: 2 metric rows and {2 * B * G} dumped completions")
    buf = extra[extra.index("--overlong-buffer-len") + 1] if "--overlong-buffer-len" in extra else 0
    fac = extra[extra.index("--overlong-penalty") + 1] if "--overlong-penalty" in extra else 1.0
    for step in (1, 2):
        rows = [r for r in rolls if r["step"] == step]
        m = metrics[step - 1]
        lens = [len(r["completion_ids"]) for r in rows]
        pen = []
        for n in lens:
            ex = min(n - (MAXTOK - buf), buf) if buf else 0
            pen.append(-ex / buf * fac if ex > 0 else 0.0)
        e_pen = max(abs(p - r["overlong_penalty"]) for p, r in zip(pen, rows))
        tot = [r["rewards"]["format_exact"] + r["rewards"]["cmd"] + p for r, p in zip(rows, pen)]
        e_tot = max(abs(a - r["total"]) for a, r in zip(tot, rows))
        check(e_pen <= TOL and e_tot <= TOL, f"{name} step {step}: overlong penalties (max err {e_pen:.1e}, "
              f"{sum(p != 0 for p in pen)} penalised) and totals = weighted rewards + penalty (max err {e_tot:.1e})")
        adv = advantages(name, [r["total"] for r in rows], lens)
        e_adv = max(abs(float(a) - r["advantage"]) / max(1.0, abs(float(a))) for a, r in zip(adv, rows))
        check(e_adv <= TOL, f"{name} step {step}: advantages = the {name} estimator's (max rel err {e_adv:.1e})")
        if name != "grpo":
            alt = advantages("grpo", [r["total"] for r in rows], lens)
            d = max(abs(float(a) - r["advantage"]) for a, r in zip(alt, rows))
            check(d > 10 * TOL, f"{name} step {step}: the GRPO estimator's advantages differ from the dump (max {d:.2e})")
        seq = "--importance-sampling-level" in extra
        L = loss_ref(rows, [r["advantage"] for r in rows], AGG[name], seq)
        check(abs(L - m["loss"]) <= TOL * max(1e-3, abs(L)), f"{name} step {step}: loss {m['loss']:.9g} = reference "
              f"{L:.9g} ({AGG[name]}{', sequence-level ratio' if seq else ''})")
        if len(set(lens)) > 1 and step == 2:  # step 1: ratio 1, KL 0 and whitened advantages give a loss of ~0 in every mode
            canon = {"bnpo": "dapo", "token": "dapo"}.get(AGG[name], AGG[name])
            for other in ("grpo", "dr_grpo", "dapo"):
                if other == canon:
                    continue
                Lo = loss_ref(rows, [r["advantage"] for r in rows], other, seq)
                check(abs(Lo - m["loss"]) > 10 * TOL * max(1.0, abs(L)), f"{name} step {step}: the {other} aggregation "
                      f"gives another loss ({Lo:.6g})")
        if "--dynamic-sampling" in extra:
            gb, kg = m["dynamic_sampling/gen_batches"], m["dynamic_sampling/kept_groups"]
            spread = [len(set(r["total"] for r in rows[g * G:(g + 1) * G])) > 1 for g in range(B)]
            check(1 <= gb <= 3 and kg == sum(spread) and (gb == 3 or all(spread)),
                  f"{name} step {step}: {gb:g} generation round(s), {kg:g} groups with a spread (dump: {sum(spread)}); "
                  "below the cap every group has one")
    if "--dynamic-sampling" in extra:
        check(max(m["dynamic_sampling/gen_batches"] for m in metrics) > 1, f"{name}: some step refilled flat groups")
        # the refill prompts are a function of the step: a run resumed from step 1 repeats step 2
        res = out + "_resumed"
        shutil.copytree(out, res)
        shutil.rmtree(os.path.join(res, "checkpoints", "step_2"))
        grpo(MODEL, os.path.join(D, "train_grpo.jsonl"), res, "--steps", 2, "--batch-size", B, "--num-generations", G,
             "--beta", BETA, "--epsilon", EPS, "--lr", 1e-3, "--max-tokens-to-generate", MAXTOK, "--seed", 3,
             "--reward", "format_exact:1", "--reward-cmd", cmd, "--advantage-estimator", est_flag, *extra, "--resume",
             what=f"{name} --resume from step 1")
        m2 = read_metrics(res)
        drop = ("elapsed_s", "rollout_tokens_per_s", "train_tokens_per_s")
        check(len(m2) == 2 and all(m2[1][k] == v for k, v in metrics[1].items() if k not in drop),
              f"{name}: the resumed run's step 2 (refills included) = the uninterrupted run's")
finish()
