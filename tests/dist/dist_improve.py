"""`mpirun -np 2 tunic improve` against one process (issues 17 and 20).

What it is for: the self-improvement loop on 2 ranks with per-rank SFT batch b gives what one
process with batch 2b gives: round 1's samples, judgements and dataset byte for byte (rank 0 alone
generates and judges, with the start model), round 1's SFT weights to 1e-6 relative (the SFT is
data-parallel; the micro-batch GEMMs add in another order), only rank 0 writes (one set of files,
the SFT manifest records world size 2), and a second round (sampling from round 1's model) agrees
too. It also checks that the comparison can fail: 2 ranks with the same per-rank
batch as the single process (so half the global batch) give other weights.
What it is not: a test of what improve computes (tests/improve/check_improve.py).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi import rel_l2 as rel, tunic  # noqa: E402  (exits 77 without MPI)
from common import check, finish, workdir  # noqa: E402


w = workdir("dist_improve")
model = os.path.join(w, "model")
p = tunic(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", model, "--seed", "5"], 1)
assert p.returncode == 0, p.stderr
prompts, evald = os.path.join(w, "p.jsonl"), os.path.join(w, "e.jsonl")
with open(prompts, "w") as f:
    for i in range(6): f.write(json.dumps({"id": "p%d" % i, "prompt": "%d+%d?" % (i, i), "answer": str(2 * i)}) + "\n")
with open(evald, "w") as f:
    for i in range(6): f.write(json.dumps({"id": "e%d" % i, "prompt": "%d*2?" % i, "answer": str(2 * i)}) + "\n")


def improve(out, batch, ranks, rounds=1, extra=()):
    return tunic(["improve", "--model", model, "--prompts", prompts, "--eval-data", evald, "--out", out,
                  "--rounds", rounds, "--samples", 2, "--max-new-tokens", 10, "--temperature", "1.0",
                  "--judge", "answer:1", "--threshold", "-1", "--any-format", "--keep-truncated",
                  "--steps", 3, "--batch-size", batch, "--max-seq-len", 64, "--lr", "1e-3",
                  "--eval-max-new-tokens", 6, "--no-early-stop", "--seed", 3] + list(extra), ranks)


one, two, half = os.path.join(w, "one"), os.path.join(w, "two"), os.path.join(w, "half")
for out, b, n in ((one, 4, 1), (two, 2, 2), (half, 4, 2)):
    p = improve(out, b, n)
    if not check(p.returncode == 0, f"improve, {n} rank(s), batch {b}: exit 0"):
        print(p.stdout[-2000:], p.stderr[-3000:])
        finish()
r1 = lambda out, f: os.path.join(out, "round_1", f)
for f in ("samples.jsonl", "judged.jsonl", "dataset.jsonl", "manifest.json"):
    check(open(r1(one, f), "rb").read() == open(r1(two, f), "rb").read(), f"round 1 {f}: 2 ranks == 1 process, byte for byte")
wm = lambda out: r1(out, "sft/model/model.safetensors")
d = rel(wm(one), wm(two))
check(d <= 1e-6, f"round 1 SFT weights: 2 ranks x batch 2 == 1 process x batch 4 (relative {d:.2e} <= 1e-6)")
dh = rel(wm(one), wm(half))
check(dh > 1e-4, f"the check discriminates: 2 ranks x batch 4 differ from 1 process x batch 4 ({dh:.2e})")
man = json.load(open(r1(two, "sft/run_manifest.json")))
check(json.dumps(man).find('"world_size": 2') >= 0 or man.get("distributed", {}).get("world_size") == 2,
      "the round's SFT manifest records world size 2")
check(os.path.exists(os.path.join(two, "report.json")), "rank 0 wrote the loop's report")
# two rounds on 2 ranks == two rounds on one process (every stage's meeting point passed twice;
# round 2 samples from round 1's model, which differs by ~1e-7: the samples are still the same)
one2, two2 = os.path.join(w, "one2"), os.path.join(w, "two2")
for out, b, n in ((one2, 4, 1), (two2, 2, 2)):
    p = improve(out, b, n, rounds=2)
    if not check(p.returncode == 0, f"improve, 2 rounds, {n} rank(s): exit 0"):
        print(p.stdout[-2000:], p.stderr[-3000:])
check(open(os.path.join(one2, "round_2", "dataset.jsonl"), "rb").read() ==
      open(os.path.join(two2, "round_2", "dataset.jsonl"), "rb").read(), "round 2 dataset: 2 ranks == 1 process")
dr = rel(os.path.join(one2, "round_2", "sft", "model", "model.safetensors"),
         os.path.join(two2, "round_2", "sft", "model", "model.safetensors"))
check(dr <= 5e-6, f"round 2 SFT weights: 2 ranks == 1 process ({dr:.2e} <= 5e-6: it starts from round-1 weights already ~2e-7 apart)")
finish()
