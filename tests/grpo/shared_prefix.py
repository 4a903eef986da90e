#!/usr/bin/python3
"""Issue 5: the GRPO training forward/backward shares each prompt across its G completions.

With sharing (the default when micro-batches hold whole groups) a prompt's tokens run through
the model once per group; each completion's slot reads the prompt's keys/values, and the
backward pass adds the completions' key/value gradients back into the prompt's rows. That is
the same function as running every prompt+completion whole (TN_NO_SHARED_PREFIX=1), only
summed in another order. Runs (tiny llama, 3 steps of 2 prompts x 4 generations, beta 0.04, a
--reward-cmd so advantages are non-zero), each with and without sharing:
  one pass (micro-batch = the step) and two micro-batches of one group each (--micro-batch 4);
  and one pass of a tiny qwen3 (q/k norms) and gemma3_text (sliding window of 8 positions, shorter
  than the prompts, local and global layers, attention and final soft-capping, sandwich norms).
Required: step-1 completions identical; step-1 loss within 1e-6 (it is a sum of cancelling
terms near 0), kl and grad_norm within 1e-5 relative,
steps 2-3 within 1e-3 (their weights already differ in the last bits); the step-1 gradient of every
weight within 1e-6 of its largest entry + 1e-4 of itself. The logged
train_rows (token rows through the model) equal the layout's count for both.
(grpo_step_formula checks the shared path's gradients of every weight against PyTorch.)
"""
import os

from common_grpo import REWARD_CMD, check, finish, grpo, init_model, make_data, read_jsonl, read_metrics, st_arrays, workdir

W = workdir("grposhare")
MODELS = {"llama": init_model(os.path.join(W, "m"), seed=3),
          "qwen3": init_model(os.path.join(W, "q3"), seed=3, arch="qwen3"),
          "gemma3_text": init_model(os.path.join(W, "g3"), seed=3, arch="gemma3_text",
                                    extra=["--override", '{"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}'])}
D = make_data(W)


def run(name, share, extra=(), arch="llama"):
    out = os.path.join(W, name)
    env = {"OMP_NUM_THREADS": "1", "TN_PROGRESS": "off", "TN_NO_SHARED_PREFIX": "0" if share else "1"}
    grpo(MODELS[arch], os.path.join(D, "train_grpo.jsonl"), out, "--steps", 3, "--batch-size", 2, "--num-generations", 4,
         "--lr", "1e-3", "--beta", 0.04, "--max-tokens-to-generate", 20, "--seed", 5, "--reward-cmd", REWARD_CMD,
         "--dump-rollouts", os.path.join(out, "roll.jsonl"), "--dump-grads", os.path.join(out, "grads"), *extra,
         env=env, what=f"grpo {name}")
    return read_metrics(out), read_jsonl(os.path.join(out, "roll.jsonl")), out


def close(a, b, rel=1e-5, ab=1e-8):
    return abs(a - b) <= ab + rel * max(abs(a), abs(b))


for label, extra, arch in (("one pass", (), "llama"), ("two micro-batches", ("--micro-batch", 4), "llama"),
                           ("qwen3 (q/k norms)", (), "qwen3"),
                           ("gemma3 (window 8 < prompt, soft-capping, sandwich norms)", (), "gemma3_text")):
    tag = label.split(" (")[0].replace(" ", "_")
    ms, rs, os_ = run("s_" + tag, True, extra, arch)
    mu, ru, ou = run("u_" + tag, False, extra, arch)
    check([r["completion_ids"] for r in rs if r["step"] == 1] == [r["completion_ids"] for r in ru if r["step"] == 1],
          f"{label}: identical step-1 completions")
    a, b = ms[0], mu[0]
    # the step-1 loss is a sum of terms of size ~1 that cancel (ratio 1, advantages of mean 0): absolute 1e-6
    bad = [(k, a[k], b[k]) for k in ("loss", "kl", "grad_norm") if not close(a[k], b[k], ab=1e-6 if k == "loss" else 1e-8)]
    check(not bad, f"{label}: step-1 loss (1e-6 abs), kl, grad_norm (1e-5 rel) agree" + (f" -- {bad}" if bad else ""))
    bad = [(i + 2, k) for i, (a, b) in enumerate(zip(ms[1:], mu[1:])) for k in ("loss", "kl", "grad_norm")
           if not close(a[k], b[k], rel=1e-3, ab=1e-7)]  # later steps start from weights that differ in the last bits
    check(len(ms) == len(mu) == 3 and not bad, f"{label}: steps 2-3 agree to 1e-3 rel" + (f" -- {bad}" if bad else ""))
    gs = st_arrays(os.path.join(os_, "grads", "step_1.safetensors"))
    gu = st_arrays(os.path.join(ou, "grads", "step_1.safetensors"))
    worst = max(float((abs(gs[k] - gu[k]) / (1e-6 * abs(gu[k]).max() + 1e-4 * abs(gu[k]) + 1e-30)).max()) for k in gu)
    check(set(gs) == set(gu) and worst <= 1.0, f"{label}: step-1 gradient of every weight agrees "
          f"(|diff| <= 1e-6 max|g| + 1e-4 |g|; worst ratio to the bound {worst:.3f})")
    # rows through the model per step: whole = sum(P + C); shared = per group (P - 1) + sum(C + 1)
    want_u = sum(len(r["prompt_ids"]) + len(r["completion_ids"]) for r in ru if r["step"] == 1)
    want_s = sum(len(r["completion_ids"]) + 1 for r in rs if r["step"] == 1) + \
        sum(len(p) - 1 for p in {tuple(r["prompt_ids"]) for r in rs if r["step"] == 1})
    check(mu[0]["train_rows"] == want_u and ms[0]["train_rows"] == want_s and want_s < want_u,
          f"{label}: step-1 rows through the model: shared {ms[0]['train_rows']:.0f} (want {want_s}), "
          f"whole {mu[0]['train_rows']:.0f} (want {want_u})")
finish()
