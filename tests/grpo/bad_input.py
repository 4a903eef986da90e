#!/usr/bin/python3
"""Issue 5: `tunic grpo` refuses bad input with a clear message, before any step runs.

Each case must exit with status 1 or 2 (no signal, no sanitizer report), with the named strings
in stderr, and leave no run directory behind (nothing was started):
  - a prompt file whose 3rd line has no "answer" (nor "expected_answer") while the answer reward
    is on (default rewards; and --reward numeric:1) -> "FILE:3" and 'answer';
    the same file with --reward format_exact:1 (no reference needed) runs;
  - --reward with an unknown name -> the name and the list of known rewards;
  - --num-generations 1 (and 0) -> num_generations;
  - --loss-agg / --kl-estimator / --scale-rewards with unknown values -> the value;
  - a line that is not JSON -> FILE:LINE; an empty prompt file -> "no prompts";
  - a reward process that prints garbage -> the command and what it printed;
  - issue 12: a reward process printing endlessly without a newline (bounded line), trickling
    bytes (partial output does not restart --reward-cmd-timeout), two lines per request (caught
    in the same step, before any reward is used); --reward-cmd-timeout out of range; --help says
    /bin/sh -c; --batch-size 1025 runs (fixed 1024-entry arrays segfaulted).
Also: prompts longer than --max-prompt-length run, but stderr warns with the file, how many of
how many prompts lose their first tokens, and the limit (a silent cut hid a third of the demo's
prompts' first sentence once).
"""
import json
import os

from common_grpo import check, expect_error, finish, grpo, init_model, run, workdir

W = workdir("grpobad")
MODEL = init_model(os.path.join(W, "m"), seed=2)
rows = [{"prompt": "What is 2 + 3?", "answer": "5"}, {"prompt": "What is 4 + 4?", "answer": 8},
        {"prompt": "What is 1 + 1?"}, {"prompt": "What is 9 - 2?", "expected_answer": "7"}]
