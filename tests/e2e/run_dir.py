#!/usr/bin/python3
"""Issue 14: the run directory behaves the same for every trainer (sft, dpo, distill, grpo), since
one driver (src/train/run.c) owns it. For each trainer, on tiny models (tests/e2e/trainers.py):

1. --out checks before any work: a directory holding a file that is not a tunic run is refused
   (exit 1, the message names it, the file is untouched), a missing parent and an unwritable one
   (/proc/...) get an error naming the path, and a failed start leaves no new directory behind.
2. A 3-step run, --save-every 1 --keep-last 2: exit 0; checkpoints step_2 and step_3 only; each
   trainer_state.json has step, data_pos = step x items per step, seed, train_examples and the
   sha256 of --data; each checksums.json lists every other file of its folder with its size and
   sha256 (recomputed here with hashlib); run_manifest.json says the command and "completed";
   metrics.jsonl has steps 1..3 once; the progress (TN_PROGRESS=plain) reaches "3/3".
3. The same --out again without --resume: refused (exit 1, "already holds a run"), nothing
   changed (sha256 of the final weights).
4. --resume on a new directory starts from step 0 and completes ("no checkpoint").
5. NaN stop (sft, dpo, distill): the model's final norm is 3e38 everywhere (finite, so it loads; the forward
   overflows): exit 1, the message names step 1 and says the loss is NaN, no checkpoint.
"""
import json
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, copy_model, finish, st_tensors, st_write, workdir  # noqa: E402
from trainers import ENV1, run_clean as run, NAMES, Trainers, sha  # noqa: E402

W = workdir("rundir")
T = Trainers(W)
PER_STEP = {"sft": 4, "dpo": 2, "distill": 2, "grpo": 2}  # batch x grad-accum of trainers.py

