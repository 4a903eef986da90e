#!/usr/bin/python3
"""The trainers' shared options (src/train/opts.c) as the four commands see them.

1. `tunic sft|dpo|distill|grpo --help`: exactly the options each trainer had before the shared
   block (lists pinned here), each listed once; every shared option shows its default once and
   that default is the trainer's own (table below, from the trainers' documented defaults:
   DPO lr 1e-6 linear, GRPO lr 3e-6 constant, clip 0.1, 100 steps, ...).
2. The help's default of every option (shared or not) is the value the command actually uses
   (its printed configuration when run without arguments).
3. No line of any command's --help says its default twice.
4. A YAML config and the same values as flags give the same run configuration: for every
   trainer, every shared option set to a non-default value both ways -> the same printed values,
   and those values are the ones given; for sft a real run both ways -> the same
   run_manifest.json "config" and the same losses.
"""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from common import check, finish, init_model, jsonl, ok_run, read_metrics, run, workdir  # noqa: E402

TRAINERS = {
    "sft": "model base-dtype base-adapter tokenizer data field-map eval-data eval-split out chat-format chat-template max-seq-len batch-size grad-accum "
           "steps epochs lr lr-end schedule warmup-steps weight-decay beta1 beta2 adam-eps max-grad-norm lora-rank "
           "lora-alpha lora-dropout rslora lora-targets eval-every save-every keep-last seed resume precision "
           "bf16-matmul recompute",
    "dpo": "model ref-model base-adapter tokenizer data field-map eval-data eval-split out algorithm loss beta label-smoothing orpo-lambda "
           "precompute-ref chat chat-format chat-template max-prompt-length max-response-length batch-size grad-accum steps epochs "
           "lr lr-end schedule warmup-steps weight-decay beta1 beta2 adam-eps max-grad-norm lora-rank lora-alpha "
           "lora-dropout rslora lora-targets base-dtype eval-every save-every keep-last seed resume precision",
    "distill": "teacher student teacher-dtype base-adapter tokenizer data field-map eval-data eval-split out chat-format chat-template temperature alpha "
               "top-k jsd-beta lmbda max-new-tokens gen-temperature feature-layers feature-weight max-seq-len "
               "batch-size grad-accum steps epochs lr lr-end schedule warmup-steps weight-decay beta1 beta2 adam-eps "
               "max-grad-norm lora-rank lora-alpha lora-dropout rslora lora-targets base-dtype eval-every save-every "
               "keep-last seed resume precision",
    "grpo": "model base-dtype base-adapter tokenizer data field-map out reward reward-cmd reward-cmd-timeout rubric system-prompt no-system-prompt chat-format chat-template "
            "no-chat num-generations num-iterations batch-size micro-batch steps max-prompt-length "
            "max-tokens-to-generate temperature top-p top-k beta epsilon epsilon-high kl-estimator loss-agg "
            "scale-rewards mask-truncated gspo advantage-estimator loss-type loss-agg-mode importance-sampling-level dynamic-sampling max-num-gen-batches overlong-buffer-len overlong-penalty lr lr-end schedule warmup-steps weight-decay max-grad-norm lora-rank "
            "lora-alpha lora-targets save-every keep-last seed resume precision eval-data eval-every dump-rollouts dump-grads "
            "tools env env-cmd mcp max-turns max-episode-tokens episode-timeout tool-timeout finish-tool filter-statuses "
            "async-rollouts",
}
TRAINERS = {k: v.split() for k, v in TRAINERS.items()}

# the shared options and their defaults (None: no default shown: unset path, false flag)
SHARED = {
    "model": None, "base-dtype": "f32", "base-adapter": None, "tokenizer": None, "data": None, "field-map": None, "eval-data": None, "eval-split": 0,
    "out": None, "chat-format": "auto", "chat-template": None, "max-seq-len": 512, "batch-size": 4, "grad-accum": 1, "steps": 0,
    "epochs": 1, "lr": 1e-4, "lr-end": 0, "schedule": "cosine", "warmup-steps": 0, "weight-decay": 0,
    "beta1": 0.9, "beta2": 0.999, "adam-eps": 1e-8, "max-grad-norm": 1, "lora-rank": 0, "lora-alpha": 16,
    "lora-dropout": 0, "rslora": None, "lora-targets": "q_proj,k_proj,v_proj,o_proj", "eval-every": 0,
    "save-every": 0, "keep-last": 2, "seed": 0, "resume": None, "precision": "f32", "bf16-matmul": None, "recompute": None,
}
OVERRIDES = {"sft": {}, "distill": {}, "dpo": {"lr": 1e-6, "schedule": "linear"},
             "grpo": {"lr": 3e-6, "schedule": "constant", "max-grad-norm": 0.1, "steps": 100}}