NOANS = os.path.join(W, "noans.jsonl")
with open(NOANS, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
GOOD = os.path.join(W, "good.jsonl")
with open(GOOD, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows if "answer" in r or "expected_answer" in r)
n = [0]


def bad(what, data, extra, must):
    n[0] += 1
    out = os.path.join(W, f"out{n[0]}")
    expect_error(["grpo", "--model", MODEL, "--data", data, "--out", out, "--steps", 1, "--batch-size", 2,
                  "--num-generations", 2, "--max-tokens-to-generate", 4, *extra], what, must)
    check(not os.path.exists(out), f"{what}: no run directory left behind")


bad("missing answer, default rewards", NOANS, [], [f"{NOANS}:3", "'answer'"])
bad("missing answer, numeric reward", NOANS, ["--reward", "numeric:1"], [f"{NOANS}:3", "'answer'", "numeric"])
grpo(MODEL, NOANS, os.path.join(W, "fmt"), "--steps", 1, "--batch-size", 2, "--num-generations", 2,
     "--max-tokens-to-generate", 4, "--reward", "format_exact:1", what="missing answer but no answer-based reward: runs")
bad("unknown reward name", GOOD, ["--reward", "format_exact:1,corectness:2"], ["corectness", "format_exact, format_approx"])
bad("num_generations 1", GOOD, ["--num-generations", 1], ["--num-generations 1", "out of range"])
bad("num_generations 0", GOOD, ["--num-generations", 0], ["--num-generations 0", "out of range"])
bad("unknown loss aggregation", GOOD, ["--loss-agg", "seq-mean"], ["seq-mean", "token-mean"])
bad("unknown KL estimator", GOOD, ["--kl-estimator", "k2"], ["k2", "k3"])
bad("unknown reward scaling", GOOD, ["--scale-rewards", "global"], ["global", "group"])
NOTJSON = os.path.join(W, "notjson.jsonl")
with open(NOTJSON, "w") as f:
    f.write(json.dumps(rows[0]) + "\n\n{\"prompt\": \"x\", \"answer\": 1\n")
bad("line that is not JSON", NOTJSON, [], [f"{NOTJSON}:3"])
EMPTY = os.path.join(W, "empty.jsonl")
open(EMPTY, "w").close()
bad("empty prompt file", EMPTY, [], [EMPTY, "no prompts"])
n[0] += 1
out = os.path.join(W, f"out{n[0]}")
expect_error(["grpo", "--model", MODEL, "--data", GOOD, "--out", out, "--steps", 1, "--batch-size", 2,
              "--num-generations", 2, "--max-tokens-to-generate", 4, "--reward", "format_exact:1",
              "--reward-cmd", "echo banana"], "reward process printing garbage", ["echo banana", "banana"])


# --- issue 12: the reward process. Each must fail cleanly before step 1 is logged (no reward of
# the batch used), naming the command.
def bad_cmd(what, cmd, must, extra=(), timeout=60):
    n[0] += 1
    out = os.path.join(W, f"out{n[0]}")
    p = expect_error(["grpo", "--model", MODEL, "--data", GOOD, "--out", out, "--steps", 2, "--batch-size", 2,
                      "--num-generations", 2, "--max-tokens-to-generate", 4, "--reward", "format_exact:1",
                      "--reward-cmd", cmd, *extra], what, [cmd, *must], timeout=timeout)
    check("grpo step 1" not in p.stdout, f"{what}: stopped before step 1 was logged")
    mpath = os.path.join(out, "metrics.jsonl")
    check(not os.path.exists(mpath) or not open(mpath).read().strip(), f"{what}: no metrics row written")


# endless output without a newline: bounded line, not unbounded memory then SIGSEGV
bad_cmd("reward command printing endlessly without a newline", "read l; yes 1 | tr -d '\\n'",
        ["more than 4096 bytes without a newline", "line 1"])
# a byte every 0.2 s without a newline: partial output does not restart the timeout
bad_cmd("reward command trickling bytes", "read l; while true; do printf 1; sleep 0.2; done", ["within 1 s", "--reward-cmd-timeout"],
        ["--reward-cmd-timeout", 1], timeout=30)
# two lines per request: caught in the step's own batch (step 1 used to train on misaligned rewards)
bad_cmd("reward command printing two lines per request (shell, reads line by line)",
        "while read l; do echo 1; echo 0; sleep 0.05; done", ["one line per request"])
bad_cmd("reward command printing two lines per request (python, buffered stdin)",
        "/usr/bin/python3 -c 'import sys, time\nfor l in sys.stdin: print(1); print(0); time.sleep(0.05)'",
        ["one line per request"])
# a well-behaved process still runs (no false alarm from the grace period or the unread check)
grpo(MODEL, GOOD, os.path.join(W, "cmdok"), "--steps", 2, "--batch-size", 2, "--num-generations", 2,
     "--max-tokens-to-generate", 4, "--reward", "format_exact:1", "--reward-cmd",
     "/usr/bin/python3 -c 'import sys\nfor l in sys.stdin: print(0.5)'", what="one line per request: runs")
for v in ("0", "-1", "nan"):
    bad(f"--reward-cmd-timeout {v}", GOOD, ["--reward-cmd", "cat", "--reward-cmd-timeout", v],
        [f"--reward-cmd-timeout {v}", "out of range"])
h = run(["grpo", "--help"])
check("/bin/sh -c" in h.stdout and "--reward-cmd-timeout" in h.stdout,
      "grpo --help says the reward command runs through /bin/sh -c and lists --reward-cmd-timeout")
bad("batch x generations x length beyond 2^31 rows", GOOD, ["--batch-size", 65536, "--num-generations", 65536],
    ["below 2^31"])
# --batch-size above the old fixed 1024-entry arrays runs (it segfaulted)
grpo(MODEL, GOOD, os.path.join(W, "big"), "--steps", 1, "--batch-size", 1025, "--num-generations", 2,
     "--max-tokens-to-generate", 1, "--reward", "format_exact:1", "--beta", 0, "--max-prompt-length", 8,
     what="--batch-size 1025 (more than 1024 prompts per step)")

p = grpo(MODEL, GOOD, os.path.join(W, "cut"), "--steps", 1, "--batch-size", 2, "--num-generations", 2,
         "--max-tokens-to-generate", 4, "--reward", "format_exact:1", "--max-prompt-length", 12,
         what="prompts longer than max_prompt_length: runs")
check(f"{GOOD}: 3 of 3 prompts are longer than max_prompt_length (12 tokens)" in p.stderr,
      f"truncation warning names the file and counts (stderr: {p.stderr[-300:]!r})")
p = grpo(MODEL, GOOD, os.path.join(W, "whole"), "--steps", 1, "--batch-size", 2, "--num-generations", 2,
         "--max-tokens-to-generate", 4, "--reward", "format_exact:1", what="prompts within max_prompt_length")
check("max_prompt_length" not in p.stderr, "no truncation warning when every prompt fits")
finish()
