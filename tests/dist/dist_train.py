"""Data-parallel training over MPI (issue 20): `mpirun -np 2` against one process.

What it is for: for sft (full, LoRA), dpo, distill (also on-policy: the student's samples) and grpo (token-mean loss, KL, 2 inner iterations), 2 ranks with per-rank batch b give the
weights of 1 process with batch 2b (||w2 - w1|| / ||w1|| <= 1e-6: the micro-batch GEMMs add in
another order, so not bit for bit), a checkpoint of either resumes on the other number of ranks
to the same weights, rank 0 alone writes the run (manifest "distributed": world size, hosts, MPI
library), --zero 1 (AdamW state sharded) is bit-identical to the replicated optimizer and its
checkpoints resume on one process (and back), grpo's batch-normalised estimators (--scale-rewards batch,
REINFORCE++) equal one process, so do ppo (value head, or a --critic model, included; also over episodes), dynamic sampling and agentic grpo, and a rank killed with SIGKILL
fails the job (mpirun names the rank) after which --resume on one process continues.
What it is not: a speed test (bench/dist.sh) nor a test of what the trainers compute.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi import MPIRUN, tunic, weights  # noqa: E402,F401  (exits 77 without MPI)
from common import TUNIC, check, finish, init_model, st_tensors, workdir  # noqa: E402,F401
from trainers import Trainers  # noqa: E402

import numpy as np  # noqa: E402


def ok(p, what):
    if not check(p.returncode == 0, f"{what}: exit 0 (got {p.returncode})"):
        print(p.stdout[-2000:], p.stderr[-3000:])
        return False
    return True


def compare(a, b):
    """(relative L2 distance, max abs difference, bit-identical) of two weight files."""
    wa, wb = weights(a), weights(b)
    if set(wa) != set(wb):
        return math.inf, math.inf, False
    num = sum(float(((wa[k] - wb[k]) ** 2).sum()) for k in wa)
    den = sum(float((wa[k] ** 2).sum()) for k in wa)
    mx = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
    return math.sqrt(num / den), mx, all(np.array_equal(wa[k], wb[k]) for k in wa)


def final(out, lora):
    return os.path.join(out, "adapter/adapter_model.safetensors" if lora else "model/model.safetensors")


def rewind(src, dst, lora):
    """A copy of run src as if killed after its step-2 checkpoint: step_4 and the final weights gone."""
    shutil.copytree(src, dst)
    shutil.rmtree(os.path.join(dst, "checkpoints", "step_4"))
    shutil.rmtree(os.path.dirname(final(dst, lora)))


w = workdir("dist")
T = Trainers(w)
STEPS = 4
CASES = {  # name: (args with the per-rank batch as {B}, LoRA)
    "sft_full": (["sft", "--model", T.model, "--data", T.sft_data, "--grad-accum", 2, "--lr", "1e-3"], False),
    "sft_lora": (["sft", "--model", T.model, "--data", T.sft_data, "--lora-rank", 4, "--lr", "5e-3"], True),
    "dpo": (["dpo", "--model", T.model, "--data", T.pref_data, "--lr", "1e-3"], False),
    "distill": (["distill", "--teacher", T.teacher, "--student", T.model, "--data", T.sft_data, "--lr", "1e-3",
                 "--feature-layers", "1:1"], False),
    "distill_on_policy": (["distill", "--teacher", T.teacher, "--student", T.model, "--data", T.sft_data, "--lr", "1e-3",
                           "--lmbda", "1", "--max-new-tokens", 8, "--grad-accum", 2], False),
    "grpo": (["grpo", "--model", T.model, "--data", T.grpo_data, "--num-generations", 3, "--max-tokens-to-generate", 12,
              "--lr", "1e-3", "--num-iterations", 2, "--beta", "0.04", "--loss-agg", "token-mean",
              "--reward-cmd", T.args("grpo", "x")[T.args("grpo", "x").index("--reward-cmd") + 1]], False),
}
TOL = 1e-6
for name, (base, lora) in CASES.items():
    def args(out, batch, resume=False):
        return base + ["--batch-size", batch, "--out", out, "--steps", STEPS, "--save-every", 2, "--keep-last", 2,
                       "--seed", 5] + (["--resume"] if resume else [])
    r1, r2 = os.path.join(w, name + "_1"), os.path.join(w, name + "_2")
    t0 = time.time()
    if not ok(tunic(args(r1, 4), 1), f"{name}: 1 process, batch 4"):
        continue
    p = tunic(args(r2, 2), 2)
    if not ok(p, f"{name}: 2 ranks, batch 2 each"):
        continue
    rel, mx, same = compare(final(r1, lora), final(r2, lora))
    check(rel <= TOL, f"{name}: 2 ranks x batch 2 == 1 process x batch 4: relative distance {rel:.2e} <= {TOL:g} "
                      f"(max |diff| {mx:.2e}, bit-identical: {same})")
    l1 = [json.loads(x)["loss"] for x in open(os.path.join(r1, "metrics.jsonl"))]
    l2 = [json.loads(x)["loss"] for x in open(os.path.join(r2, "metrics.jsonl"))]
    check(len(l1) == len(l2) == STEPS and all(abs(a - b) <= 1e-6 * max(abs(a), 1.0) for a, b in zip(l1, l2)),
          f"{name}: the step losses of rank 0's metrics.jsonl are the global ones (1e-6 x max(1, |loss|)) ({l2[:2]} vs {l1[:2]})")
    man = json.load(open(os.path.join(r2, "run_manifest.json")))
    d = man.get("distributed") or {}
    check(d.get("world_size") == 2 and len(d.get("hosts", [])) == 2 and "MPI" in d.get("mpi_library", ""),
          f"{name}: run_manifest.json records the ranks: {json.dumps(d)[:160]}")
    check("distributed" not in json.load(open(os.path.join(r1, "run_manifest.json"))),
          f"{name}: one process writes no 'distributed' record")
    # resume on the other number of ranks, from the step-2 checkpoint
    for src, n_to, batch in ((r1, 2, 2), (r2, 1, 4)):
        dst = src + f"_resumed_on_{n_to}"
        rewind(src, dst, lora)
        p = tunic(args(dst, batch, resume=True), n_to)
        if ok(p, f"{name}: resume {os.path.basename(src)} on {n_to} rank(s)"):
            check("resumed from" in p.stdout and "step_2" in p.stdout, f"{name}: it resumed from step_2")
            rel, mx, same = compare(final(r1, lora), final(dst, lora))
            check(rel <= TOL, f"{name}: resumed on {n_to} rank(s) == uninterrupted: relative distance {rel:.2e}")
    if name == "sft_full":  # a damaged newest checkpoint: every rank falls back to the one before alike
        dst = r2 + "_damaged"
        shutil.copytree(r2, dst)
        shutil.rmtree(os.path.dirname(final(dst, lora)))
        with open(os.path.join(dst, "checkpoints", "step_4", "optimizer.safetensors"), "r+b") as f:
            f.seek(100)
            f.write(b"\xff" * 16)
        p = tunic(args(dst, 2, resume=True), 2)
        if ok(p, f"{name}: resume on 2 ranks with a damaged step_4"):
            check("step_2" in p.stdout and p.stderr.count("is damaged and is skipped") == 1,
                  f"{name}: both ranks fell back to step_2, one warning: {p.stderr.count('is damaged')} warning(s)")
            rel, mx, same = compare(final(r1, lora), final(dst, lora))
            check(rel <= TOL, f"{name}: ... and the result equals the uninterrupted run: relative distance {rel:.2e}")
        p = tunic(args(os.path.join(w, "srun_nopmi"), 2), 1, env={"SLURM_STEP_NUM_TASKS": "2"})
        check(p.returncode != 0 and "--mpi=pmix" in p.stderr, "srun tasks without an MPI process manager are refused")
    print(f"    ({name}: {time.time() - t0:.1f}s)")

# ZeRO-1: the AdamW state sharded by rows gives the same bits as the replicated optimizer (AdamW is
# elementwise, every rank has the same summed gradients), the checkpoint holds the full state (same bytes)
# and resumes on one process; a one-process checkpoint resumes under --zero 1
base, _ = CASES["sft_full"]
zargs = base + ["--out", None, "--steps", STEPS, "--save-every", 2, "--keep-last", 2, "--seed", 5, "--weight-decay", "0.1"]
def zrun(out, batch, ranks, extra=()):
    a = list(zargs)
    a[a.index(None)] = out
    return tunic(a + ["--batch-size", batch] + list(extra), ranks)
z0, z1 = os.path.join(w, "zero0"), os.path.join(w, "zero1")
if ok(zrun(z0, 2, 2), "2 ranks, replicated AdamW") and ok(zrun(z1, 2, 2, ["--zero", 1]), "2 ranks, --zero 1"):
    same_w = open(final(z0, False), "rb").read() == open(final(z1, False), "rb").read()
    opt = "checkpoints/step_4/optimizer.safetensors"
    same_o = open(os.path.join(z0, opt), "rb").read() == open(os.path.join(z1, opt), "rb").read()
    check(same_w and same_o, f"--zero 1: weights bit-identical to replicated AdamW ({same_w}), checkpoint optimizer "
                             f"state byte-identical (gathered in full: {same_o})")
    check(json.load(open(os.path.join(z1, "run_manifest.json")))["distributed"].get("zero") == 1,
          "--zero 1 is recorded in the manifest")
    r1 = os.path.join(w, "zero_resumed_on_1")
    rewind(z1, r1, False)
    if ok(zrun(r1, 4, 1, ["--resume"]), "resume a --zero 1 checkpoint on 1 process"):
        rel, mx, same = compare(final(z1, False), final(r1, False))
        check(rel <= TOL, f"--zero 1 checkpoint resumed on 1 process == uninterrupted: relative distance {rel:.2e}")
    one = os.path.join(w, "sft_full_1")
    r2 = os.path.join(w, "zero_from_1")
    if os.path.isdir(one):
        shutil.copytree(one, r2)
        shutil.rmtree(os.path.join(r2, "checkpoints", "step_4"))
        shutil.rmtree(os.path.join(r2, "model"))
        a = base + ["--out", r2, "--steps", STEPS, "--save-every", 2, "--keep-last", 2, "--seed", 5, "--batch-size", 2,
                    "--resume", "--zero", 1]
        if ok(tunic(a, 2), "resume a one-process checkpoint on 2 ranks with --zero 1"):
            rel, mx, same = compare(final(one, False), final(r2, False))
            check(rel <= TOL, f"... == the uninterrupted one-process run: relative distance {rel:.2e}")
p = tunic(["sft", "--zero", "2"], 1)
check(p.returncode == 2 and "--zero expects 0" in p.stderr, "--zero 2 is refused with a message")

# grpo with estimators that normalise over the whole batch (the batch's reward std, REINFORCE++'s
# token whitening): every rank sees the global batch's rewards, so 2 ranks x batch 2 give the
# weights of 1 process x batch 4
for extra in (["--scale-rewards", "batch"], ["--advantage-estimator", "reinforce_baseline"],
              ["--advantage-estimator", "reinforce"]):
    tag = "_".join(extra).replace("-", "")
    outs = [os.path.join(w, f"grpo{tag}_{n}") for n in (1, 2)]
    a1 = CASES["grpo"][0] + ["--batch-size", 4, "--out", outs[0], "--steps", 2, "--seed", 5] + extra
    a2 = CASES["grpo"][0] + ["--batch-size", 2, "--out", outs[1], "--steps", 2, "--seed", 5] + extra
    if ok(tunic(a1, 1), f"grpo {' '.join(extra)}: 1 process, batch 4") and \
       ok(tunic(a2, 2), f"grpo {' '.join(extra)}: 2 ranks, batch 2 each"):
        rel, mx, same = compare(final(outs[0], False), final(outs[1], False))
        check(rel <= TOL, f"grpo {' '.join(extra)}: 2 ranks x batch 2 == 1 process x batch 4: relative distance "
                          f"{rel:.2e} <= {TOL:g} (bit-identical: {same})")

# PPO, DAPO's dynamic sampling and agentic (multi-turn) GRPO on several ranks: 2 ranks x batch 2 give
# the weights (and PPO's value head) of 1 process x batch 4. Each check discriminates: with per-rank
# statistics instead (measured once by a temporary switch in the code, 2 steps) the distance was
# PPO 5.3e-3 (advantages whitened over each rank's tokens), dynamic sampling 5.5e-3 (each rank
# keeping its own first B groups with a reward spread instead of the global batch's first 2B),
# agentic GRPO 3.0e-2 (--scale-rewards batch over each rank's episodes); all three 1-6e-7 here.
RC = CASES["grpo"][0][CASES["grpo"][0].index("--reward-cmd") + 1]
COARSE = RC.replace("reward_letters.py", "reward_coarse.py")
COUNT_ENV = "/usr/bin/python3 " + os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent", "count_env.py")
CRITIC = init_model(os.path.join(w, "critic"), seed=9, extra=["--override", '{"hidden_size": 32, "intermediate_size": 64, '
                   '"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}'])
RL_BASE = ["--model", T.model, "--data", T.grpo_data, "--num-generations", 3, "--max-tokens-to-generate", 12,
           "--lr", "1e-3", "--num-iterations", 2, "--beta", "0.04", "--seed", 5, "--steps", 2]
RL_CASES = {
    "ppo": ["ppo"] + RL_BASE + ["--reward-cmd", RC, "--loss-agg", "token-mean", "--ent-coef", "0.01",
                                "--critic-lr", "3e-3"],
    "ppo_critic": ["ppo"] + RL_BASE + ["--reward-cmd", RC, "--critic", CRITIC, "--critic-lr", "3e-3"],
    "dynamic_sampling": ["grpo"] + RL_BASE + ["--reward", "format_exact:1", "--reward-cmd", COARSE,
                                              "--dynamic-sampling", "--max-num-gen-batches", 3],
    "agentic": ["grpo"] + RL_BASE + ["--max-episode-tokens", 70, "--max-turns", 5, "--env-cmd", COUNT_ENV,
                                     "--reward", "env:1", "--no-system-prompt", "--scale-rewards", "batch",
                                     "--loss-agg", "token-mean"],
    "ppo_agentic": ["ppo"] + RL_BASE + ["--max-episode-tokens", 70, "--max-turns", 5, "--env-cmd", COUNT_ENV,
                                        "--reward", "env:1", "--no-system-prompt", "--ent-coef", "0.01"],
}
RL_KEYS = ("loss", "reward/mean", "kl", "value_loss", "explained_variance", "returns_mean", "entropy_bonus",
           "dynamic_sampling/gen_batches", "dynamic_sampling/kept_groups", "episode/turns", "episode/model_tokens")
for name, a in RL_CASES.items():
    outs = [os.path.join(w, f"rl_{name}_{n}") for n in (1, 2)]
    t0 = time.time()
    if not (ok(tunic(a + ["--batch-size", 4, "--out", outs[0]], 1), f"{name}: 1 process, batch 4") and
            ok(tunic(a + ["--batch-size", 2, "--out", outs[1]], 2), f"{name}: 2 ranks, batch 2 each")):
        continue
    rel, mx, same = compare(final(outs[0], False), final(outs[1], False))
    check(rel <= TOL, f"{name}: 2 ranks x batch 2 == 1 process x batch 4: relative distance {rel:.2e} <= {TOL:g}")
    for f in {"ppo": ["value_head.safetensors"], "ppo_agentic": ["value_head.safetensors"], "ppo_critic": ["critic/value_head.safetensors",
                                                                 "critic/model.safetensors"]}.get(name, []):
        rel, mx, same = compare(*[os.path.join(o, f) for o in outs])
        check(rel <= TOL, f"{name}: ... and {f}: relative distance {rel:.2e}")
    m1, m2 = ([json.loads(x) for x in open(os.path.join(o, "metrics.jsonl"))] for o in outs)
    bad = [(k, x[k], y.get(k)) for x, y in zip(m1, m2) for k in RL_KEYS
           if k in x and not (k in y and abs(x[k] - y[k]) <= 1e-6 * max(1.0, abs(x[k])))]
    check(len(m1) == len(m2) == 2 and not bad, f"{name}: rank 0's step figures are the global batch's "
          f"({', '.join(k for k in RL_KEYS if k in m1[0])}) to 1e-6: {bad[:3]}")
    if name == "dynamic_sampling":
        check(max(m["dynamic_sampling/gen_batches"] for m in m1) > 1, f"{name}: some step refilled flat groups")
    print(f"    ({name}: {time.time() - t0:.1f}s)")

# a rank killed mid-run fails the job, naming it; --resume (one process) continues from the last checkpoint
k = os.path.join(w, "killed")
kargs = ["sft", "--model", T.model, "--data", T.sft_data, "--batch-size", 1, "--lr", "1e-3", "--out", k,
         "--steps", 100000, "--save-every", 5, "--keep-last", 2, "--seed", 5]
proc = tunic(kargs, 2, popen=True)
victim, deadline = None, time.time() + 60
while victim is None and time.time() < deadline and proc.poll() is None:
    time.sleep(0.2)
    if not os.path.isdir(os.path.join(k, "checkpoints")):
        continue
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK=1" in env and k.encode() in cmd:
            victim = int(pid)
if check(victim is not None, "found rank 1 of the running 2-rank job"):
    os.kill(victim, signal.SIGKILL)
try:
    out, err = proc.communicate(timeout=60)
except subprocess.TimeoutExpired:
    proc.kill()
    out, err = proc.communicate()
    err = "(still running 60 s after the kill) " + err
check(proc.returncode not in (0, None) and "rank 1" in err and ("signal 9" in err or "Killed" in err),
      f"the job fails when rank 1 is killed (exit {proc.returncode}), mpirun names it: "
      f"{' '.join(l.strip() for l in err.splitlines() if 'rank 1' in l)[:200]}")
p = tunic(kargs + ["--resume"], 1)  # one process at the same per-rank batch: another global batch
check(p.returncode != 0 and "items per step" in p.stderr and "same global batch" in p.stderr,
      f"resuming it with another global batch is refused: {p.stderr.strip().splitlines()[-1][:200] if p.stderr else ''}")
kargs[kargs.index("--batch-size") + 1] = 2  # the same global batch on one process
kargs[kargs.index("--steps") + 1] = 12  # resume: a short run from the last checkpoint
p = tunic(kargs + ["--resume"], 1)
check(p.returncode == 0 and "resumed from" in p.stdout, f"--resume after the kill continues on one process: "
      f"{[l for l in p.stdout.splitlines() if 'resumed' in l][:1]}") or print(p.stdout[-1500:], p.stderr[-1500:])
shutil.rmtree(w, ignore_errors=True)
finish()
