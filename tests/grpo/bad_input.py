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
  - a reward process that prints garbage -> the command and what it printed.
Also: prompts longer than --max-prompt-length run, but stderr warns with the file, how many of
how many prompts lose their first tokens, and the limit (a silent cut hid a third of the demo's
prompts' first sentence once).
"""
import json
import os

from common_grpo import check, expect_error, finish, grpo, init_model, workdir

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
bad("num_generations 1", GOOD, ["--num-generations", 1], ["num_generations"])
bad("num_generations 0", GOOD, ["--num-generations", 0], ["num_generations"])
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
p = grpo(MODEL, GOOD, os.path.join(W, "cut"), "--steps", 1, "--batch-size", 2, "--num-generations", 2,
         "--max-tokens-to-generate", 4, "--reward", "format_exact:1", "--max-prompt-length", 12,
         what="prompts longer than max_prompt_length: runs")
check(f"{GOOD}: 3 of 3 prompts are longer than max_prompt_length (12 tokens)" in p.stderr,
      f"truncation warning names the file and counts (stderr: {p.stderr[-300:]!r})")
p = grpo(MODEL, GOOD, os.path.join(W, "whole"), "--steps", 1, "--batch-size", 2, "--num-generations", 2,
         "--max-tokens-to-generate", 4, "--reward", "format_exact:1", what="prompts within max_prompt_length")
check("max_prompt_length" not in p.stderr, "no truncation warning when every prompt fits")
finish()
