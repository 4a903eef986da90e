#!/usr/bin/python3
"""ref.py - independent PyTorch (float64, autograd) recomputation of every case
that tests/test_losses.c wrote to losses_io/cases.json: token log-probs and
their backward, GRPO advantages and loss (written the TRL way: padded (B, L)
tensors with a completion mask, truncated sequences' masks zeroed), DPO family,
ORPO, distillation. Compares losses, gradients and stats with
|ours - ref| <= 1e-6 * max(1, |ref|). Exit status 1 on any mismatch.
Not for: testing the trainers."""
import json
import math
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
TOL = 1e-6
failures = []
checked = 0


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def close(case, what, ours, ref):
    global checked
    ours = torch.as_tensor(ours, dtype=torch.float64).reshape(-1)
    ref = torch.as_tensor(ref, dtype=torch.float64).reshape(-1).detach()
    assert ours.shape == ref.shape, (case, what, ours.shape, ref.shape)
    err = (ours - ref).abs() / ref.abs().clamp(min=1.0)
    checked += 1
    if ours.numel() and err.max().item() > TOL:
        i = int(err.argmax())
        failures.append(f"{case}: {what}[{i}] = {ours[i].item():.10g}, reference {ref[i].item():.10g}")
    return err.max().item() if ours.numel() else 0.0


# ---------------------------------------------------------------- log-probs
def check_logprobs(c):
    N, V, T = c["N"], c["V"], c["T"]
    x = t(c["logits"]).reshape(N, V).requires_grad_(True)
    tok = torch.tensor(c["tok"])
    keep = tok >= 0
    ls = torch.log_softmax(x / T, dim=-1)
    lp = torch.where(keep, ls.gather(1, tok.clamp(min=0)[:, None])[:, 0], torch.zeros(N))
    (lp * t(c["dlogp"])).sum().backward()
    return max(close(c["name"], "logp", c["logp"], lp), close(c["name"], "dlogits", c["dlogits"], x.grad))


# ---------------------------------------------------------------- GRPO
def check_adv(c):
    r = t(c["rewards"]).reshape(c["groups"], c["G"])
    mean = r.mean(dim=1, keepdim=True)
    if c["scale"] == 0:  # group: torch.std is the sample std (n - 1), as TRL
        a = (r - mean) / (r.std(dim=1, keepdim=True) + c["eps"])
    elif c["scale"] == 1:  # batch: std of all rewards, mean still per group
        a = (r - mean) / (r.reshape(-1).std() + c["eps"])
    else:
        a = r - mean
    return close(c["name"], "adv", c["adv"], a)


