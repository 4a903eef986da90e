#!/usr/bin/python3
"""check_report.py - `tunic report` on hand-written results files with known flips.

Expected values are computed here, independently: accuracies and deltas over the paired ids,
the flipped id lists, the exact McNemar p-value (the binomial sum done with math.comb and
fractions), Wilson 95% intervals (closed form), a sanity band for the paired bootstrap interval
(normal approximation), per-category deltas. Plots: PNG signature, size > 0, IHDR dimensions,
and the plotted data files hold exactly the metrics values written here. Errors: missing or
invalid inputs, gnuplot missing or failing.
Usage: check_report.py WORKDIR   (env TUNIC = the tunic binary)
"""
import json, math, os, shutil, struct, subprocess, sys
from fractions import Fraction

TUNIC = os.environ["TUNIC"]
W = sys.argv[1]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def run(args, ok=True, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([TUNIC] + args, capture_output=True, text=True, env=e)
    if ok and p.returncode != 0:
        print(p.stdout, p.stderr)
        raise SystemExit(f"tunic {' '.join(args)} failed with {p.returncode}")
    return p


shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)

# ---- hand-written results: 40 paired examples in 3 categories + one unpaired on each side
cats = ["arith", "ages", "speed"]
before, after = [], []
b_ok = [(i * 7) % 10 < 4 for i in range(40)]                  # 16 correct
a_ok = [(i * 7) % 10 < 6 or i in (3, 9) for i in range(40)]   # more correct, some regressions below
for i in (1, 12, 25):                                         # force a few right -> wrong
    b_ok[i], a_ok[i] = True, False
for i in range(40):
    rid = f"ex-{i:03d}" if i % 5 else i                       # some numeric ids
    cat = cats[i % 3]
    exp = str(10 + i)
    for lst, ok, tag in ((before, b_ok[i], "B"), (after, a_ok[i], "A")):
        ext = exp if ok else str(int(exp) + 1)
        lst.append({"id": rid, "category": cat, "expected_answer": exp, "extracted": ext, "correct": ok,
                    "partial": ok, "format_ok": ok or i % 2 == 0, "error": "correct" if ok else "wrong_number",
                    "completion": f"<reasoning>{tag} work for {i} `x` | y</reasoning>\n<answer>{ext}</answer>"})
before[2]["completion"] = "\n" * 50                         # ex-002 (improved): whitespace only
after[5]["completion"] = "".join(f"line {k}\n\n\n" for k in range(30))  # id 5 (improved): long
before.append({"id": "only-before", "correct": True, "expected_answer": "1", "extracted": "1"})
after.append({"id": "only-after", "correct": False, "expected_answer": "1", "extracted": "2"})
bpath, apath = os.path.join(W, "before.jsonl"), os.path.join(W, "after.jsonl")
for path, lst in ((bpath, before), (apath, after)):
    with open(path, "w") as f:
        for r in lst:
            f.write(json.dumps(r) + "\n")

# ---- independent expectations
n = 40
cb, ca = sum(b_ok), sum(a_ok)
improved = [str(before[i]["id"]) for i in range(n) if not b_ok[i] and a_ok[i]]
regressed = [str(before[i]["id"]) for i in range(n) if b_ok[i] and not a_ok[i]]
b, c = len(regressed), len(improved)
m = min(b, c)
p_exact = float(min(Fraction(1), 2 * sum(Fraction(math.comb(b + c, k), 2 ** (b + c)) for k in range(m + 1))))


def wilson(k, n, z=1.959963984540054):
    p = k / n
    den = 1 + z * z / n
    center = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, center - half), min(1.0, center + half)


print(f"expected: before {cb}/{n}, after {ca}/{n}, b={b}, c={c}, McNemar p={p_exact:.6g}")
check(b > 0 and c > 0, "test data must have flips both ways")

# ---- metrics: a GRPO-like run (with a missing key on some lines, a null) and an SFT run
grpo_dir, sft_dir = os.path.join(W, "runs", "grpo"), os.path.join(W, "runs", "sft")
os.makedirs(grpo_dir)
os.makedirs(sft_dir)
gm = []
for s in range(1, 61):  # 60 steps: the plots draw a trailing mean of 3
    row = {"step": s, "loss": 1.0 / s, "reward/total/mean": 0.1 * s, "reward/answer/mean": 0.05 * s,
           "kl": 0.001 * s * s, "accuracy": min(1.0, 0.08 * s), "learning_rate": 1e-3, "elapsed_s": 0.5 * s}
    if s % 4 == 0:
        del row["kl"]
    if s == 6:
        row["loss"] = None
    gm.append(row)
with open(os.path.join(grpo_dir, "metrics.jsonl"), "w") as f:
    for row in gm:
        f.write(json.dumps(row) + "\n")
