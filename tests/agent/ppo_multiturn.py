#!/usr/bin/python3
"""Issue 22: `tunic ppo` over multi-turn episodes (--env-cmd): values and GAE over the model's tokens
only, the environment's reward of each turn on the last model token of that turn, recomputed in
PyTorch float64 from the dumped transcripts.

Run: the tiny llama (byte tokenizer), 2 steps of 2 prompts x 2 episodes against
tests/agent/count_env.py (3 model turns, each answered with "more k"; a turn's reward = the fraction
of letters of the assistant's content), --reward env:2, beta 0.1 with the KL in the rewards, gamma
0.9, gae_lambda 0.8, clip_range_value 0.2, vf_coef 0.5, ent_coef 0.1, 8 tokens per turn,
--max-episode-tokens 70, --dump-rollouts and a checkpoint after each step. From the dump:
  - turn_rewards = the letter fraction of each assistant message the environment stepped (1e-6; a
    turn cut at the budget gets 0), their sum = env_reward;
  - per model token: -beta (old - ref); env weight x turn k's reward on the last model token of turn
    k (the model segments of the transcript's mask); the rest of the total on the last model token.
    GAE over the model tokens only (tests/grpo/ppo_ref.py) = the dumped returns (1e-6), whitened
    advantages, explained variance, policy and value losses = metrics.jsonl (1e-6);
  - the same with every environment reward on the last token gives other returns (the test can fail);
  - step 2: the value head of checkpoints/step_1 on tests/ref/hf_decoder.py's hidden states of the
    whole transcript, read at the positions predicting model tokens = the dumped rollout values (1e-4).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "grpo"))
from common_grpo import ENV, check, finish, init_model, make_data, ok_run, read_jsonl, read_metrics, st_arrays, workdir  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hf_decoder import Decoder  # noqa: E402
from ppo_ref import check_step, gae, t64  # noqa: E402

torch.set_num_threads(1)
W = workdir("ppoturns")
MODEL = init_model(os.path.join(W, "m"), seed=5)
D = make_data(W)
OUT = os.path.join(W, "run")
T, BETA, EPS, GAMMA, LAM, CLIPV, VF, ENT, ENVW = 0.9, 0.1, 0.2, 0.9, 0.8, 0.2, 0.5, 0.1, 2.0
B, G, BUDGET = 2, 2, 70
ENVCMD = f"/usr/bin/python3 {os.path.join(HERE, 'count_env.py')}"
ok_run(["ppo", "--model", MODEL, "--data", os.path.join(D, "train_grpo.jsonl"), "--out", OUT, "--steps", 2,
        "--batch-size", B, "--num-generations", G, "--beta", BETA, "--temperature", T, "--epsilon", EPS, "--gamma", GAMMA,
        "--gae-lambda", LAM, "--clip-range-value", CLIPV, "--vf-coef", VF, "--ent-coef", ENT, "--lr", 1e-3,
        "--max-tokens-to-generate", 8, "--max-episode-tokens", BUDGET, "--max-turns", 5, "--env-cmd", ENVCMD,
        "--reward", f"env:{ENVW}", "--seed", 3, "--no-system-prompt", "--save-every", 1, "--keep-last", 0,
        "--dump-rollouts", os.path.join(OUT, "roll.jsonl")], "ppo over episodes", env=ENV, timeout=300)
metrics = read_metrics(OUT)
rolls = read_jsonl(os.path.join(OUT, "roll.jsonl"))
check(len(metrics) == 2 and len(rolls) == 2 * B * G, "2 metric rows and the dumped transcripts")


def stepped(r):
    """the assistant messages the environment saw: all but a turn cut at the episode's budget"""
    a = [msg for msg in r["messages"] if msg["role"] == "assistant"]
    return a[:-1] if r["status"] == "truncated" and r["mask"][-1] == 1 else a


e_turn = 0.0
for r in rolls:
    want = [sum(c.isalpha() for c in m["content"]) / max(1, len(m["content"])) for m in stepped(r)]
    want += [0.0] * (r["turns"] - len(want))
    got = r["turn_rewards"]
    e_turn = max(e_turn, max(abs(a - b) for a, b in zip(want, got)) if len(got) == len(want) else 1.0,
                 abs(sum(got) - r["env_reward"]))
check(e_turn <= 1e-6, f"turn_rewards = each stepped assistant message's letter fraction, summing to env_reward (err {e_turn:.1e})")
check(any(sum(x > 0 for x in r["turn_rewards"]) >= 2 for r in rolls), "some episode has rewards on two turns")


def turn_ends(r):
    """flat index (among the model's tokens) of the last token of each model turn"""
    mask, ends, w = r["mask"], [], 0
    for p in range(1, len(mask)):
        if mask[p]:
            if p + 1 >= len(mask) or not mask[p + 1]:
                ends.append(w)
            w += 1
    return ends, w


def rewards_per_turn(r, beta, at_end=False):
    rw = -beta * (t64(r["old_logprobs"]) - t64(r["ref_logprobs"]))
    ends, n = turn_ends(r)
    env = [ENVW * x for x in r["turn_rewards"]]
    for k, e in enumerate(ends[:len(env)]):
        rw[n - 1 if at_end else e] += env[k]
    rw[n - 1] += r["total"] - sum(env[:len(ends)])
    return rw


check(all(len(turn_ends(r)[0]) == r["turns"] for r in rolls), "one model segment per turn in every transcript")
P = {"BETA": BETA, "GAMMA": GAMMA, "LAM": LAM, "EPS": EPS, "CLIPV": CLIPV}
for r in rolls:
    r["logprobs"] = r["policy_logprobs"]
for step in (1, 2):
    check_step(step, [r for r in rolls if r["step"] == step], metrics[step - 1], P, rewards=rewards_per_turn)
off = max(float((gae(rewards_per_turn(r, BETA, at_end=True), t64(r["old_values"]), GAMMA, LAM)[1] - t64(r["returns"])).abs().max())
          for r in rolls)
check(off > 1e-3, f"every environment reward on the last token instead gives other returns (max diff {off:.2e})")

# ---- step 2's rollout values: the head of step 1 on the whole transcript, at the model's positions ----
ck1 = os.path.join(OUT, "checkpoints", "step_1")
pol = Decoder.load(ck1, dtype=torch.float64)
vh = st_arrays(os.path.join(ck1, "value_head.safetensors"))
wv = torch.tensor(np.concatenate([vh["v_head.weight"].reshape(-1), vh["v_head.bias"]]).astype(np.float64))
check(float(wv.abs().max()) > 0, "the value head moved in step 1")
e_v = 0.0
with torch.no_grad():
    for r in (r for r in rolls if r["step"] == 2):
        _, hid = pol.forward(torch.tensor(r["ids"])[None], return_hidden=True)
        sel = [p - 1 for p in range(1, len(r["ids"])) if r["mask"][p]]
        V = hid[0, sel] @ wv[:-1] + wv[-1]
        e_v = max(e_v, float((V - t64(r["old_values"])).abs().max()))
check(e_v <= 1e-4, f"step 2: the value head on the reference decoder's hidden states at the model's positions = the "
      f"dumped rollout values (max err {e_v:.1e})")
finish()
