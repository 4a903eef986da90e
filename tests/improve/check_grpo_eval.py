#!/usr/bin/env python3
"""check_grpo_eval.py - `tunic grpo --eval-data E --eval-every N`: held-out accuracy logged as
eval/accuracy at steps 1, 2 (and the end); the last value equals a separate `tunic eval` of the
saved model with the same prompt rendering and length (the independent path)."""
import json, os, shutil, subprocess, sys
tunic = os.environ["TUNIC"]
work = sys.argv[1]
shutil.rmtree(work, ignore_errors=True); os.makedirs(work)
def run(args): return subprocess.run([tunic] + args, check=True, capture_output=True, text=True)
model = os.path.join(work, "m")
run(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", model, "--seed", "6"])
data, evald = os.path.join(work, "d.jsonl"), os.path.join(work, "e.jsonl")
with open(data, "w") as f:
    for i in range(8): f.write(json.dumps({"prompt": "%d" % i, "answer": str(i)}) + "\n")
with open(evald, "w") as f:   # a random model's first token is often a digit: answers 0-9 give some hits
    for i in range(40): f.write(json.dumps({"id": i, "prompt": "say %d" % i, "answer": str(i % 10)}) + "\n")
rd = os.path.join(work, "run")
p = run(["grpo", "--model", model, "--data", data, "--out", rd, "--steps", "2", "--batch-size", "2",
         "--num-generations", "2", "--max-tokens-to-generate", "16", "--max-prompt-length", "16", "--lr", "1e-3",
         "--reward", "answer:1", "--no-system-prompt", "--eval-data", evald, "--eval-every", "1", "--save-every", "0"])
m = [json.loads(l) for l in open(os.path.join(rd, "metrics.jsonl"))]
ev = [x for x in m if "eval/accuracy" in x]
assert [x["step"] for x in ev] == [x["step"] for x in m] and len(ev) == 2, m
assert "held-out accuracy" in p.stdout
out = os.path.join(work, "sep.jsonl")
run(["eval", "--model", os.path.join(rd, "model"), "--data", evald, "--out", out, "--no-system-prompt",
     "--max-new-tokens", "16", "--max-prompt-length", "16", "--quiet"])
acc = sum(json.loads(l)["correct"] for l in open(out)) / 40
assert abs(ev[-1]["eval/accuracy"] - acc) < 1e-12, (ev[-1], acc)
print("grpo --eval-every: eval/accuracy", [x["eval/accuracy"] for x in ev], "last equals a separate eval", acc)
