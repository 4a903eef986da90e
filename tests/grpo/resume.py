#!/usr/bin/python3
"""Issue 5: `tunic grpo` killed after a checkpoint and resumed with --resume ends with final weights
byte-identical to an uninterrupted run (GRPO's data order and sampling seeds are functions of the
step, so nothing but the checkpoint is needed).

Setup: tiny llama, 9 training prompts and 6 steps of 2 prompts (the prompt order crosses an epoch
boundary), 4 generations, --save-every 2, a --reward-cmd process (non-zero advantages), 1 thread.
Scenarios, each against its own uninterrupted reference run:
  - full fine-tuning (beta 0.04, a frozen reference copy), SIGKILL as soon as checkpoints/step_2
    appears (the run is inside step 3), then --resume;
  - LoRA (rank 4, the reference is the adapter switched off), SIGKILL as soon as step_4 appears.
Required: the resumed run says it resumed from the checkpoint, the final weights (model/ or
adapter/ safetensors) are byte-identical (sha256) to the reference, and metrics.jsonl has steps
1..6 exactly once with the reference's values (every key but the timing ones).
"""
import hashlib
import json
import os
import signal
import subprocess
import time

from common_grpo import (REWARD_CMD, TUNIC, check, finish, init_model, metrics_without_timing, ok_run, read_metrics,
                         workdir)

W = workdir("grporesume")
MODEL = init_model(os.path.join(W, "m"), seed=9)
DD = os.path.join(W, "data")
ok_run(["data", "math", "--profile", "easy", "--n", 10, "--seed", 2, "--out", DD], "tunic data math (10 problems)")
DATA = os.path.join(DD, "train_grpo.jsonl")
ntrain = sum(1 for x in open(DATA) if x.strip())
check(ntrain < 12, f"{ntrain} training prompts < 6 steps x 2 prompts (the order crosses an epoch)")
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")


def args(out, extra):
    return ["grpo", "--model", MODEL, "--data", DATA, "--out", out, "--steps", 6, "--batch-size", 2,
            "--num-generations", 4, "--max-tokens-to-generate", 20, "--lr", "1e-3", "--save-every", 2,
            "--keep-last", 2, "--seed", 5, "--reward-cmd", REWARD_CMD, *extra]


def sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def scenario(label, extra, kill_at, weights):
    ref = os.path.join(W, label + "-ref")
    ok_run(args(ref, extra), f"{label}: uninterrupted reference run", env={"OMP_NUM_THREADS": "1"}, timeout=300)
    out = os.path.join(W, label)
    p = subprocess.Popen([TUNIC] + [str(a) for a in args(out, extra)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=ENV)
    marker = os.path.join(out, "checkpoints", f"step_{kill_at}")
    t0 = time.time()
    while p.poll() is None and not os.path.isdir(marker) and time.time() - t0 < 120:
        time.sleep(0.005)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    rc = p.wait()
    done = read_metrics(out) if os.path.exists(os.path.join(out, "metrics.jsonl")) else []
    check(rc == -signal.SIGKILL and len(done) < 6,
          f"{label}: killed by SIGKILL after checkpoint step_{kill_at} appeared ({len(done)} steps logged)")
    r = ok_run(args(out, extra) + ["--resume"], f"{label}: --resume", env={"OMP_NUM_THREADS": "1"}, timeout=300)
    check(f"(step {kill_at})" in r.stdout, f"{label}: resumed from step {kill_at} ("
          + next((x for x in r.stdout.splitlines() if x.startswith("resumed")), "no 'resumed' line") + ")")
    check(sha(os.path.join(out, weights)) == sha(os.path.join(ref, weights)),
          f"{label}: {weights} byte-identical to the uninterrupted run")
    m, mr = metrics_without_timing(read_metrics(out)), metrics_without_timing(read_metrics(ref))
    check([x["step"] for x in m] == list(range(1, 7)), f"{label}: metrics.jsonl has steps 1..6 once ({[x['step'] for x in m]})")
    check(m == mr, f"{label}: every logged value equals the reference's")
    with open(os.path.join(out, "run_manifest.json")) as f:
        check(json.load(f).get("status") == "completed", f"{label}: manifest status completed")


scenario("full", ["--beta", "0.04"], 2, os.path.join("model", "model.safetensors"))
scenario("lora", ["--lora-rank", 4, "--beta", "0.04"], 4, os.path.join("adapter", "adapter_model.safetensors"))
finish()
