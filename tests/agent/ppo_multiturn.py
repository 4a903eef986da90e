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


def ppo_run(out, what, extra=()):
    ok_run(["ppo", "--model", MODEL, "--data", os.path.join(D, "train_grpo.jsonl"), "--out", out, "--steps", 2,
            "--batch-size", B, "--num-generations", G, "--beta", BETA, "--temperature", T, "--epsilon", EPS, "--gamma", GAMMA,
            "--gae-lambda", LAM, "--clip-range-value", CLIPV, "--vf-coef", VF, "--ent-coef", ENT, "--lr", 1e-3,
            "--max-tokens-to-generate", 8, "--max-episode-tokens", BUDGET, "--max-turns", 5, "--env-cmd", ENVCMD,
            "--reward", f"env:{ENVW}", "--seed", 3, "--no-system-prompt", "--save-every", 1, "--keep-last", 0,
            "--dump-rollouts", os.path.join(out, "roll.jsonl")] + list(extra), what, env=ENV, timeout=300)


ppo_run(OUT, "ppo over episodes")
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



def check_values(rolls, valuer_dir, what):
    """step 2's rollout values: the value model of step 1 (the policy + its head, or the critic) on the
    reference decoder's hidden states of the whole transcript, read at the positions predicting model tokens"""
    net = Decoder.load(valuer_dir, dtype=torch.float64)
    vh = st_arrays(os.path.join(valuer_dir, "value_head.safetensors"))
    wv = torch.tensor(np.concatenate([vh["v_head.weight"].reshape(-1), vh["v_head.bias"]]).astype(np.float64))
    check(float(wv.abs().max()) > 0, f"{what}: the value head moved in step 1")
    e_v = 0.0
    with torch.no_grad():
        for r in (r for r in rolls if r["step"] == 2):
            _, hid = net.forward(torch.tensor(r["ids"])[None], return_hidden=True)
            sel = [p - 1 for p in range(1, len(r["ids"])) if r["mask"][p]]
            V = hid[0, sel] @ wv[:-1] + wv[-1]
            e_v = max(e_v, float((V - t64(r["old_values"])).abs().max()))
    check(e_v <= 1e-4, f"{what}: step 2's values from the reference decoder at the model's positions = the dumped "
          f"rollout values (max err {e_v:.1e})")


check_values(rolls, os.path.join(OUT, "checkpoints", "step_1"), "value head on the policy")

# ---- the same episodes' PPO with --critic: a separate, smaller model of the same tokenizer reads the
# transcripts; GAE/losses as above, and step 2's values are the critic checkpoint's ----
SMALL = '{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}'
CRITIC = init_model(os.path.join(W, "c"), seed=9, extra=["--override", SMALL])
OUTC = os.path.join(W, "runc")
ppo_run(OUTC, "ppo over episodes with --critic", ["--critic", CRITIC, "--critic-lr", 3e-3])
mc, rc = read_metrics(OUTC), read_jsonl(os.path.join(OUTC, "roll.jsonl"))
check(len(mc) == 2 and len(rc) == 2 * B * G, "--critic: 2 metric rows and the dumped transcripts")
for r in rc:
    r["logprobs"] = r["policy_logprobs"]
for step in (1, 2):
    check_step(step, [r for r in rc if r["step"] == step], mc[step - 1], P, rewards=rewards_per_turn)
check(os.path.exists(os.path.join(OUTC, "critic", "value_head.safetensors")), "--critic: RUN/critic/ written at the end")
check_values(rc, os.path.join(OUTC, "checkpoints", "step_1", "critic"), "--critic")
d = max(abs(a - b) for x, y in zip(rolls, rc) for a, b in zip(x["old_values"], y["old_values"]))
check(d > 1e-3, f"the critic's values differ from the policy head's (max diff {d:.2e}: the check can fail)")
finish()
