#!/usr/bin/python3
"""Issue 4: `tunic sft --config run.yaml` (keys = the flag names; '-' and '_' alike), flags
override the file, unknown keys and badly typed values are errors naming the file:line, the key
and the expected type, and the values actually used land in run_manifest.json ("config").
The effect of the file's values is also checked in what the run did (metrics.jsonl: number of
steps, constant learning rate, examples per step), not only in what it printed.
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, expect_error, finish, init_model, jsonl, ok_run, read_metrics, workdir

W = workdir("config")
MODEL = init_model(os.path.join(W, "m"), seed=4)
ENV = {"OMP_NUM_THREADS": "1"}
# every example has exactly 3 targets (2 completion bytes + EOS): target_tokens = 3 x examples per step
DATA = jsonl(os.path.join(W, "d.jsonl"), [{"prompt": f"p{i} " * (1 + i % 4), "completion": f"{i % 10}!"}
                                          for i in range(16)])


def yaml(name, text):
    p = os.path.join(W, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def manifest(out):
    with open(os.path.join(out, "run_manifest.json")) as f:
        return json.load(f)


# 1. values from the file, one overridden by a flag
out = os.path.join(W, "run1")
cfg = yaml("run.yaml", f"""# a run config
model: {MODEL}
data: {DATA}
out: {out}
steps: 3
batch-size: 2          # overridden by --batch-size 3 below
grad_accum: 2          # underscore spelling
lr: 0.002
schedule: constant
seed: 9
max-grad-norm: 0.5
""")
p = ok_run(["sft", "--config", cfg, "--batch-size", 3], "sft --config run.yaml --batch-size 3", env=ENV)
m = read_metrics(out)
check([r["step"] for r in m] == [1, 2, 3], f"steps: 3 from the file ran 3 steps ({[r['step'] for r in m]})")
check(all(abs(r["learning_rate"] - 0.002) < 1e-9 for r in m),
      f"lr 0.002 + schedule constant from the file: every step's lr is 0.002 ({[r['learning_rate'] for r in m]})")
check(all(r["target_tokens"] == 3 * 3 * 2 for r in m),
      f"--batch-size 3 (flag) x grad_accum 2 (file): 6 examples = 18 targets per step "
      f"({[r['target_tokens'] for r in m]})")
c = manifest(out).get("config", {})
want = {"batch-size": 3, "grad-accum": 2, "steps": 3, "lr": 0.002, "schedule": "constant", "seed": 9,
        "max-grad-norm": 0.5, "model": MODEL, "data": DATA, "out": out, "epochs": 1, "save-every": 0}
bad = {k: (c.get(k), v) for k, v in want.items() if not (c.get(k) == v or
                                                          (isinstance(v, float) and abs((c.get(k) or 0) - v) < 1e-7))}
check(not bad, f"run_manifest.json config holds the resolved values (file, flag and defaults) {bad}")
check(manifest(out).get("seed") == 9, "run_manifest.json seed is the file's 9")
check("--batch-size" in p.stdout and "run.yaml:" in p.stdout,
      "the printed configuration says where values came from (--batch-size, run.yaml:LINE)")

# 2. errors
bad_cfgs = [
    ("unknown key", f"model: {MODEL}\nbatchsize: 2\n", ["bad.yaml:2", "batchsize"]),
    ("unknown nested key", f"model: {MODEL}\nlora:\n  rank: 8\n", ["bad.yaml", "lora.rank"]),
    ("integer expected", f"model: {MODEL}\nbatch_size: two\n", ["bad.yaml:2", "batch_size", "integer"]),
    ("number expected", f"model: {MODEL}\nlr: fast\n", ["bad.yaml:2", "lr", "number"]),
    ("bool expected", f"model: {MODEL}\nresume: maybe\n", ["bad.yaml:2", "resume", "bool"]),
    ("YAML syntax", f"model: {MODEL}\n  x: : [\n", ["bad.yaml"]),
]
for label, text, must in bad_cfgs:
    cfgp = yaml("bad.yaml", text)
    expect_error(["sft", "--config", cfgp, "--data", DATA, "--out", os.path.join(W, "x")], f"config: {label}", must,
                 env=ENV)
    check(not os.path.exists(os.path.join(W, "x")), f"config: {label}: no run directory created")
expect_error(["sft", "--config", os.path.join(W, "absent.yaml")], "config file missing", ["absent.yaml"], env=ENV)
expect_error(["sft", "--model", MODEL, "--data", DATA, "--out", os.path.join(W, "x"), "--batch-size", "two"],
             "flag of the wrong type", ["batch-size", "two"], env=ENV)
expect_error(["sft", "--model", MODEL, "--data", DATA, "--out", os.path.join(W, "x"), "--bogus", 1],
             "unknown flag", ["bogus"], env=ENV)

shutil.rmtree(W)
finish()