RENAME = {"distill": {"model": "student"}}   # shared field -> the trainer's flag name


def flag(cmd, name):
    return RENAME.get(cmd, {}).get(name, name)


def shared_of(cmd):
    """{flag name: shared option name} of the shared options cmd offers"""
    inv = {flag(cmd, s): s for s in SHARED}
    return {f: inv[f] for f in TRAINERS[cmd] if f in inv}


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    try:
        x, y = float(a), float(b)
        return abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))
    except (TypeError, ValueError):
        return str(a) == str(b)


LINE = re.compile(r"^  --([a-z0-9-]+)(?: (?:STR|N|X|FILE))?\s{2,}(.*)$")


def help_table(cmd):
    """[(name, help text, default or None)] of `tunic CMD --help`"""
    p = run([cmd, "--help"])
    check(p.returncode == 0, f"{cmd} --help exits 0")
    rows = []
    for line in p.stdout.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        d = re.search(r"\(default ([^):][^)]*)\)$", m.group(2))
        rows.append((m.group(1), m.group(2), d.group(1) if d else None, line))
    return rows


def printed_config(args):
    """{name: value} of the "CMD configuration" block a trainer prints before it runs"""
    p = run(args)
    vals = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^  (\S+)\s+= (.*?)\s+\(([^()]*)\)$", line)
        if m:
            vals[m.group(1)] = None if m.group(2) == "(none)" else m.group(2)
    return vals, p


W = workdir("train-opts")
NOWHERE = os.path.join(W, "absent", "run")

# ---- 1-3: --help of every trainer, the defaults it shows, and what the command uses ----
for cmd, names in TRAINERS.items():
    rows = help_table(cmd)
    listed = [r[0] for r in rows if r[0] != "config"]
    check(sorted(listed) == sorted(names),
          f"{cmd} --help lists exactly its options ({sorted(set(listed) ^ set(names))} differ)")
    dup = sorted({n for n in listed if listed.count(n) > 1})
    check(not dup, f"{cmd} --help lists each option once (repeated: {dup})")
    twice = [r[3] for r in rows if r[3].count("default") > 1]
    check(not twice, f"{cmd} --help: no line gives its default twice {twice}")
    want = dict(SHARED, **OVERRIDES[cmd])
    table = {r[0]: r[2] for r in rows}
    bad = {f: (table.get(f), want[s]) for f, s in shared_of(cmd).items() if not same(table.get(f), want[s])}
    check(not bad, f"{cmd} --help: every shared option's default is the {cmd} default (help, expected: {bad})")
    used, p = printed_config([cmd, "--out", NOWHERE])
    check(p.returncode in (1, 2) and "configuration" in p.stdout,
          f"{cmd} without inputs prints its configuration and fails cleanly (exit {p.returncode})")
    mism = {}
    for name, _, d, _ in rows:
        if name == "config" or name not in used or name == "out":
            continue
        u = used[name]
        if d is None:  # no default shown: an unset string, a false flag, or one described in words
            ok = u is None or u == "false" or "(default:" in dict((r[0], r[1]) for r in rows)[name]
        else:
            ok = same(d, u)
        if not ok:
            mism[name] = (d, u)
    check(not mism, f"{cmd}: each default shown by --help is the value the command uses (help, used: {mism})")
    check(not os.path.exists(os.path.dirname(NOWHERE)), f"{cmd}: no run directory made for a failed start")

for cmd in ["data", "detokenize", "eval", "generate", "init", "logits", "merge", "report", "tokenize"]:
    p = run([cmd, "--help"])
    twice = [l for l in p.stdout.splitlines() if l.count("default") > 1]
    check(p.returncode == 0 and not twice, f"{cmd} --help: no line gives its default twice {twice}")

# ---- 4: YAML config == flags ----
MODEL = init_model(os.path.join(W, "m"), seed=5)
DATA = jsonl(os.path.join(W, "d.jsonl"), [{"prompt": f"q{i} " * (1 + i % 3), "completion": f"{i % 7}."}
                                          for i in range(12)])
