#!/usr/bin/python3
"""check_adamw.py - independent reference for tunic's optimizer (tests/test_optim.c).

Reads what test_optim wrote to optim_io/ (the inputs it generated and its own
results) and recomputes the ten steps with torch.optim.AdamW (two parameter
groups: weight decay / none), torch.nn.utils.clip_grad_norm_ and the learning
rate from a Python transcription of optax.warmup_cosine_decay_schedule (and of
the linear / constant variants, written the way optax joins its schedules).

Tolerances (stated, checked):
  parameters after every step   max |tunic - torch| <= 1e-5 (absolute, params ~ 0.5-1)
  final AdamW moments m, v      max |tunic - torch| / max |torch| <= 1e-5
  pre-clip global norm          relative 1e-5 (torch sums in f32, tunic in f64)
  learning rates                relative 1e-6 (tunic returns f32, the reference is f64)
Usage: check_adamw.py DIR   (DIR = the optim_io directory)
"""
import json
import math
import os
import sys

import numpy as np
import torch

TOL_PARAM = 1e-5


# ---- optax schedules, transcribed (optax/schedules/_schedule.py, _join.py) ----
def linear_schedule(init_value, end_value, transition_steps):
    if transition_steps <= 0:
        return lambda count: init_value

    def f(count):
        count = min(max(count, 0), transition_steps)
        frac = 1 - count / transition_steps
        return (init_value - end_value) * frac + end_value
    return f


def cosine_decay_schedule(init_value, decay_steps, alpha=0.0, exponent=1.0):
    if not decay_steps > 0:
        raise ValueError("cosine_decay_schedule requires positive decay_steps")

    def f(count):
        count = min(float(count), float(decay_steps))
        cosine_decay = 0.5 * (1 + math.cos(math.pi * count / decay_steps))
        decayed = (1 - alpha) * cosine_decay ** exponent + alpha
        return init_value * decayed
    return f


def join_schedules(schedules, boundaries):
    def f(step):
        out = schedules[0](step)
        for b, s in zip(boundaries, schedules[1:]):
            out = out if step < b else s(step - b)
        return out
    return f


def warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps,
                                 end_value=0.0, exponent=1.0):
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    return join_schedules([
        linear_schedule(init_value, peak_value, warmup_steps),
        cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent),
    ], [warmup_steps])


def make_schedule(c):
    if c["kind"] == "cosine":
        return warmup_cosine_decay_schedule(c["init_value"], c["peak_value"], c["warmup_steps"],
                                            c["decay_steps"], c["end_value"], c["exponent"])
    warm = linear_schedule(c["init_value"], c["peak_value"], c["warmup_steps"])
    if c["kind"] == "linear":
        after = linear_schedule(c["peak_value"], c["end_value"],
                                c["decay_steps"] - c["warmup_steps"])
    else:
        after = lambda count: c["peak_value"]  # noqa: E731  optax.constant_schedule
    return join_schedules([warm, after], [c["warmup_steps"]])


