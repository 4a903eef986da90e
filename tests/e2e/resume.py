#!/usr/bin/python3
"""Issue 4: `tunic sft` killed with SIGKILL at any point and resumed with --resume ends with
weights bit-identical to an uninterrupted run with the same seed.

Reference: one uninterrupted run (12 steps of 4 examples over 22 training examples, so the data
order crosses an epoch boundary; --save-every 4, --keep-last 2, an eval split). During it a
watcher lists checkpoints/ continuously: every folder visible as step_N must be complete
(weights, optimizer state and trainer_state.json readable and consistent; only .tmp names may be
partial). Then the same run is repeated and SIGKILLed at chosen points:
  - after the first step, before the first checkpoint,
  - while a checkpoint is being written (a .step_N.tmp folder is visible),
  - right after a checkpoint appeared (step_4), and right after the first one that deletes an
    older checkpoint (step_12 with --keep-last 2),
  - at random times,
and resumed with --resume (again and again if a resumed run is killed too). Required each time:
  final model/model.safetensors byte-identical to the reference (sha256),
  metrics.jsonl has each step 1..N exactly once, with the reference's loss/grad_norm/lr values,
  after each kill, every visible step_N folder is complete.
Runs with OMP_NUM_THREADS=1 (fast on a loaded 2-core machine) and once with 2 threads
(OMP_WAIT_POLICY=passive: it does not change results, only how idle threads wait).
"""
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import TUNIC, check, finish, init_model, jsonl, ok_run, read_metrics, st_read, workdir

W = workdir("resume")
MODEL = init_model(os.path.join(W, "m"), seed=11)
rng = random.Random(1234)
words = "the cat sat on a mat and then it ran far away from home to see the sea".split()
rows = []
for i in range(24):
    p = " ".join(rng.choice(words) for _ in range(rng.randint(3, 30)))
    c = " ".join(rng.choice(words) for _ in range(rng.randint(1, 25)))
    rows.append({"prompt": p + "?", "completion": " " + c})
DATA = jsonl(os.path.join(W, "data.jsonl"), rows)
STEPS, SAVE = 12, 4


def args(out):
    return ["sft", "--model", MODEL, "--data", DATA, "--out", out, "--steps", STEPS, "--batch-size", 4,
            "--save-every", SAVE, "--keep-last", 2, "--lr", "2e-3", "--warmup-steps", 2, "--seed", 5,
            "--eval-split", "0.1", "--eval-every", 4, "--max-grad-norm", "0.5"]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ckpt_problem(d, n):
    """None if checkpoint folder d (named step_n) is complete, else what is wrong."""
    try:
        with open(os.path.join(d, "trainer_state.json")) as f:
            st = json.load(f)
        if st.get("step") != n:
            return f"trainer_state.json step {st.get('step')} != {n}"
        for name in ("model.safetensors", "optimizer.safetensors"):
            hdr, data = st_read(os.path.join(d, name))
            end = max(v["data_offsets"][1] for k, v in hdr.items() if k != "__metadata__")
            if end != len(data):
                return f"{name}: data section {len(data)} bytes, header covers {end}"
        if not os.path.exists(os.path.join(d, "config.json")):
            return "config.json missing"
    except Exception as e:  # noqa: BLE001 - any failure to read is a problem
        return f"{type(e).__name__}: {e}"
    return None


def visible_problems(out):
    """Complete-check every step_N folder visible now; a folder that vanished meanwhile is fine."""
    ck = os.path.join(out, "checkpoints")
    probs = []
    try:
        names = os.listdir(ck)
    except FileNotFoundError:
        return probs
    for nm in names:
        if not nm.startswith("step_"):
            continue
        d = os.path.join(ck, nm)
        pr = ckpt_problem(d, int(nm[5:]))
        if pr and os.path.isdir(d):
            pr2 = ckpt_problem(d, int(nm[5:]))
            if pr2 and os.path.isdir(d):
                probs.append(f"{nm}: {pr2}")
    return probs


def steps_of(out):
    try:
        return sorted(int(n[5:]) for n in os.listdir(os.path.join(out, "checkpoints")) if n.startswith("step_"))
    except FileNotFoundError:
        return []


def env(threads):
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = str(threads)
    e["OMP_WAIT_POLICY"] = "passive"  # spinning threads crawl when the 2 cores are shared (ctest -j2)
    return e


