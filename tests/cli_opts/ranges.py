#!/usr/bin/python3
"""Issue 12: every numeric option of every command has one range rule, the same for flags and
--config YAML, written down in docs/options.md.

For every command, the numeric options are read from its --help (" N" / " X" after the name),
and the rule that applies is read from the table in docs/options.md (a row for this command
first, else the row for all). For each option:
  - a row exists (an option added without a rule fails here);
  - each bound inside the range is accepted (no "out of range" / "not a valid" on stderr; the
    command still fails later for the missing --model etc., which is fine);
  - values just outside each bound are refused: exit status 2, no signal, and stderr naming
    `--NAME` (a value beyond the int range or a negative unsigned one is refused by the parser,
    also naming the option);
  - for float options also nan, inf and -1e30;
  - for the trainers, the same out-of-range value as a YAML key (NAME with '_') is refused
    naming FILE:LINE and the option.
Then the values the issue lists by name, each refused by the command it names.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from common import SRC, check, finish, run, sanitizer_report, workdir  # noqa: E402

CMDS = ["sft", "dpo", "distill", "grpo", "ppo", "generate", "eval", "report", "init", "merge", "logits", "tokenize",
        "detokenize", "train-tokenizer", "data math", "serve"]
TRAINERS = {"sft", "dpo", "distill", "grpo", "ppo"}
W = workdir("ranges")

rules = {}  # (name, cmd or None) -> (lo, hi, lo_open, hi_open)
with open(os.path.join(SRC, "docs", "options.md")) as f:
    for line in f:
        m = re.match(r"\| `--([a-z0-9-]+)` \| ([a-z -]+) \| ([\[(])([^,]+), ([^\])]+)([\])]) \|", line)
        if not m:
            continue
        name, cmd, lb, lo, hi, rb = m.groups()
        num = lambda s: 2 ** 64 - 1 if s == "2^64-1" else float(s)  # noqa: E731 (exact for the seed)
        rules[(name, None if cmd == "all" else cmd)] = (num(lo), num(hi), lb == "(", rb == ")")
check(len(rules) >= 60, f"docs/options.md: {len(rules)} rule rows parsed")


def numeric_options(cmd):
    p = run(cmd.split() + ["--help"])
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^\s+--([a-z0-9-]+) ([NX])\b", p.stdout, re.M)]


def text(x, kind):
    if kind == "N":
        return str(int(x))
    return repr(float(x)) if abs(x) < 1e15 else "%.17g" % x


def refused(p, name, key=None):
    """exit 2 naming the option (--NAME; a YAML type error names the KEY)"""
    named = f"--{name}" in p.stderr or (key is not None and f" {key}: " in p.stderr)
    return p.returncode == 2 and not sanitizer_report(p) and named and \
        ("out of range" in p.stderr or "not a valid" in p.stderr)


def accepted(p):
    return p.returncode >= 0 and "out of range" not in p.stderr and "not a valid" not in p.stderr and \
        "no range rule" not in p.stderr


n_opts = n_runs = 0
for cmd in CMDS:
    for name, kind in numeric_options(cmd):
        rule = rules.get((name, cmd)) or rules.get((name, None))
        if not check(rule is not None, f"{cmd} --{name}: a rule in docs/options.md"):
            continue
        n_opts += 1
        lo, hi, lo_open, hi_open = rule
        ok_vals, bad_vals = [], []
        if kind == "N":
            (bad_vals if lo_open else ok_vals).append(int(lo))
            bad_vals.append(int(lo) - 1)
            ok_vals.append(int(hi))
            bad_vals.append(int(hi) + 1)
        else:
            d = max(1e-3, abs(lo) * 1e-3)
            ok_vals += [lo + d] if lo_open else [lo]
            bad_vals += [lo] if lo_open else [lo - d]
            d = max(1e-3, abs(hi) * 1e-3)
            ok_vals += [hi - d] if hi_open else [hi]
            bad_vals += [hi] if hi_open else [hi + d]
        for v in ok_vals:
            p = run(cmd.split() + [f"--{name}", text(v, kind)])
            n_runs += 1
            if not check(accepted(p), f"{cmd} --{name} {text(v, kind)}: accepted (in {rule[:2]})"):
                print("    stderr: " + p.stderr.strip()[-300:])
        bad_text = [text(v, kind) for v in bad_vals] + (["nan", "inf", "-1e30"] if kind == "X" else [])
        for v in bad_text:
            p = run(cmd.split() + [f"--{name}", v])
            n_runs += 1
            if not check(refused(p, name), f"{cmd} --{name} {v}: refused naming the option"):
                print(f"    exit {p.returncode}, stderr: " + p.stderr.strip()[-300:])
        if cmd in TRAINERS:  # the same rule through the run config
            y = os.path.join(W, f"{cmd}_{name}.yaml")
            with open(y, "w") as f:
                f.write("# one key, out of range\n" + name.replace("-", "_") + ": " + bad_text[-1 if kind == "X" else 0] + "\n")
            p = run([cmd, "--config", y])
            n_runs += 1
            if not check(refused(p, name, name.replace("-", "_")) and f"{y}:2" in p.stderr, f"{cmd} YAML {name}: refused naming {y}:2"):
                print(f"    exit {p.returncode}, stderr: " + p.stderr.strip()[-300:])
print(f"{n_opts} numeric options over {len(CMDS)} commands, {n_runs} runs")
check(n_opts >= 100, f"at least 100 (command, numeric option) pairs found in --help ({n_opts})")

# the values issue 12 names
for args in (["sft", "--lora-rank", "-1"], ["sft", "--steps", "-5"], ["sft", "--epochs", "0"],
             ["dpo", "--max-grad-norm", "nan"], ["sft", "--eval-split", "nan"], ["grpo", "--temperature", "-1"],
             ["grpo", "--temperature", "nan"], ["generate", "--temperature", "nan"], ["grpo", "--top-p", "0"],
             ["grpo", "--top-p", "2"], ["grpo", "--top-p", "nan"], ["grpo", "--top-k", "-5"],
             ["generate", "--min-p", "5"], ["grpo", "--batch-size", "0"], ["generate", "--seed", "-5"]):
    p = run(args)
    check(refused(p, args[1][2:]) and args[2] in p.stderr, f"{' '.join(args)}: refused naming option and value")
    if p.returncode != 2:
        print("    stderr: " + p.stderr.strip()[-300:])
finish()