def main():
    d = sys.argv[1]
    meta = json.load(open(os.path.join(d, "meta.json")))
    S, total, nlr = meta["steps"], meta["total"], meta["nlr"]
    shapes = [tuple(p["shape"]) for p in meta["params"]]
    sizes = [int(np.prod(s)) for s in shapes]
    assert sum(sizes) == total
    fin = np.fromfile(os.path.join(d, "in.f32"), dtype=np.float32)
    fout = np.fromfile(os.path.join(d, "out.f32"), dtype=np.float32)
    norms_c = np.fromfile(os.path.join(d, "norm.f64"), dtype=np.float64)
    lrs_c = np.fromfile(os.path.join(d, "lr.f32"), dtype=np.float32)
    assert fin.size == total * (S + 1), "in.f32 size"
    assert fout.size == S * (1 + total) + 2 * total, "out.f32 size"
    assert norms_c.size == S and lrs_c.size == nlr * len(meta["schedules"])

    failures = []

    # -- schedules --
    worst_lr = 0.0
    for k, c in enumerate(meta["schedules"]):
        f = make_schedule(c)
        for s in range(nlr):
            want, got = f(s), float(lrs_c[k * nlr + s])
            err = abs(got - want) / max(abs(want), 1e-30)
            if want == 0.0:
                err = abs(got)
            worst_lr = max(worst_lr, err)
            if err > 1e-6:
                failures.append(f"schedule {k} ({c['kind']}) step {s}: tunic {got!r} optax {want!r}")
    print(f"schedules: {len(meta['schedules'])} x {nlr} steps, worst relative lr error {worst_lr:.2e}")

    # -- ten AdamW steps --
    def split(flat):
        out, o = [], 0
        for sz, sh in zip(sizes, shapes):
            out.append(torch.tensor(flat[o:o + sz].reshape(sh)))
            o += sz
        return out

    params = [torch.nn.Parameter(t) for t in split(fin[:total])]
    decay = [p for p, m in zip(params, meta["params"]) if m["decay"]]
    nodecay = [p for p, m in zip(params, meta["params"]) if not m["decay"]]
    assert decay and nodecay
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": meta["weight_decay"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=1.0, betas=(meta["beta1"], meta["beta2"]), eps=meta["eps"],
                            foreach=False)
    sched = make_schedule(meta["schedules"][0])
    worst_p, worst_norm, nclip = 0.0, 0.0, 0
    for s in range(S):
        lr = sched(s)
        rec = fout[s * (1 + total):(s + 1) * (1 + total)]
        if abs(float(rec[0]) - lr) > 1e-6 * lr:
            failures.append(f"step {s}: lr tunic {float(rec[0])!r} optax {lr!r}")
        for g in opt.param_groups:
            g["lr"] = lr
        for p, gr in zip(params, split(fin[(s + 1) * total:(s + 2) * total])):
            p.grad = gr
        norm = float(torch.nn.utils.clip_grad_norm_(params, meta["max_norm"]))
        nclip += norm > meta["max_norm"]
        rel = abs(norms_c[s] - norm) / norm
        worst_norm = max(worst_norm, rel)
        if rel > 1e-5:
            failures.append(f"step {s}: grad norm tunic {norms_c[s]!r} torch {norm!r}")
        opt.step()
        ref = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
        err = np.abs(rec[1:] - ref)
        worst_p = max(worst_p, float(err.max()))
        if err.max() > TOL_PARAM:
            i = int(err.argmax())
            failures.append(f"step {s}: param element {i}: tunic {rec[1 + i]!r} torch {ref[i]!r}")
    print(f"adamw: {S} steps on {len(params)} tensors ({total} floats), {nclip} clipped; "
          f"worst |param diff| {worst_p:.2e} (tol {TOL_PARAM:g}), worst norm rel diff {worst_norm:.2e}")
    if not (0 < nclip < S):
        failures.append(f"trajectory should clip on some steps only, clipped {nclip}/{S}")

    # the parameters must have moved well beyond the tolerance (else the check is vacuous)
    moved = float(np.abs(fout[(S - 1) * (1 + total) + 1:S * (1 + total)] - fin[:total]).max())
    print(f"largest parameter change over the run: {moved:.3e}")
    if moved < 100 * TOL_PARAM:
        failures.append(f"parameters moved only {moved:g}")

    # -- final moments --
    base = S * (1 + total)
    m_c, v_c = fout[base:base + total], fout[base + total:base + 2 * total]
    m_t = torch.cat([opt.state[p]["exp_avg"].reshape(-1) for p in params]).numpy()
    v_t = torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in params]).numpy()
    for name, c, t in (("exp_avg", m_c, m_t), ("exp_avg_sq", v_c, v_t)):
        # normalised by the moment's largest magnitude: elementwise relative error is
        # meaningless where m is a cancellation near 0
        err = float(np.abs(c - t).max()) / float(np.abs(t).max())
        print(f"{name}: max |diff| / max |torch| = {err:.2e} (tol 1e-5)")
        if err > 1e-5:
            failures.append(f"{name} differs: normalised error {err:g}")
    for p in params:
        if int(opt.state[p]["step"]) != S:
            failures.append("torch step count")

    for f in failures[:20]:
        print("FAIL:", f)
    print("check_adamw:", "FAILED" if failures else "all checks within tolerance")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
