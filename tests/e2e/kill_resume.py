#!/usr/bin/python3
"""Issue 12: SIGKILL at random points of sft, dpo, distill and grpo, each followed by --resume,
ends with final weights byte-identical to an uninterrupted run.

For each trainer (tiny runs of tests/e2e/trainers.py: 6 steps, a checkpoint every step, keep 2):
an uninterrupted reference run, then TN_KILLS (default 3; `make test-long`: 20) kills: the run is
started with --resume (also the first time: --resume on a new directory starts from step 0), and
SIGKILLed after a delay drawn uniformly from (0, the reference run's duration) with a seeded
generator, so kills land in the start-up, in steps, in checkpoint writes and in the deletion of
old checkpoints. A run that finishes before its kill is started over in a new directory (its
kill does not count). After the last kill, --resume runs to the end. Required: every killed run
died of SIGKILL, the final weights are byte-identical (sha256) to the reference's and
metrics.jsonl has each step once with the reference's values (timing keys aside).
Environment: TN_KILLS (kills per trainer), TN_KILL_SEED (the delays' seed, default 1).
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import TUNIC, check, finish, workdir  # noqa: E402
from trainers import ENV1, run_clean as run, NAMES, Trainers, sha  # noqa: E402

KILLS = int(os.environ.get("TN_KILLS", "3"))
rng = random.Random(int(os.environ.get("TN_KILL_SEED", "1")))
W = workdir("kill")
T = Trainers(W)
ENV = dict(os.environ, **ENV1)
STEPS = 6


def metrics(out):
    rows = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl")) if x.strip()]
    return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "generate_s"} for r in rows]


for name in NAMES:
    ref = os.path.join(W, name + "-ref")
    t0 = time.time()
    p = run(T.args(name, ref, steps=STEPS), env=ENV1, timeout=300)
    dur = time.time() - t0
    if not check(p.returncode == 0, f"{name}: reference run ({dur:.2f}s)"):
        print(p.stderr[-2000:])
        continue
    kills, restarts, attempt, bad = 0, 0, 0, []
    out = os.path.join(W, f"{name}-k{restarts}")
    while kills < KILLS and attempt < 10 * KILLS:
        attempt += 1
        delay = rng.uniform(0, dur)
        proc = subprocess.Popen([TUNIC] + [str(a) for a in T.args(name, out, steps=STEPS, extra=["--resume"])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        err = proc.communicate()[1].decode(errors="replace")
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        elif proc.returncode == 0:  # finished before its kill: start over
            restarts += 1
            out = os.path.join(W, f"{name}-k{restarts}")
        else:
            bad.append(f"attempt {attempt} exit {proc.returncode}: {err.strip()[-300:]}")
            break
    check(not bad and kills == KILLS, f"{name}: {kills} kills at random points ({restarts} runs finished before "
          f"their kill){'; ' + bad[0] if bad else ''}")
    p = run(T.args(name, out, steps=STEPS, extra=["--resume"]), env=ENV1, timeout=300)
    if not check(p.returncode == 0, f"{name}: the last --resume completes"):
        print(p.stderr[-2000:])
        continue
    check(sha(T.weights(name, out)) == sha(T.weights(name, ref)),
          f"{name}: final weights byte-identical to the uninterrupted run")
    m, mr = metrics(out), metrics(ref)
    check([x["step"] for x in m] == list(range(1, STEPS + 1)) and m == mr,
          f"{name}: metrics.jsonl has steps 1..{STEPS} once with the reference's values")
    shutil.rmtree(out, ignore_errors=True)

finish()
