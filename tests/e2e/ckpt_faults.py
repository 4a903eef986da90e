#!/usr/bin/python3
"""Issue 12: no lost work under faults. Checkpoint writes under injected faults, damaged
checkpoints, and another run's checkpoints, on tiny runs (tests/e2e/trainers.py).

1. Injected faults (TN_FAULT=OP:N:ERR, src/base/file.c): a run of 3 steps with a checkpoint every
   step and --keep-last 2 is traced once (TN_FAULT=trace lists every write, fsync and rename of
   its checkpoint saves with its path). Then for every such operation of the step-3 save, with
   ENOSPC and with EIO, the run is repeated with that operation failing. Required: the run exits 1
   and its error names the operation's path and the errno's text, or (the rename that deletes
   step_1, which only tidies up) it exits 0 with a warning naming the path; step_2 is left intact
   (its checksums.json verifies); then --resume without faults completes from step_2 (step_3 when
   the fault hit the directory's fsync after the checkpoint was in place) with final weights
   byte-identical to the uninterrupted run. For sft (LoRA: an adapter folder) and dpo (full
   fine-tuning: a model folder with the tokenizer files; one errno per operation, alternately, to
   keep the test short).
2. Damaged checkpoints (sft, 4 steps, every checkpoint kept; the final weights of that run are the
   reference): with step_4 removed, step_3 corrupted in place (one byte of its optimizer state
   flipped: same size), or truncated (its adapter cut to half), --resume warns naming step_3 and
   the file, resumes from step_2 and ends byte-identical; step_3 and step_2 both damaged: from
   step_1; every checkpoint damaged: exit 1, "no checkpoint loads", nothing trained.
3. trainer_state.json of step_3 edited to "data_pos": -100000 (its checksum updated so only the
   validation can catch it): no crash, a warning naming data_pos, resumed from step_2, identical.
4. Another run's checkpoints: --resume with another --data (3 fewer examples) or another --seed is
   refused (exit 2, the message names --data / --seed), nothing changed; a checkpoint without
   checksums.json (written before they were recorded) still resumes.
"""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, finish, workdir  # noqa: E402
from trainers import ENV1, run_clean as run, Trainers, sha  # noqa: E402

W = workdir("faults")
T = Trainers(W)
ERRNO_TEXT = {"ENOSPC": "No space left on device", "EIO": "Input/output error"}


def verifies(d):
    """checksums.json of checkpoint folder d matches its files."""
    try:
        sums = json.load(open(os.path.join(d, "checksums.json")))["files"]
        return all(os.path.getsize(os.path.join(d, f)) == v["bytes"] and sha(os.path.join(d, f)) == v["sha256"]
                   for f, v in sums.items())
    except (OSError, ValueError, KeyError):
        return False


def resumed_step(p):
    m = re.search(r"resumed from \S+/step_(\d+)", p.stdout)
    return int(m.group(1)) if m else None


# ---- 1. injected faults ----
for name in ("sft", "dpo"):
    ref = os.path.join(W, name + "-ref")
    env = dict(ENV1, TN_FAULT="trace")
    p = run(T.args(name, ref, steps=3), env=env)
    if not check(p.returncode == 0, f"{name}: traced reference run"):
        print(p.stderr[-2000:])
        continue
    ops = [re.match(r"tunic fault point: (\w+) (\d+) (.*)$", x).groups() for x in p.stderr.splitlines()
           if x.startswith("tunic fault point:")]
    ops = [(op, int(n), path) for op, n, path in ops]
    first3 = next(i for i, (_, _, path) in enumerate(ops) if "step_3" in path)
    save3 = ops[first3:]
    kinds = {op for op, _, _ in save3}
    check(kinds == {"write", "fsync", "rename"} and len(save3) >= 15,
          f"{name}: the step-3 save has {len(save3)} write/fsync/rename operations")
    ref_w = sha(T.weights(name, ref))
    fails = []
    for i, (op, n, path) in enumerate(save3):
        for err in ("ENOSPC", "EIO") if name == "sft" else (("ENOSPC", "EIO")[i % 2],):
            out = os.path.join(W, f"{name}-{op}{n}-{err}")
            p = run(T.args(name, out, steps=3), env=dict(ENV1, TN_FAULT=f"{op}:{n}:{err}"))
            deleting = ".step_1.del-" in path
            # the warning of a failed deletion names the checkpoint it could not remove
            named = os.path.join(ref, "checkpoints", "step_1") if deleting else path
            named = re.sub(r"\.tmp-\d+", ".tmp-PID", named.replace(ref, out)) in re.sub(r"\.tmp-\d+", ".tmp-PID", p.stderr)
            ok = p.returncode == (0 if deleting else 1) and named and ERRNO_TEXT[err] in p.stderr
            ok = ok and verifies(os.path.join(out, "checkpoints", "step_2"))
            q = run(T.args(name, out, steps=3, extra=["--resume"]), env=ENV1)
            want = (3,) if deleting else ((3,) if op == "fsync" and path.endswith("checkpoints") else (2,))
            ok = ok and q.returncode == 0 and (resumed_step(q) in want or deleting) and sha(T.weights(name, out)) == ref_w
            if not ok:
                fails.append(f"{op} {n} {err} {path}: exit {p.returncode} then {q.returncode} "
                             f"(resumed {resumed_step(q)}): {p.stderr.strip()[-200:]}")
            shutil.rmtree(out, ignore_errors=True)
    check(not fails, f"{name}: each of the {len(save3)} operations failing with {'ENOSPC and with EIO' if name == 'sft' else 'ENOSPC or EIO (alternately)'}: error naming the "
          f"path, step_2 intact, --resume ends byte-identical" + ("; " + "; ".join(fails[:3]) if fails else ""))