VALUES = {
    "base-dtype": "bf16", "tokenizer": MODEL, "eval-split": 0.25, "chat-format": "chatml", "max-seq-len": 48,
    "batch-size": 2, "grad-accum": 2, "steps": 3, "epochs": 3, "lr": 0.002, "lr-end": 0.0001, "schedule": "linear",
    "warmup-steps": 1, "weight-decay": 0.01, "beta1": 0.8, "beta2": 0.99, "adam-eps": 1e-7, "max-grad-norm": 0.5,
    "lora-rank": 2, "lora-alpha": 8, "lora-dropout": 0.1, "rslora": True, "lora-targets": "q_proj,v_proj",
    "eval-every": 1, "save-every": 1, "keep-last": 1, "seed": 7, "resume": True, "precision": "bf16",
    "bf16-matmul": True, "recompute": True,
}


def as_flags(cmd, vals):
    out = []
    for s, v in vals.items():
        if v is True:
            out.append("--" + flag(cmd, s))
        else:
            out += ["--" + flag(cmd, s), str(v)]
    return out


def as_yaml(cmd, vals, path):
    with open(path, "w") as f:
        for i, (s, v) in enumerate(vals.items()):
            key = flag(cmd, s)
            key = key.replace("-", "_") if i % 2 else key   # both spellings
            f.write(f"{key}: {'true' if v is True else v}\n")
    return path


for cmd in TRAINERS:
    vals = {s: VALUES[s] for s in shared_of(cmd).values() if s in VALUES}
    vals.update({"model": os.path.join(W, "absent-model"), "data": DATA, "out": NOWHERE})
    a, _ = printed_config([cmd] + as_flags(cmd, vals))
    y = as_yaml(cmd, vals, os.path.join(W, f"{cmd}.yaml"))
    b, _ = printed_config([cmd, "--config", y])
    check(a and a == b, f"{cmd}: --config YAML and flags print the same configuration "
                        f"{ {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)} }")
    wrong = {flag(cmd, s): (b.get(flag(cmd, s)), v) for s, v in vals.items()
             if not same(b.get(flag(cmd, s)), "true" if v is True else v)}
    check(not wrong, f"{cmd}: the YAML values are the ones used (used, given: {wrong})")

# sft for real, both ways: the manifests' configs and the losses agree
ENV = {"OMP_NUM_THREADS": "1", "TN_PROGRESS": "off"}
vals = dict(VALUES, model=MODEL, data=DATA)
vals.pop("resume")
runs = {}
for how in ("flags", "yaml"):
    out = os.path.join(W, "run_" + how)
    v = dict(vals, out=out)
    args = ["sft"] + (as_flags("sft", v) if how == "flags" else ["--config", as_yaml("sft", v, os.path.join(W, "r.yaml"))])
    ok_run(args, f"sft with every shared option set by {how}", env=ENV)
    with open(os.path.join(out, "run_manifest.json")) as f:
        cfg = json.load(f)["config"]
    runs[how] = (cfg, read_metrics(out))
(ca, ma), (cb, mb) = runs["flags"], runs["yaml"]
for c in (ca, cb):
    c.pop("out", None)
    c.pop("config", None)
check(ca == cb, f"sft: run_manifest.json config is the same from YAML and from flags "
                f"{ {k: (ca.get(k), cb.get(k)) for k in set(ca) | set(cb) if ca.get(k) != cb.get(k)} }")
check(ca.get("lora-targets") == "q_proj,v_proj" and ca.get("seed") == 7 and abs(ca.get("lr", 0) - 0.002) < 1e-9,
      "sft: the manifest holds the given values (lora-targets, seed, lr)")
la = [r.get("loss") for r in ma if "loss" in r]
lb = [r.get("loss") for r in mb if "loss" in r]
check(len(la) == 3 and la == lb, f"sft: 3 steps with the same losses from YAML and from flags ({la} vs {lb})")

# --precision: an unknown value stops every trainer with an error naming the option
for cmd in TRAINERS:
    models = ["--teacher", MODEL, "--student", MODEL] if cmd == "distill" else ["--model", MODEL]
    p = run([cmd] + models + ["--data", DATA, "--out", os.path.join(W, "p_" + cmd), "--precision", "fp16"], env=ENV)
    check(p.returncode != 0 and "--precision" in p.stderr and "fp16" in p.stderr,
          f"{cmd} --precision fp16: a clear error, non-zero exit (rc {p.returncode}, {p.stderr.strip()[-200:]})")

shutil.rmtree(W)
finish()