with open(os.path.join(sft_dir, "metrics.jsonl"), "w") as f:
    for s in range(1, 6):
        f.write(json.dumps({"step": s, "loss": 3.0 - 0.4 * s, "eval_loss": 3.1 - 0.3 * s, "grad_norm": 1.0}) + "\n")

out = os.path.join(W, "rep")
p = run(["report", "--before", bpath, "--after", apath, "--metrics", os.path.join(sft_dir, "metrics.jsonl"),
         "--metrics", os.path.join(grpo_dir, "metrics.jsonl"), "--out", out, "--max-flips", "50"])
print(p.stdout)
rj = json.load(open(os.path.join(out, "report.json")))
md = open(os.path.join(out, "report.md")).read()

check(rj["n_paired"] == n and rj["only_before"] == 1 and rj["only_after"] == 1, f"pairing {rj['n_paired']}")
check(rj["correct_before"] == cb and rj["correct_after"] == ca, "correct counts")
check(abs(rj["accuracy_before"] - cb / n) < 1e-12 and abs(rj["accuracy_after"] - ca / n) < 1e-12, "accuracies")
check(abs(rj["delta"] - (ca - cb) / n) < 1e-12, f"delta {rj['delta']}")
check(rj["improved_ids"] == improved, f"improved ids {rj['improved_ids']} vs {improved}")
check(rj["regressed_ids"] == regressed, f"regressed ids {rj['regressed_ids']} vs {regressed}")
check(rj["improved"] == c and rj["regressed"] == b, "flip counts")
check(abs(rj["mcnemar_p"] - p_exact) <= 1e-9 * max(p_exact, 1e-300), f"McNemar p {rj['mcnemar_p']} vs {p_exact}")
for key, k in (("wilson_before", cb), ("wilson_after", ca)):
    lo, hi = wilson(k, n)
    check(abs(rj[key][0] - lo) < 1e-12 and abs(rj[key][1] - hi) < 1e-12, f"{key} {rj[key]} vs {(lo, hi)}")
# paired bootstrap: percentile interval of the mean difference; normal approximation as a band
d = [int(a_ok[i]) - int(b_ok[i]) for i in range(n)]
mean = sum(d) / n
sd = math.sqrt(sum((x - mean) ** 2 for x in d) / n / n)
lo, hi = rj["bootstrap_delta"]
check(lo <= mean <= hi, f"bootstrap interval {lo, hi} excludes the delta {mean}")
check(abs((hi - lo) - 2 * 1.96 * sd) < 0.3 * 2 * 1.96 * sd, f"bootstrap width {hi - lo} vs normal {2 * 1.96 * sd}")
for cat in cats:
    idx = [i for i in range(n) if cats[i % 3] == cat]
    eb = sum(b_ok[i] for i in idx) / len(idx)
    ea = sum(a_ok[i] for i in idx) / len(idx)
    got = rj["categories"].get(cat, {})
    check(got.get("n") == len(idx) and abs(got.get("delta", 9) - (ea - eb)) < 1e-12, f"category {cat}: {got}")
    check(f"| {cat} | {len(idx)} | {100 * eb:.2f}% | {100 * ea:.2f}% | {100 * (ea - eb):+.2f} pp |" in md,
          f"report.md lacks the row of category {cat}")
# report.md: numbers, every flipped id, excerpts, plots
check(f"p = {p_exact:.4g}" in md, f"report.md lacks 'p = {p_exact:.4g}'")
check(f"{100 * cb / n:.2f}% -> {100 * ca / n:.2f}%" in md, "report.md lacks the accuracy line")
for rid in improved + regressed:
    check(f"**{rid}**" in md, f"report.md lacks the excerpt of {rid}")
    check(f"| {rid} |" in md, f"report.md lacks the table row of {rid}")
check("B work for 1 'x' | y</reasoning>" in md and "A work for 1 'x' | y</reasoning>" in md,
      "report.md lacks before/after excerpts of a regressed example (backticks made safe)")
check("(only whitespace: 50 bytes)" in md, "whitespace-only completion not described")
ex5 = md.split("**5** (speed)")[1].split("**")[0] if "**5** (speed)" in md else ""
check("line 0\n  \n  line 1" in ex5 and "[...]" in ex5 and "line 11" not in ex5,
      "long completion: blank runs not collapsed or not cut at 12 lines")
check("only-before" not in md.split("## Flipped examples")[1], "an unpaired id is listed as flipped")

want_plots = ["plots/sft_loss.png", "plots/grpo_reward.png", "plots/grpo_accuracy.png", "plots/grpo_kl.png",
              "plots/grpo_loss.png"]
check(sorted(rj["plots"]) == sorted(want_plots), f"plots {rj['plots']}")
for rel in want_plots:
    path = os.path.join(out, rel)
    check(os.path.exists(path) and os.path.getsize(path) > 0, f"{rel} missing or empty")
    if not os.path.exists(path):
        continue
    data = open(path, "rb").read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", f"{rel}: not a PNG signature")
    check(data[12:16] == b"IHDR", f"{rel}: no IHDR chunk")
    wpx, hpx = struct.unpack(">II", data[16:24])
    check((wpx, hpx) == (900, 500), f"{rel}: {wpx}x{hpx}")
    check(f"]({rel})" in md, f"report.md does not embed {rel}")