def check_grpo(c):
    name = c["name"]
    off = c["off"]
    B = len(off) - 1
    L = max(max(off[i + 1] - off[i] for i in range(B)), 1)

    def pad(key):
        out = torch.zeros(B, L)
        if key in c:
            v = t(c[key])
            for i in range(B):
                out[i, : off[i + 1] - off[i]] = v[off[i] : off[i + 1]]
        return out

    mask = torch.zeros(B, L)
    for i in range(B):
        mask[i, : off[i + 1] - off[i]] = 1.0
    mask = mask * t(c["seq_mask"])[:, None].ne(0).double()  # TRL mask_truncated_completions
    logp = pad("logp").requires_grad_(True)
    old, ref = pad("old_logp"), pad("ref_logp")
    adv = t(c["adv"])[:, None]
    eps_lo, eps_hi, beta = c["epsilon"], c["epsilon_high"], c["beta"]

    log_ratio = logp - old
    if c["sequence_ratio"]:  # TRL importance_sampling_level="sequence"
        lw = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0))[:, None]
    else:
        lw = log_ratio
    coef1 = torch.exp(lw)
    coef2 = torch.clamp(coef1, 1 - eps_lo, 1 + eps_hi)
    per_token = -torch.min(coef1 * adv, coef2 * adv)
    if per_token.shape[1] == 1:
        per_token = per_token.expand(B, L)
    has_ref = "ref_logp" in c
    if has_ref:
        d = ref - logp
        kl = [logp - ref, torch.exp(d) - d - 1, 0.5 * (logp - ref) ** 2][c["kl"]]
    if beta != 0.0:
        per_token = per_token + beta * kl
    agg = c["agg"]
    if agg == 0:  # sequence-mean-token-mean (TRL "grpo")
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif agg == 1:  # token-mean (TRL "bnpo")
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    else:  # sequence-mean-token-scale (TRL "dr_grpo")
        loss = (per_token * mask).sum() / (B * c["max_len"])
    loss.backward()
    grad = torch.cat([logp.grad[i, : off[i + 1] - off[i]] for i in range(B)])

    ntok = mask.sum().clamp(min=1.0)
    with torch.no_grad():
        kl_mean = (kl * mask).sum() / ntok if has_ref else torch.tensor(0.0)
        low = (coef1 < 1 - eps_lo) & (adv < 0)
        high = (coef1 > 1 + eps_hi) & (adv > 0)
        region = low | high
        ratio_mean = (coef1.expand(B, L) * mask).sum() / ntok
        if c["sequence_ratio"]:  # per kept non-empty sequence (TRL: per row)
            rows = mask.sum(-1) > 0
            nrows = max(int(rows.sum()), 1)
            fr = lambda m: (m[:, 0] & rows).double().sum() / nrows
        else:
            fr = lambda m: (m.double() * mask).sum() / ntok
        stats = dict(kl_mean=kl_mean, clip_low=fr(low), clip_high=fr(high), clip_region=fr(region),
                     ratio_mean=ratio_mean)
    e = max(close(name, "loss", c["loss"], loss), close(name, "dlogp", c["dlogp"], grad))
    for k, v in stats.items():
        e = max(e, close(name, k, c[k], v))
    return e


# ---------------------------------------------------------------- DPO family
def check_dpo(c):
    name = c["name"]
    pc = t(c["pc"]).requires_grad_(True)
    pr = t(c["pr"]).requires_grad_(True)
    rc, rr = t(c["rc"]), t(c["rr"])
    beta, ls = c["beta"], c["label_smoothing"]
    h = (pc - pr) - (rc - rr)  # TRL DPOTrainer.dpo_loss "logits"
    typ = c["type"]
    if typ == 0:  # sigmoid (label smoothing = conservative DPO)
        losses = -F.logsigmoid(beta * h) * (1 - ls) - F.logsigmoid(-beta * h) * ls
    elif typ == 1:  # ipo
        losses = (h - 1 / (2 * beta)) ** 2
    elif typ == 2:  # hinge
        losses = torch.relu(1 - beta * h)
    else:  # robust
        losses = (-F.logsigmoid(beta * h) * (1 - ls) + F.logsigmoid(-beta * h) * ls) / (1 - 2 * ls)
    loss = losses.mean()
    loss.backward()
    with torch.no_grad():
        cr, rj = beta * (pc - rc), beta * (pr - rr)
        stats = dict(reward_chosen=cr.mean(), reward_rejected=rj.mean(), margin=(cr - rj).mean(),
                     accuracy=(cr > rj).double().mean())
    e = max(close(name, "loss", c["loss"], loss), close(name, "d_pc", c["d_pc"], pc.grad),
            close(name, "d_pr", c["d_pr"], pr.grad))
    for k, v in stats.items():
        e = max(e, close(name, k, c[k], v))
    return e


