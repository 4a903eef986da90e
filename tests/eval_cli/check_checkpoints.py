#!/usr/bin/env python3
"""check_checkpoints.py - `tunic eval --checkpoints RUN`: a tiny SFT run with a checkpoint every
2 steps; every checkpoint is evaluated, curve.jsonl holds each step's accuracy, and each
checkpoint's results equal a separate `tunic eval --model RUN/checkpoints/step_N` (the
independent path); the report with the learning-curve plot is written (PNG when gnuplot is
installed); a run without checkpoints is a clear error."""
import json, os, shutil, subprocess, sys
tunic = os.environ["TUNIC"]
work = sys.argv[1]
shutil.rmtree(work, ignore_errors=True); os.makedirs(work)
def run(args):
    return subprocess.run([tunic] + args, check=True, capture_output=True, text=True)
model = os.path.join(work, "m")
run(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", model, "--seed", "4"])
data, evald = os.path.join(work, "d.jsonl"), os.path.join(work, "e.jsonl")
with open(data, "w") as f:
    for i in range(16):
        f.write(json.dumps({"prompt": "%d+1?" % i, "completion": "<answer>%d</answer>" % (i + 1)}) + "\n")
with open(evald, "w") as f:
    for i in range(6): f.write(json.dumps({"id": i, "prompt": "%d+1?" % i, "answer": str(i + 1)}) + "\n")
rd = os.path.join(work, "run")
run(["sft", "--model", model, "--data", data, "--out", rd, "--steps", "4", "--save-every", "2", "--keep-last", "0",
     "--batch-size", "4", "--max-seq-len", "64", "--lr", "3e-3"])
out = os.path.join(work, "ck")
p = run(["eval", "--checkpoints", rd, "--data", evald, "--out", out, "--max-new-tokens", "6", "--quiet"])
curve = [json.loads(l) for l in open(os.path.join(out, "curve.jsonl"))]
assert [c["step"] for c in curve] == [2, 4], curve
for c in curve:
    sep = os.path.join(work, "sep_%d.jsonl" % c["step"])
    run(["eval", "--model", os.path.join(rd, "checkpoints", "step_%d" % c["step"]), "--data", evald, "--out", sep,
         "--max-new-tokens", "6", "--quiet"])
    a = [(r["id"], r["completion"], r["correct"]) for r in map(json.loads, open(sep))]
    b = [(r["id"], r["completion"], r["correct"]) for r in map(json.loads, open(os.path.join(out, "step_%d.jsonl" % c["step"])))]
    assert a == b, (a, b)
    acc = sum(x[2] for x in a) / len(a)
    assert abs(c["eval/accuracy"] - acc) < 1e-12
assert os.path.exists(os.path.join(out, "report", "report.md"))
if shutil.which("gnuplot") or os.environ.get("TN_GNUPLOT"):
    assert os.path.exists(os.path.join(out, "report", "plots", "ck_accuracy.png")), os.listdir(os.path.join(out, "report", "plots"))
empty = os.path.join(work, "empty"); os.makedirs(empty)
p = subprocess.run([tunic, "eval", "--checkpoints", empty, "--data", evald, "--out", os.path.join(work, "x")],
                   capture_output=True, text=True)
assert p.returncode != 0 and "no checkpoints" in p.stderr, p.stderr
print("eval --checkpoints: 2 checkpoints evaluated, equal to separate evals; curve and report written")