# ---- 2.-4. damaged and foreign checkpoints (sft) ----
ORIG = os.path.join(W, "sft4")
p = run(T.args("sft", ORIG, steps=4, extra=["--keep-last", 0]), env=ENV1)
check(p.returncode == 0, "sft: 4-step run keeping every checkpoint")
REF_W = sha(T.weights("sft", ORIG))


def fresh_copy(label):
    """the 4-step run without its last checkpoint and final adapter: --resume redoes steps 3..4 at least"""
    out = os.path.join(W, "sft4-" + label)
    shutil.copytree(ORIG, out)
    shutil.rmtree(os.path.join(out, "checkpoints", "step_4"))
    shutil.rmtree(os.path.join(out, "adapter"))
    return out


def corrupt(out, step, fname="optimizer.safetensors"):
    path = os.path.join(out, "checkpoints", f"step_{step}", fname)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x40]))


def truncate(out, step, fname="adapter_model.safetensors"):
    path = os.path.join(out, "checkpoints", f"step_{step}", fname)
    os.truncate(path, os.path.getsize(path) // 2)


def resume(out, label, want_step, warn=()):
    p = run(T.args("sft", out, steps=4, extra=["--keep-last", 0, "--resume"]), env=ENV1)
    check(p.returncode == 0 and resumed_step(p) == want_step and all(w in p.stderr for w in warn)
          and sha(T.weights("sft", out)) == REF_W,
          f"sft, {label}: resumed from step_{want_step}" + (f", warning names {list(warn)}" if warn else "")
          + f", final weights identical ({p.returncode}: {p.stderr.strip()[-220:]})")


out = fresh_copy("flip")
corrupt(out, 3)
resume(out, "step_3 corrupted (same size)", 2, ["step_3", "optimizer.safetensors", "corrupted"])
out = fresh_copy("trunc")
truncate(out, 3)
resume(out, "step_3 truncated", 2, ["step_3", "adapter_model.safetensors", "truncated"])
out = fresh_copy("two")
corrupt(out, 3)
truncate(out, 2)
resume(out, "step_3 and step_2 damaged", 1, ["step_3", "step_2"])
out = fresh_copy("all")
for s in (1, 2, 3):
    corrupt(out, s)
p = run(T.args("sft", out, steps=4, extra=["--keep-last", 0, "--resume"]), env=ENV1)
check(p.returncode == 1 and "no checkpoint loads" in p.stderr and not os.path.exists(T.weights("sft", out)),
      f"sft, every checkpoint damaged: exit 1, 'no checkpoint loads', nothing trained ({p.stderr.strip()[-160:]})")

# 3. data_pos -100000 behind a valid checksum
out = fresh_copy("datapos")
d = os.path.join(out, "checkpoints", "step_3")
st = json.load(open(os.path.join(d, "trainer_state.json")))
st["data_pos"] = -100000
with open(os.path.join(d, "trainer_state.json"), "w") as f:
    json.dump(st, f)
sums = json.load(open(os.path.join(d, "checksums.json")))
sums["files"]["trainer_state.json"] = {"bytes": os.path.getsize(os.path.join(d, "trainer_state.json")),
                                       "sha256": sha(os.path.join(d, "trainer_state.json"))}
with open(os.path.join(d, "checksums.json"), "w") as f:
    json.dump(sums, f)
resume(out, "step_3 with data_pos -100000", 2, ["step_3", "data_pos"])

# 4. another run's checkpoints
out = fresh_copy("foreign")
before = sorted(os.listdir(os.path.join(out, "checkpoints")))
for label, extra, what in (("another --data", ["--data", T.sft_data2], "--data"), ("another --seed", ["--seed", 6], "--seed")):
    p = run(T.args("sft", out, steps=4, extra=["--keep-last", 0, "--resume"] + extra), env=ENV1)
    check(p.returncode == 2 and what in p.stderr and "step_3" in p.stderr and not os.path.exists(T.weights("sft", out))
          and sorted(os.listdir(os.path.join(out, "checkpoints"))) == before,
          f"sft, --resume with {label}: refused naming {what} ({p.returncode}: {p.stderr.strip()[-200:]})")
os.remove(os.path.join(out, "checkpoints", "step_3", "checksums.json"))
resume(out, "step_3 without checksums.json", 3)
finish()