def check_orpo(c):
    """TRL ORPOTrainer: log_odds over length-averaged log-probs, losses = lambda *
    logsigmoid(log_odds), loss = nll - mean(losses); rewards = lambda * logps.
    The NLL is the chosen tokens' mean cross-entropy: per pair (mean of the pairs'
    token means) or, with token counts, over all chosen tokens of the batch (TRL)."""
    name = c["name"]
    lam = c["lambda"]
    ac = t(c["ac"]).requires_grad_(True)
    ar = t(c["ar"]).requires_grad_(True)
    log_odds = (ac - ar) - (torch.log1p(-torch.exp(ac)) - torch.log1p(-torch.exp(ar)))
    losses = lam * F.logsigmoid(log_odds)
    if "len_c" in c:
        n = t(c["len_c"])
        nll = (-ac * n).sum() / n.sum()
    else:
        nll = (-ac).mean()
    loss = nll - losses.mean()
    loss.backward()
    with torch.no_grad():
        cr, rj = lam * ac, lam * ar
        stats = dict(reward_chosen=cr.mean(), reward_rejected=rj.mean(), margin=(cr - rj).mean(),
                     accuracy=(cr > rj).double().mean())
    e = max(close(name, "loss", c["loss"], loss), close(name, "d_ac", c["d_ac"], ac.grad),
            close(name, "d_ar", c["d_ar"], ar.grad))
    for k, v in stats.items():
        e = max(e, close(name, k, c[k], v))
    return e


# ---------------------------------------------------------------- distillation
def check_kd(c):
    name = c["name"]
    N, V = c["N"], c["V"]
    s = t(c["student"]).reshape(N, V).requires_grad_(True)
    te = t(c["teacher"]).reshape(N, V)
    labels = torch.tensor(c["labels"])
    rows = t(c["mask"]).ne(0)
    alpha, T, k, jb = c["alpha"], c["T"], c["top_k"], c["jsd_beta"]
    ss, ts = s / T, te / T
    if k > 0:  # teacher's top-k set, both renormalised over it
        idx = torch.topk(ts, k, dim=-1).indices
        ss, ts = ss.gather(1, idx), ts.gather(1, idx)
    lq = F.log_softmax(ss, dim=-1)  # student
    lp = F.log_softmax(ts, dim=-1)  # teacher
    if jb < 0:  # classic KD: T^2 KL(teacher || student)
        d = (T * T) * F.kl_div(lq, lp, reduction="none", log_target=True).sum(-1)
    elif jb == 0:  # TRL GKD generalized_jsd_loss, beta = 0: forward KL(teacher || student)
        d = F.kl_div(lq, lp, reduction="none", log_target=True).sum(-1)
    elif jb == 1:  # beta = 1: reverse KL(student || teacher)
        d = F.kl_div(lp, lq, reduction="none", log_target=True).sum(-1)
    else:
        b = torch.tensor(jb)
        lm = torch.logsumexp(torch.stack([lq + torch.log(1 - b), lp + torch.log(b)]), dim=0)
        d = (b * F.kl_div(lm, lp, reduction="none", log_target=True)
             + (1 - b) * F.kl_div(lm, lq, reduction="none", log_target=True)).sum(-1)
    ce = torch.where(labels >= 0, F.cross_entropy(s, labels.clamp(min=0), reduction="none"), torch.zeros(N))
    row = alpha * d + (1 - alpha) * ce
    loss = row[rows].sum() / max(int(rows.sum()), 1)
    loss.backward()
    return max(close(name, "loss", c["loss"], loss), close(name, "dstudent", c["dstudent"], s.grad))


def main():
    path = sys.argv[1]
    with open(path) as f:
        cases = json.load(f)["cases"]
    fns = dict(logprobs=check_logprobs, adv=check_adv, grpo=check_grpo, dpo=check_dpo, orpo=check_orpo, kd=check_kd)
    for c in cases:
        e = fns[c["kind"]](c)
        print(f"{c['kind']:8s} {c['name']:32s} max rel err {e:.2e}")
    if failures:
        print(f"{len(failures)} mismatches (tolerance {TOL}):")
        for m in failures:
            print("  " + m)
        print(f"0 passed, {len(failures)} failed")
        sys.exit(1)
    print(f"{len(cases)} cases, {checked} quantities within {TOL} of the reference")


if __name__ == "__main__":
    main()