# a model whose final norm holds a NaN: every trainer's loss is NaN at step 1
NANM = copy_model(T.model, os.path.join(W, "nanm"))
ts = st_tensors(os.path.join(NANM, "model.safetensors"))
dt, shape, raw = ts["model.norm.weight"]
# finite (NaN/Inf weights are refused at load) but so large that the forward overflows: the loss
# of step 1 is not finite
ts["model.norm.weight"] = (dt, shape, struct.pack("<f", 3e38) * (len(raw) // 4))
st_write(os.path.join(NANM, "model.safetensors"), ts, {"format": "pt"})


def swap(args, flag, value):
    a = list(args)
    a[a.index(flag) + 1] = value
    return a


for name in NAMES:
    # 1. --out checks
    foreign = os.path.join(W, name + "-foreign")
    os.makedirs(os.path.join(foreign, "model"))
    with open(os.path.join(foreign, "model", "config.json"), "w") as f:
        f.write("{\"mine\": 1}")
    p = run(T.args(name, foreign, steps=1), env=ENV1)
    check(p.returncode in (1, 2) and "not a tunic run" in p.stderr and "'model'" in p.stderr,
          f"{name}: --out holding other files refused, naming one ({p.returncode}: {p.stderr.strip()[-160:]})")
    check(open(os.path.join(foreign, "model", "config.json")).read() == "{\"mine\": 1}", f"{name}: that file is untouched")
    for out, what in ((os.path.join(W, "no", "such", name), "does not exist"), ("/proc/tn-run-" + name, "cannot create")):
        p = run(T.args(name, out, steps=1), env=ENV1)
        check(p.returncode == 1 and out in p.stderr and what in p.stderr and not os.path.exists(out)
              and not re.search(rf"^{name}: \d", p.stdout, re.M),  # the trainer's banner: its setup never ran
              f"{name}: --out {out}: '{what}' before any work ({p.stderr.strip()[-140:]})")
    p = run(swap(T.args(name, os.path.join(W, name + "-bad"), steps=1), "--data", os.path.join(W, "nodata.jsonl")), env=ENV1)
    check(p.returncode != 0 and not os.path.exists(os.path.join(W, name + "-bad")),
          f"{name}: a run that fails in its setup leaves no directory")

    # 2. a 3-step run
    out = os.path.join(W, name)
    p = run(T.args(name, out, steps=3), env=ENV1, timeout=300)
    if not check(p.returncode == 0, f"{name}: 3-step run exits 0 ({p.stderr.strip()[-300:]})"):
        continue
    ck = os.path.join(out, "checkpoints")
    check(sorted(os.listdir(ck)) == ["step_2", "step_3"], f"{name}: checkpoints step_2, step_3 kept ({sorted(os.listdir(ck))})")
    for n in (2, 3):
        d = os.path.join(ck, f"step_{n}")
        st = json.load(open(os.path.join(d, "trainer_state.json")))
        want = {"step": n, "data_pos": n * PER_STEP[name], "seed": 5, "data_sha256": sha(T.data(name))}
        check(all(st.get(k) == v for k, v in want.items()) and isinstance(st.get("train_examples"), int),
              f"{name}: step_{n}/trainer_state.json {st}")
        sums = json.load(open(os.path.join(d, "checksums.json")))["files"]
        files = sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)
        files.remove("checksums.json")
        check(sorted(sums) == files and all(sums[f]["bytes"] == os.path.getsize(os.path.join(d, f))
                                            and sums[f]["sha256"] == sha(os.path.join(d, f)) for f in files),
              f"{name}: step_{n}/checksums.json lists every file with its size and sha256 ({len(files)} files)")
    man = json.load(open(os.path.join(out, "run_manifest.json")))
    check(man.get("command") == name and man.get("status") == "completed", f"{name}: manifest command and status")
    vl = run(["version"], env=ENV1).stdout.splitlines()
    ver = {k: l[len(k) + 1:] for l in vl for k in ("isa in use", "cpu") if l.startswith(k + " ")}
    st = man.get("settings", {})
    check(st.get("isa") == ver.get("isa in use") and st.get("cpu") == ver.get("cpu") and st.get("fused_decode") is True
          and st.get("shared_prefix") is True, f"{name}: manifest settings (isa, cpu, switches) {st}")
    steps = [json.loads(x)["step"] for x in open(os.path.join(out, "metrics.jsonl")) if x.strip()]
    check(steps == [1, 2, 3], f"{name}: metrics.jsonl steps {steps}")
    check(re.search(r"\b3/3\b", p.stderr) is not None, f"{name}: progress reaches 3/3")

    if name == "sft":  # the switches come from the environment and the manifest says so
        o2 = os.path.join(W, "sft-settings")
        p2 = run(T.args(name, o2, steps=1), env={**ENV1, "TN_NO_FUSED_DECODE": "1", "TN_ISA": "avx2"})
        st2 = json.load(open(os.path.join(o2, "run_manifest.json"))).get("settings", {}) if p2.returncode == 0 else {}
        check(st2.get("fused_decode") is False and st2.get("isa") in ("avx2", "portable"),
              f"sft: TN_NO_FUSED_DECODE=1 TN_ISA=avx2 recorded in the manifest {st2}")

    # 3. a used directory without --resume
    before = sha(T.weights(name, out))
    p = run(T.args(name, out, steps=3), env=ENV1)
    check(p.returncode in (1, 2) and "already holds a run" in p.stderr and sha(T.weights(name, out)) == before,
          f"{name}: the same --out again without --resume is refused, nothing changed")

    # 4. --resume on a new directory
    out4 = os.path.join(W, name + "-new")
    p = run(T.args(name, out4, steps=1, extra=["--resume"]), env=ENV1, timeout=300)
    check(p.returncode == 0 and "no checkpoint" in p.stdout and os.path.exists(T.weights(name, out4)),
          f"{name}: --resume on a new directory starts from step 0 and completes ({p.returncode})")

    # 5. NaN stop (not grpo: a NaN model stops its sampler, non-finite rewards its reward library, first)
    if name == "grpo":
        continue
    out5 = os.path.join(W, name + "-nan")
    a = T.args(name, out5, steps=2)
    a = swap(a, "--student" if name == "distill" else "--model", NANM)
    p = run(a, env=ENV1, timeout=300)
    check(p.returncode == 1 and "step 1" in p.stderr and "NaN" in p.stderr and not os.path.exists(os.path.join(out5, "checkpoints")),
          f"{name}: NaN stop names step 1, no checkpoint ({p.returncode}: {p.stderr.strip()[-160:]})")

finish()
