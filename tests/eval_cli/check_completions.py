#!/usr/bin/env python3
"""check_completions.py - `tunic eval --completions`: random completions with several samples
per example; the results file's correct/method fields, the summary's accuracy and the
unbiased pass@k (per example and mean) recomputed here with math.comb (1 - C(n-c,k)/C(n,k)),
tolerance 1e-12; bad input gives a clear error naming the file and line."""
import json, math, os, random, subprocess, sys

tunic = os.environ["TUNIC"]
work = sys.argv[1]
os.makedirs(work, exist_ok=True)
rng = random.Random(7)
rows, want = [], {}
N = 12
for i in range(40):
    ref = rng.randint(1, 99)
    comps, c = [], 0
    for j in range(N):
        kind = rng.randrange(4)
        ok = rng.random() < 0.3
        v = ref if ok else ref + rng.randint(1, 5)
        comps.append(["<reasoning>r</reasoning><answer>%d</answer>" % v, "so \\boxed{%d}" % v,
                      "step 3\n#### %d" % v, "I think %d" % v][kind])
        c += ok
    rows.append({"id": "q%d" % i, "completion": comps, "answer": str(ref), "category": "even" if i % 2 == 0 else "odd"})
    want["q%d" % i] = c
inp = os.path.join(work, "c.jsonl")
out = os.path.join(work, "r.jsonl")
with open(inp, "w") as f:
    for r in rows: f.write(json.dumps(r) + "\n")
subprocess.run([tunic, "eval", "--completions", inp, "--out", out, "--force"], check=True, stdout=subprocess.DEVNULL)
res = [json.loads(l) for l in open(out)]
summ = json.load(open(os.path.join(work, "r.summary.json")))
assert len(res) == 40
def pk(n, c, k): return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)
ks = [1, 2, 4, 8, 12]
for r in res:
    c = want[r["id"]]
    assert r["num_correct"] == c, (r["id"], r["num_correct"], c)
    assert [s["method"] for s in r["samples"]][:1] == [r["method"]]
    for k in ks:
        assert abs(r["pass_at_k"][str(k)] - pk(N, c, k)) < 1e-12, (r["id"], k)
for k in ks:
    m = sum(pk(N, want[i], k) for i in want) / len(want)
    assert abs(summ["pass_at_k"][str(k)] - m) < 1e-12, (k, summ["pass_at_k"][str(k)], m)
acc = sum(want.values()) / (40 * N)
assert abs(summ["accuracy"] - acc) < 1e-12
methods = {s["method"] for r in res for s in r["samples"]}
assert methods == {"tag", "boxed", "hashes", "last_number"}, methods
assert set(summ["categories"]) == {"even", "odd"} and "gsm8k" in summ
# errors name the file and line
bad = os.path.join(work, "bad.jsonl")
open(bad, "w").write('{"id":1,"completion":"4","answer":"4"}\n{"id":2,"completion":"5","answer":[5]}\n')
p = subprocess.run([tunic, "eval", "--completions", bad, "--out", os.path.join(work, "b.jsonl"), "--force"],
                   capture_output=True, text=True)
assert p.returncode != 0 and "bad.jsonl:2" in p.stderr and "reference" in p.stderr, p.stderr
print("eval --completions: 40 examples x 12 samples, pass@k for k in", ks, "match math.comb; errors named")
