#!/usr/bin/python3
"""Issue 4: a NaN or infinite loss stops `tunic sft` with a message naming the step, a non-zero
exit, and the last good checkpoint kept as it was.

1. Weights poisoned with NaN / +inf (one element of model.norm.weight, written with an
   independent safetensors writer): refused when the model is loaded (issue 12: the message
   names model.safetensors, the tensor and NaN/Inf), exit 1, no checkpoint, no final model/,
   run_manifest.json not marked completed.
2. Divergence mid-run: --lr 1e38 (constant, no clipping) keeps step 1 finite and makes step 2's
   loss NaN; with --save-every 1 --keep-last 1 the step_1 checkpoint must survive, complete and
   byte-identical (sha256 of weights, optimizer state, trainer state) to the step_1 checkpoint
   of the same run stopped normally with --steps 1 (so the failed step wrote nothing into it);
   no step_2 appears; --resume reaches the same NaN and names step 2 again.
"""
import hashlib
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (check, copy_model, expect_error, finish, init_model, jsonl, ok_run, read_metrics, st_tensors,
                    st_write, workdir)

W = workdir("nan")
MODEL = init_model(os.path.join(W, "m"), seed=5)
ENV = {"OMP_NUM_THREADS": "1"}
DATA = jsonl(os.path.join(W, "d.jsonl"),
             [{"prompt": f"question {i}:" + " x" * (i % 5), "completion": f" answer {i * 7}"} for i in range(12)])


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest_status(out):
    try:
        with open(os.path.join(out, "run_manifest.json")) as f:
            return json.load(f).get("status")
    except FileNotFoundError:
        return None


def ckpts(out):
    d = os.path.join(out, "checkpoints")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


# 1. poisoned weights
for label, val in (("nan", float("nan")), ("inf", float("inf"))):
    pm = copy_model(MODEL, os.path.join(W, "poison-" + label))
    t = st_tensors(os.path.join(pm, "model.safetensors"))
    dt, shape, raw = t["model.norm.weight"]
    t["model.norm.weight"] = (dt, shape, struct.pack("<f", val) + raw[4:])
    st_write(os.path.join(pm, "model.safetensors"), t, {"format": "pt"})
    out = os.path.join(W, "run-" + label)
    p = expect_error(["sft", "--model", pm, "--data", DATA, "--out", out, "--steps", 4, "--save-every", 1],
                     f"weights with {label}", ["model.safetensors", "model.norm.weight", "NaN"], env=ENV)
    check(p.returncode == 1, f"weights with {label}: exit status 1 (got {p.returncode})")
    check(ckpts(out) == [], f"weights with {label}: no checkpoint written ({ckpts(out)})")
    check(not os.path.exists(os.path.join(out, "model")), f"weights with {label}: no final model/ written")
    check(manifest_status(out) != "completed", f"weights with {label}: manifest not marked completed")

# 2. divergence at step 2
args = ["sft", "--model", MODEL, "--data", DATA, "--batch-size", 4, "--lr", "1e38", "--schedule", "constant",
        "--max-grad-norm", 0, "--save-every", 1, "--keep-last", 1, "--seed", 2]
good = os.path.join(W, "good")
ok_run(args + ["--out", good, "--steps", 1], "the same run stopped after step 1", env=ENV)
out = os.path.join(W, "diverge")
p = expect_error(args + ["--out", out, "--steps", 6], "lr 1e38: NaN at step 2", ["step 2", "NaN"], env=ENV)
check(p.returncode == 1, f"lr 1e38: exit status 1 (got {p.returncode})")
check(ckpts(out) == ["step_1"], f"lr 1e38: only the last good checkpoint step_1 is there ({ckpts(out)})")
m = read_metrics(out)
check([r["step"] for r in m] == [1], f"lr 1e38: metrics.jsonl holds step 1 only ({[r['step'] for r in m]})")
for f in ("model.safetensors", "optimizer.safetensors", "trainer_state.json"):
    a, b = os.path.join(out, "checkpoints", "step_1", f), os.path.join(good, "checkpoints", "step_1", f)
    check(os.path.exists(a) and sha(a) == sha(b), f"lr 1e38: step_1/{f} identical to the normally finished run's")
check(not os.path.exists(os.path.join(out, "model")), "lr 1e38: no final model/ written")
check(manifest_status(out) != "completed", "lr 1e38: manifest not marked completed")
p = expect_error(args + ["--out", out, "--steps", 6, "--resume"], "lr 1e38 --resume: NaN at step 2 again",
                 ["step 2"], env=ENV)
check(ckpts(out) == ["step_1"], f"lr 1e38 --resume: step_1 still the only checkpoint ({ckpts(out)})")
a, b = os.path.join(out, "checkpoints", "step_1", "model.safetensors"), os.path.join(good, "checkpoints", "step_1",
                                                                                      "model.safetensors")
check(sha(a) == sha(b), "lr 1e38 --resume: step_1 weights still untouched")

shutil.rmtree(W)
finish()
