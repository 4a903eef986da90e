"""PPO's formulas recomputed in PyTorch float64 from `--dump-rollouts` (tests/grpo/ppo.py,
ppo_critic.py): GAE per completion over the dumped rollout values and per-token rewards, the
advantages whitened over the batch's tokens, explained variance, the policy and value losses.
Not for: running tunic (the tests do)."""
import os

import torch

from common_grpo import ENV, check, ok_run, read_jsonl, read_metrics

t64 = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731


def gae(rw, v, gamma, lam):
    """Advantages and returns of one sequence: delta_t = r_t + gamma v_{t+1} - v_t (0 after the end)."""
    n = len(rw)
    A = torch.zeros(n, dtype=torch.float64)
    last = 0.0
    for k in reversed(range(n)):
        nxt = v[k + 1] if k + 1 < n else 0.0
        last = rw[k] + gamma * nxt - v[k] + gamma * lam * last
        A[k] = last
    return A, A + v


def token_rewards(r, beta):
    """-beta (old - ref) per token (the KL in the rewards), the total on the last token."""
    n = len(r["completion_ids"])
    rw = -beta * (t64(r["old_logprobs"]) - t64(r["ref_logprobs"]))
    rw[n - 1] += r["total"]
    return rw


def check_step(step, rows, m, p, rewards=token_rewards):
    """Returns, whitened advantages, explained variance, policy and value losses of one step's rows
    against the dump and metrics row m; p: dict of BETA, GAMMA, LAM, EPS, CLIPV."""
    adv_all, ret_all, v_all = [], [], []
    e_ret = 0.0
    for r in rows:
        v = t64(r["old_values"])
        A, R = gae(rewards(r, p["BETA"]), v, p["GAMMA"], p["LAM"])
        e_ret = max(e_ret, float((R - t64(r["returns"])).abs().max()))
        adv_all.append(A)
        ret_all.append(R)
        v_all.append(v)
    check(e_ret <= 1e-6, f"step {step}: returns = GAE over the dumped values and per-token rewards (max err {e_ret:.1e})")
    flat = torch.cat(adv_all)
    mu, var = flat.mean(), ((flat - flat.mean()) ** 2).mean()
    wh = [(a - mu) / var.clamp(min=1e-8).sqrt() for a in adv_all]
    e_adv = max(float(((w - t64(r["token_advantages"])).abs() / w.abs().clamp(min=1)).max()) for w, r in zip(wh, rows))
    check(e_adv <= 1e-6, f"step {step}: token advantages = whitened GAE (max rel err {e_adv:.1e})")
    Rf, Vf = torch.cat(ret_all), torch.cat(v_all)
    ev = 1 - ((Rf - Vf) - (Rf - Vf).mean()).pow(2).mean() / (Rf - Rf.mean()).pow(2).mean()
    check(abs(float(ev) - m["explained_variance"]) <= 1e-6,
          f"step {step}: explained_variance {m['explained_variance']:.6f} = {float(ev):.6f}")
    ntok = sum(len(r["token_advantages"]) for r in rows)
    pl, vl = 0.0, 0.0
    eps, clipv = p["EPS"], p["CLIPV"]
    for r in rows:
        lp, old = t64(r["logprobs"]), t64(r["old_logprobs"])
        A = t64(r["token_advantages"])
        ratio = torch.exp(lp - old)
        pl += float(-torch.min(ratio * A, ratio.clamp(1 - eps, 1 + eps) * A).mean()) / len(rows)
        V, V0, R = t64(r["values"]), t64(r["old_values"]), t64(r["returns"])
        Vc = V0 + (V - V0).clamp(-clipv, clipv)
        vl += float(0.5 * torch.max((V - R) ** 2, (Vc - R) ** 2).sum()) / ntok
    check(abs(pl - m["loss"]) <= 1e-6 * max(1e-3, abs(pl)), f"step {step}: policy loss {m['loss']:.9g} = {pl:.9g}")
    check(abs(vl - m["value_loss"]) <= 1e-6 * max(1e-3, abs(vl)), f"step {step}: value loss {m['value_loss']:.9g} = {vl:.9g}")


def run_checked(args, out, what, n_per_step, p):
    """`tunic ppo args` for 2 steps into out with --dump-rollouts and --dump-grads, then check_step on
    both steps; returns (metrics rows, dumped rows)."""
    ok_run(["ppo", *args, "--out", out, "--dump-rollouts", os.path.join(out, "roll.jsonl"), "--dump-grads",
            os.path.join(out, "grads")], what, env=ENV, timeout=300)
    metrics = read_metrics(out)
    rolls = read_jsonl(os.path.join(out, "roll.jsonl"))
    check(len(metrics) == 2 and len(rolls) == 2 * n_per_step, "2 metric rows and the dumped completions")
    for step in (1, 2):
        check_step(step, [r for r in rolls if r["step"] == step], metrics[step - 1], p)
    return metrics, rolls


def autograd_terms(r, lsm, V, n_rows, ntok, eps, clipv):
    """One completion's share of the policy loss (per-sequence token mean, then mean over n_rows),
    the value loss and the entropy (token means over ntok), differentiable: lsm (n, V) the
    log-softmax of logits / T at its positions, V (n) its values; and the values' max error against
    the dumped rollout values."""
    lp = lsm.gather(1, torch.tensor(r["completion_ids"])[:, None])[:, 0]
    e_v = float((V.detach() - t64(r["old_values"])).abs().max())
    old, A = t64(r["old_logprobs"]), t64(r["token_advantages"])
    ratio = torch.exp(lp - old)
    pl = -torch.min(ratio * A, ratio.clamp(1 - eps, 1 + eps) * A).mean() / n_rows
    V0, R = t64(r["old_values"]), t64(r["returns"])
    Vc = V0 + (V - V0).clamp(-clipv, clipv)
    vl = 0.5 * torch.max((V - R) ** 2, (Vc - R) ** 2).sum() / ntok
    ent = -(lsm.exp() * lsm).sum() / ntok
    return pl, vl, ent, e_v