def watch_run(out, threads):
    """Uninterrupted run with a watcher checking every visible step_N folder while it runs."""
    probs, seen = [], set()
    p = subprocess.Popen([TUNIC] + [str(a) for a in args(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env(threads), text=True)
    while p.poll() is None:
        for pr in visible_problems(out):
            probs.append(pr)
        seen.update(steps_of(out))
        time.sleep(0.0005)
    err = p.stderr.read()
    check(p.returncode == 0, f"reference run ({threads} thread(s)) exits 0 (got {p.returncode}) {err[-300:]}")
    check(not probs, f"watcher: every visible step_N folder was complete during the run ({len(seen)} seen) {probs[:3]}")
    return out


def run_killed(out, threads, when):
    """Start the run, SIGKILL it when `when(out, t)` says so; return a description of the state."""
    p = subprocess.Popen([TUNIC] + [str(a) for a in args(out)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env(threads))
    t0 = time.monotonic()
    killed = False
    while p.poll() is None:
        if when(out, time.monotonic() - t0):
            p.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.0003)
    p.wait()
    try:
        n_metrics = len(read_metrics(out))
    except FileNotFoundError:
        n_metrics = 0
    return killed, p.returncode, n_metrics


def metrics_lines(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return sum(1 for line in f if line.strip())


def after_first_step(out, t):
    try:
        return metrics_lines(out) >= 1 and not steps_of(out)
    except FileNotFoundError:
        return False


def tmp_visible(out, t):
    try:
        return any(".tmp" in n for n in os.listdir(os.path.join(out, "checkpoints")))
    except FileNotFoundError:
        return False


def step_appears(n):
    return lambda out, t: n in steps_of(out)


def mid_step(k, frac):
    """after step k's metrics line appeared, wait frac of a step's duration: somewhere in step k+1"""
    seen = {}

    def f(out, t):
        try:
            if "t" not in seen and metrics_lines(out) >= k:
                seen["t"] = t
        except FileNotFoundError:
            pass
        return "t" in seen and t >= seen["t"] + frac * STEP_TIME
    return f


def resume_and_compare(label, out, ref, threads, kill_resumes=0):
    """Resume (possibly killing the resumed run too) until done; compare with the reference."""
    for k in range(kill_resumes):
        # kill the resumed run as well, soon after it starts
        p = subprocess.Popen([TUNIC] + [str(a) for a in args(out)] + ["--resume"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env(threads))
        time.sleep(0.02 + 0.05 * rng.random())
        p.send_signal(signal.SIGKILL)
        p.wait()
        probs = visible_problems(out)
        check(not probs, f"{label}: after killing resumed run #{k + 1}, visible checkpoints complete {probs}")
    p = subprocess.run([TUNIC] + [str(a) for a in args(out)] + ["--resume"], capture_output=True, text=True,
                       env=env(threads), timeout=120)
    if not check(p.returncode == 0, f"{label}: --resume exits 0 (got {p.returncode})"):
        print("    " + p.stderr.strip()[-800:])
        return
    fin, reff = os.path.join(out, "model", "model.safetensors"), os.path.join(ref, "model", "model.safetensors")
    same = os.path.exists(fin) and sha(fin) == sha(reff)
    check(same, f"{label}: final model.safetensors byte-identical to the uninterrupted run")
    left = sorted(n for n in os.listdir(os.path.join(out, "checkpoints")) if not n.startswith("step_"))
    check(not left, f"{label}: no temporary checkpoint folders left after the resumed run {left}")
    with open(os.path.join(out, "run_manifest.json")) as f:
        check(json.load(f).get("status") == "completed", f"{label}: run_manifest.json status completed")
    m, mr = read_metrics(out), read_metrics(ref)
    steps = [r["step"] for r in m]
    check(steps == list(range(1, STEPS + 1)), f"{label}: metrics.jsonl has steps 1..{STEPS} once each (got {steps})")
    keys = ("loss", "grad_norm", "learning_rate", "eval_loss", "target_tokens")
    diff = [(a["step"], k) for a, b in zip(m, mr) for k in keys if a.get(k) != b.get(k)]
    check(not diff and len(m) == len(mr), f"{label}: metrics values equal the reference's exactly {diff[:4]}")


def scenario(label, threads, ref, when, kill_resumes=0, expect=None):
    out = os.path.join(W, label)
    killed, rc, nm = run_killed(out, threads, when)
    state = f"killed={killed} rc={rc} metrics_lines={nm} checkpoints={steps_of(out)}"
    print(f"    [{label}] {state}")
    if expect:
        check(expect(killed, nm, steps_of(out)), f"{label}: killed at the intended point ({state})")
    probs = visible_problems(out)
    check(not probs, f"{label}: after SIGKILL every visible step_N folder is complete {probs}")
    resume_and_compare(label, out, ref, threads, kill_resumes)
    return killed


REF1 = watch_run(os.path.join(W, "ref1"), 1)
t0 = time.monotonic()
ok_run(args(os.path.join(W, "timing")), "timing run", env={"OMP_NUM_THREADS": "1"})
STEP_TIME = (time.monotonic() - t0) / STEPS
print(f"    about {STEP_TIME * 1000:.0f} ms per step (including start-up)")
# the reference run itself must be reproducible (same bits twice), otherwise nothing below means anything
REF1b = watch_run(os.path.join(W, "ref1b"), 1)
check(sha(os.path.join(REF1, "model", "model.safetensors")) == sha(os.path.join(REF1b, "model", "model.safetensors")),
      "two uninterrupted runs give identical weights")
# and training moved the weights (a run that does nothing would trivially 'resume' bit-identically)
check(sha(os.path.join(REF1, "model", "model.safetensors")) != sha(os.path.join(MODEL, "model.safetensors")),
      "training changed the weights")

scenario("before-first-ckpt", 1, REF1, after_first_step, expect=lambda k, nm, st: k and not st)
scenario("during-ckpt-write", 1, REF1, tmp_visible, expect=lambda k, nm, st: k)
scenario("right-after-ckpt4", 1, REF1, step_appears(4), expect=lambda k, nm, st: k and 4 in st)
scenario("right-after-ckpt12", 1, REF1, step_appears(12), expect=lambda k, nm, st: k and 12 in st)
# random points inside steps 2..STEPS-1 (a kill timed for the last step may come after the run ended)
n_killed = 0
for i in range(4):
    k, frac = rng.randint(1, STEPS - 2), rng.random()
    n_killed += scenario(f"random-{i}-step{k + 1}-{frac:.2f}", 1, REF1, mid_step(k, frac), kill_resumes=i % 2)
check(n_killed >= 3, f"at least 3 of the 4 random kills landed before the run ended ({n_killed})")

REF2 = watch_run(os.path.join(W, "ref2"), 2)
k, frac = rng.randint(2, STEPS - 2), rng.random()
scenario(f"2threads-step{k + 1}-{frac:.2f}", 2, REF2, mid_step(k, frac), expect=lambda killed, nm, st: killed)

shutil.rmtree(W)
finish()
