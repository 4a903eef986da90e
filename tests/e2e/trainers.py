"""The four trainers (sft, dpo, distill, grpo) as tiny runs with the same run-directory options,
for the tests of what the trainer driver (src/train/run.c) does for all of them alike:
run_dir.py (fresh check, resume, progress, checkpoints, NaN stop, manifest, --out checks),
kill_resume.py (SIGKILL and --resume), ckpt_faults.py (injected write/fsync/rename faults,
damaged checkpoints, another run's data).

What it is for: one tiny model (tunic init, byte tokenizer) and data for each trainer, each
trainer's command line for N steps with a checkpoint every step, and the file its final weights
are in. What it is not: a test of what any trainer computes (tests/pref, tests/grpo do that).
"""
import hashlib
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, init_model, jsonl, ok_run, run, sanitizer_report  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REWARD_CMD = f"/usr/bin/python3 {os.path.join(SRC, 'tests', 'grpo', 'reward_letters.py')}"
NAMES = ("sft", "dpo", "distill", "grpo")
ENV1 = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive", "TN_PROGRESS": "plain"}


def run_clean(args, **kw):
    """common.run, and a failed check when the run printed a sanitizer report (a SAN=1 build)."""
    p = run(args, **kw)
    if sanitizer_report(p):
        check(False, f"no sanitizer report from tunic {' '.join(str(a) for a in args[:1])}: {p.stderr[-3000:]}")
    return p


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Trainers:
    """Models and data under w; args(name, out, steps, extra) is the command line."""

    def __init__(self, w):
        self.w = w
        self.model = init_model(os.path.join(w, "m"), seed=3)
        self.teacher = init_model(os.path.join(w, "t"), seed=4)
        rng = random.Random(7)
        words = "the cat sat on a mat and then ran far away from big red dogs".split()
        rows = [{"prompt": " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + "?",
                 "completion": " " + " ".join(rng.choice(words) for _ in range(rng.randint(2, 10)))} for _ in range(20)]
        self.sft_data = jsonl(os.path.join(w, "sft.jsonl"), rows)
        self.sft_data2 = jsonl(os.path.join(w, "sft2.jsonl"), rows[:-3])  # other data, for the refusal
        prefs = [{"prompt": r["prompt"], "chosen": r["completion"], "rejected": " no" + r["completion"][::-1]} for r in rows]
        self.pref_data = jsonl(os.path.join(w, "prefs.jsonl"), prefs)
        dd = os.path.join(w, "math")
        ok_run(["data", "math", "--profile", "easy", "--n", 10, "--seed", 2, "--out", dd], "tunic data math")
        self.grpo_data = os.path.join(dd, "train_grpo.jsonl")

    def data(self, name):
        return {"sft": self.sft_data, "distill": self.sft_data, "dpo": self.pref_data, "grpo": self.grpo_data}[name]

    def args(self, name, out, steps=6, extra=(), data=None):
        common = ["--out", out, "--steps", steps, "--save-every", 1, "--keep-last", 2, "--seed", 5,
                  "--data", data or self.data(name)]
        if name == "sft":
            a = ["sft", "--model", self.model, "--batch-size", 2, "--grad-accum", 2, "--lr", "2e-3", "--lora-rank", 4,
                 "--lora-dropout", "0.1", "--eval-split", "0.1", "--eval-every", 2]
        elif name == "dpo":
            a = ["dpo", "--model", self.model, "--batch-size", 2, "--lr", "1e-3", "--eval-split", "0.1",
                 "--eval-every", 3]
        elif name == "distill":
            a = ["distill", "--teacher", self.teacher, "--student", self.model, "--batch-size", 2, "--lr", "1e-3",
                 "--lmbda", "0.5", "--max-new-tokens", 8, "--feature-layers", "1:1", "--eval-split", "0.1"]
        else:
            a = ["grpo", "--model", self.model, "--batch-size", 2, "--num-generations", 3,
                 "--max-tokens-to-generate", 12, "--lr", "1e-3", "--num-iterations", 2, "--beta", "0.04",
                 "--reward-cmd", REWARD_CMD]
        return a + common + list(extra)

    @staticmethod
    def weights(name, out):
        """The final weights file of a run (full fine-tuning but SFT's LoRA)."""
        if name == "sft":
            return os.path.join(out, "adapter", "adapter_model.safetensors")
        return os.path.join(out, "model", "model.safetensors")
