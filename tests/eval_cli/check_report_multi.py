#!/usr/bin/env python3
"""check_report_multi.py - `tunic report --evals a,b,c`: three hand-made results files; the
report.json rows (accuracy, 95% Wilson interval, delta and exact McNemar p against the first
and the previous, paired by id) recomputed here with closed forms (math.comb), tol 1e-9."""
import json, math, os, random, shutil, subprocess, sys
tunic = os.environ["TUNIC"]
work = sys.argv[1]
shutil.rmtree(work, ignore_errors=True); os.makedirs(work)
rng = random.Random(3)
n = 60
files, corr = [], []
for e, p in enumerate([0.3, 0.5, 0.65]):
    c = {("x%d" % i): rng.random() < p for i in range(n)}
    path = os.path.join(work, "e%d.jsonl" % e)
    with open(path, "w") as f:
        for i in c: f.write(json.dumps({"id": i, "correct": c[i]}) + "\n")
    files.append(path); corr.append(c)
out = os.path.join(work, "rep")
subprocess.run([tunic, "report", "--evals", ",".join(files), "--labels", "start,r1,r2", "--out", out], check=True,
               stdout=subprocess.DEVNULL)
rows = json.load(open(os.path.join(out, "report.json")))["evals"]
def wilson(k, n, z=1.959963984540054):
    p = k / n; d = 1 + z * z / n; c = (p + z * z / (2 * n)) / d; h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h
def mcn(a, b):
    B = sum(1 for i in a if a[i] and not b[i]); C = sum(1 for i in a if not a[i] and b[i])
    if B + C == 0: return 1.0
    return min(1.0, 2 * sum(math.comb(B + C, i) for i in range(min(B, C) + 1)) / 2 ** (B + C))
for i, r in enumerate(rows):
    k = sum(corr[i].values())
    assert r["label"] == ["start", "r1", "r2"][i] and r["n"] == n
    assert abs(r["accuracy"] - k / n) < 1e-12
    lo, hi = wilson(k, n)
    assert abs(r["wilson_lo"] - lo) < 1e-9 and abs(r["wilson_hi"] - hi) < 1e-9, (r, lo, hi)
    if i:
        assert abs(r["vs_first"]["mcnemar_p"] - mcn(corr[0], corr[i])) < 1e-9
        assert abs(r["vs_first"]["delta"] - (k - sum(corr[0].values())) / n) < 1e-12
    if i > 1:
        assert abs(r["vs_previous"]["mcnemar_p"] - mcn(corr[i - 1], corr[i])) < 1e-9
md = open(os.path.join(out, "report.md")).read()
assert "| r2 | 60 |" in md and "# start -> r2" in md
p = subprocess.run([tunic, "report", "--evals", files[0], "--out", out], capture_output=True, text=True)
assert p.returncode != 0 and "at least two" in p.stderr, p.stderr
print("report --evals: 3 evals, Wilson and McNemar match the closed forms")
