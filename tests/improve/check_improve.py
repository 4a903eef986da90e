#!/usr/bin/env python3
"""check_improve.py - `tunic improve` end to end on a tiny random model (byte tokenizer):
- run A straight through: per round samples/judged/dataset/manifest/model_path/eval files; the
  manifest's counts add up (kept + dropped by reason = samples) and its sha256 is the
  dataset's (hashlib); the dataset rows are the kept samples; report.md/report.json list
  every round; the whole-loop McNemar p recomputed here (exact binomial) from the files;
- run B killed with SIGKILL at growing delays (inside generation, judging, SFT, eval) and
  resumed each time: it ends with the same datasets (sha256), the same eval results and
  the same report.json as run A;
- a different configuration on an existing run is refused."""
import hashlib, json, math, os, shutil, signal, subprocess, sys, time

tunic = os.environ["TUNIC"]
work = sys.argv[1]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
def run(args, **kw):
    return subprocess.run([tunic] + args, check=True, capture_output=True, text=True, **kw)
model = os.path.join(work, "model")
run(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", model, "--seed", "5"])
prompts, evald = os.path.join(work, "p.jsonl"), os.path.join(work, "e.jsonl")
with open(prompts, "w") as f:
    for i in range(6): f.write(json.dumps({"id": "p%d" % i, "prompt": "%d+%d?" % (i, i), "answer": str(2 * i)}) + "\n")
with open(evald, "w") as f:
    for i in range(10): f.write(json.dumps({"id": "e%d" % i, "prompt": "%d*2?" % i, "answer": str(2 * i)}) + "\n")
# keep everything a random model writes (threshold below any score, any format): SFT runs each round
common = ["--model", model, "--prompts", prompts, "--eval-data", evald, "--rounds", "2", "--samples", "3",
          "--max-new-tokens", "12", "--temperature", "1.0", "--judge", "answer:1", "--threshold", "-1",
          "--any-format", "--keep-truncated", "--max-per-prompt", "2", "--steps", "3", "--batch-size", "4", "--max-seq-len", "64",
          "--lr", "1e-3", "--eval-max-new-tokens", "8", "--no-early-stop", "--seed", "11"]
A = os.path.join(work, "A")
p = run(["improve", "--out", A] + common)
assert "held-out accuracy: start" in p.stdout.strip().splitlines()[-1], p.stdout
for k in (1, 2):
    d = os.path.join(A, "round_%d" % k)
    man = json.load(open(os.path.join(d, "manifest.json")))
    assert man["source_round"] == k - 1 and man["version"] == k
    assert man["kept"] + sum(man["dropped"].values()) == man["samples"] == 18, man
    assert man["dropped"]["per_prompt_cap"] >= 6, man        # 3 samples, at most 2 kept per prompt
    ds = open(os.path.join(d, "dataset.jsonl"), "rb").read()
    assert hashlib.sha256(ds).hexdigest() == man["sha256"]
    judged = [json.loads(l) for l in open(os.path.join(d, "judged.jsonl"))]
    kept = [j["completion"] for j in judged if j["kept"]]
    rows = [json.loads(l) for l in ds.decode().splitlines()]
    assert [r["messages"][-1]["content"] for r in rows] == kept and len(kept) == man["kept"]
    assert all(j["judge"]["type"] == "reward" for j in judged)
    assert all(("drop_reason" in j) != j["kept"] for j in judged)
    assert os.path.exists(open(os.path.join(d, "model_path")).read().strip())
rep = json.load(open(os.path.join(A, "report.json")))
assert [r["label"] for r in rep["rounds"]] == ["start", "round 1", "round 2"], rep
def load(path): return {str(json.loads(l)["id"]): json.loads(l)["correct"] for l in open(path)}
e0, e2 = load(os.path.join(A, "round_0/eval.jsonl")), load(os.path.join(A, "round_2/eval.jsonl"))
b = sum(1 for i in e0 if e0[i] and not e2[i]); c = sum(1 for i in e0 if not e0[i] and e2[i])
pm = 1.0 if b + c == 0 else min(1.0, 2 * sum(math.comb(b + c, i) for i in range(min(b, c) + 1)) / 2 ** (b + c))
assert abs(rep["rounds"][2]["vs_first"]["mcnemar_p"] - pm) < 1e-12, (rep, pm)
assert abs(rep["rounds"][2]["accuracy"] - sum(e2.values()) / len(e2)) < 1e-12
# run B: killed again and again, resumed each time
B = os.path.join(work, "B")
delay, kills = 0.15, 0
while True:
    pr = subprocess.Popen([tunic, "improve", "--out", B] + common, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rc = pr.wait(timeout=delay)
        assert rc == 0, rc
        break
    except subprocess.TimeoutExpired:
        pr.send_signal(signal.SIGKILL); pr.wait(); kills += 1
        delay *= 1.5
    assert kills < 40
for k in (1, 2):
    for f in ("dataset.jsonl", "judged.jsonl", "eval.jsonl", "samples.jsonl"):
        a = open(os.path.join(A, "round_%d" % k, f), "rb").read()
        bb = open(os.path.join(B, "round_%d" % k, f), "rb").read()
        assert a == bb, (k, f)
rb = json.load(open(os.path.join(B, "report.json")))
for r in rep["rounds"] + rb["rounds"]: r.pop("path")
assert rep["rounds"] == rb["rounds"], (rep, rb)
# another configuration on the same run directory is refused
p2 = subprocess.run([tunic, "improve", "--out", A] + common[:-1] + ["12"], capture_output=True, text=True)
assert p2.returncode != 0 and "another configuration" in p2.stderr, p2.stderr
print("improve: 2 rounds; run B killed %d times and resumed: identical datasets, evals and report" % kills)
# LoRA rounds: the adapter is merged into the round's model; the same as `tunic merge` of it
L = os.path.join(work, "L")
run(["improve", "--out", L] + common[:common.index("--rounds")] + ["--rounds", "1", "--samples", "2", "--max-new-tokens", "8",
     "--judge", "answer:1", "--threshold", "-1", "--any-format", "--keep-truncated", "--steps", "2", "--batch-size", "2",
     "--max-seq-len", "64", "--lr", "5e-2", "--lora-rank", "4", "--eval-max-new-tokens", "6", "--seed", "3"])
merged = os.path.join(work, "Lmerged")
run(["merge", "--model", model, "--adapter", os.path.join(L, "round_1", "sft", "adapter"), "--out", merged])
assert open(os.path.join(L, "round_1", "model_path")).read().strip() == os.path.join(L, "round_1", "model")
def evalc(m):
    o = os.path.join(work, "ev_%s.jsonl" % os.path.basename(m))
    run(["eval", "--model", m, "--data", evald, "--out", o, "--max-new-tokens", "12", "--no-system-prompt", "--quiet", "--force"])
    return [json.loads(l)["completion"] for l in open(o)]
a, b, base = evalc(os.path.join(L, "round_1", "model")), evalc(merged), evalc(model)
assert a == b, (a, b)
assert a != base, "the merged LoRA round changed nothing"
print("LoRA round: merged model = tunic merge of its adapter, and differs from the start model")