def dat_blocks(path):
    blocks, cur, name = {}, [], None
    for line in open(path).read().split("\n"):
        if line.startswith("# "):
            name, cur = line[2:], []
            blocks[name] = cur
        elif line.strip():
            x, y, mean = line.split()
            cur.append((float(x), float(y), float(mean)))
    return blocks


def trailing_mean_ok(rows):
    """column 3 = mean of the last w values of column 2, w = n // 20 from 40 points (else 1)"""
    w = len(rows) // 20 if len(rows) >= 40 else 1
    ys = [r[1] for r in rows]
    return all(abs(r[2] - sum(ys[max(0, k - w + 1):k + 1]) / min(k + 1, w)) <= 1e-9 * max(1, abs(r[2]))
               for k, r in enumerate(rows))


# the plotted data are the metrics values: per key, (step, value) where the value is a number
groups = {"reward": ["reward/total/mean", "reward/answer/mean"], "accuracy": ["accuracy"], "kl": ["kl"], "loss": ["loss"]}
for g, keys in groups.items():
    blocks = dat_blocks(os.path.join(out, "plots", f"grpo_{g}.dat"))
    check(sorted(blocks) == sorted(keys), f"grpo_{g}.dat keys {list(blocks)}")
    for k in keys:
        want = [(r["step"], r[k]) for r in gm if isinstance(r.get(k), (int, float))]
        got = blocks.get(k, [])
        check(len(got) == len(want) and all(abs(a[0] - b[0]) < 1e-12 and abs(a[1] - b[1]) < 1e-12 * max(1, abs(b[1]))
                                            for a, b in zip(got, want)), f"grpo_{g}.dat {k}: {got} vs {want}")
        check(trailing_mean_ok(got), f"grpo_{g}.dat {k}: the third column is the trailing mean")
blocks = dat_blocks(os.path.join(out, "plots", "sft_loss.dat"))
check(sorted(blocks) == ["eval_loss", "loss"], f"sft_loss.dat keys {list(blocks)}")
check("| learning_rate | 60 |" in md, "report.md lacks the learning_rate summary row")


# ---- errors
def expect_error(args, needle, what, env=None):
    p = run(args, ok=False, env=env)
    check(p.returncode != 0, f"{what}: exit status 0")
    check(needle in p.stderr, f"{what}: stderr lacks '{needle}': {p.stderr.strip()}")


o2 = os.path.join(W, "rep2")
expect_error(["report", "--before", os.path.join(W, "nope.jsonl"), "--after", apath, "--out", o2], "nope.jsonl",
             "missing before file")
bad = os.path.join(W, "bad.jsonl")
with open(bad, "w") as f:
    f.write(json.dumps({"id": "a", "correct": True}) + "\n" + json.dumps({"id": "b"}) + "\n")
expect_error(["report", "--before", bpath, "--after", bad, "--out", o2], "bad.jsonl:2", "line without correct")
with open(bad, "w") as f:
    f.write(json.dumps({"id": "zz", "correct": True}) + "\n")
expect_error(["report", "--before", bpath, "--after", bad, "--out", o2], "no example id in common", "no common ids")
badm = os.path.join(W, "badm.jsonl")
with open(badm, "w") as f:
    f.write('{"step": 1, "loss": 1}\n[1, 2]\n{"step": 3, "loss": 0.5}\n')
expect_error(["report", "--before", bpath, "--after", apath, "--metrics", badm, "--out", o2], "badm.jsonl:2",
             "bad metrics line")
gm_path = os.path.join(grpo_dir, "metrics.jsonl")
expect_error(["report", "--before", bpath, "--after", apath, "--metrics", gm_path, "--out", o2], "gnuplot-nox",
             "gnuplot missing", env={"TN_GNUPLOT": os.path.join(W, "no", "gnuplot")})
expect_error(["report", "--before", bpath, "--after", apath, "--metrics", gm_path, "--out", o2], "failed",
             "gnuplot failing", env={"TN_GNUPLOT": "false"})
check(not os.path.exists(os.path.join(o2, "report.md")), "a failed report left report.md")
o3 = os.path.join(W, "rep3")
p = run(["report", "--before", bpath, "--after", apath, "--metrics", gm_path, "--no-plots", "--out", o3],
        env={"TN_GNUPLOT": os.path.join(W, "no", "gnuplot")})
check(os.path.exists(os.path.join(o3, "report.md")) and not os.path.exists(os.path.join(o3, "plots")),
      "--no-plots: report without plots")

print(f"{len(failures)} failed" if failures else "all report checks passed")
sys.exit(1 if failures else 0)
