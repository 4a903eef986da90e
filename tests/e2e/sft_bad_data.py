#!/usr/bin/python3
"""Issue 4: `tunic sft --data FILE.jsonl` with bad lines: each is an error naming FILE:LINE (the
line number of the bad line, counting blank lines), exit 1 or 2, no crash, and no training step
taken (no metrics line, no checkpoint). Also --eval-data, and a token id beyond the model's
vocabulary (tokenizer and model disagree). Good lines around the bad one make sure the error is
about that line, and a good file with the same shapes is checked to train.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, expect_error, finish, init_model, ok_run, workdir

W = workdir("baddata")
MODEL = init_model(os.path.join(W, "m"), seed=8)
ENV = {"OMP_NUM_THREADS": "1"}
GOOD = '{"prompt": "2+2=", "completion": " 4"}'


def data(name, lines):
    p = os.path.join(W, name + ".jsonl")
    with open(p, "w") as f:
        f.write("\n".join(lines) + "\n")
    return p


def no_steps(out, label):
    check(not os.path.exists(os.path.join(out, "metrics.jsonl")) or os.path.getsize(
        os.path.join(out, "metrics.jsonl")) == 0, f"{label}: no training step recorded")
    check(not os.path.isdir(os.path.join(out, "checkpoints")), f"{label}: no checkpoint")


good = data("good", [GOOD, '{"text": "hello"}', "", '{"messages": [{"role": "user", "content": "hi"}, '
                                                    '{"role": "assistant", "content": "hello"}]}'])
ok_run(["sft", "--model", MODEL, "--data", good, "--out", os.path.join(W, "ok"), "--steps", 1], "good data trains",
       env=ENV)

cases = [
    ("malformed JSON", [GOOD, GOOD, '{"prompt": "a", "completion": "b"'], 3, []),
    ("malformed JSON after a blank line", [GOOD, "", '{"text": "a",}'], 3, []),
    ("not an object", [GOOD, "[1, 2, 3]"], 2, ["object"]),
    ("text after the object", [GOOD, '{"text": "a"} {"text": "b"}'], 2, []),
    ("no known fields", [GOOD, GOOD, GOOD, '{"query": "a", "reply": "b"}'], 4, ["no known SFT schema", "query, reply", "--field-map"]),
    ("a published schema among prompt-completion rows", [GOOD, GOOD, '{"question": "a", "answer": "b"}'], 3, ["gsm8k", "prompt-completion"]),
    ("prompt without completion", ['{"prompt": "a"}'], 1, ["completion"]),
    ("completion not a string", [GOOD, '{"prompt": "a", "completion": 3}'], 2, ["completion"]),
    ("text not a string", ['{"text": ["a"]}'], 1, ["text"]),
    ("messages not a list", [GOOD, '{"messages": "hi"}'], 2, ["messages"]),
    ("message without content", ['{"messages": [{"role": "user"}]}'], 1, ["content"]),
    ("tunix prompts without a model turn", ['{"prompts": "<start_of_turn>user\\nhi<end_of_turn>\\n"}'], 1,
     ["model"]),
]
for i, (label, lines, bad_line, extra) in enumerate(cases):
    f = data(f"bad{i}", lines)
    out = os.path.join(W, f"out{i}")
    p = expect_error(["sft", "--model", MODEL, "--data", f, "--out", out, "--steps", 1], label,
                     [f"bad{i}.jsonl:{bad_line}:"] + extra, env=ENV)
    # the line number must be the bad line's, not another one
    others = [n for n in range(1, len(lines) + 2) if n != bad_line and f"bad{i}.jsonl:{n}:" in p.stderr]
    check(not others, f"{label}: no other line is blamed ({others})")
    no_steps(out, label)

# a bad eval file is named as well
ev = data("eval_bad", [GOOD, "{oops}"])
expect_error(["sft", "--model", MODEL, "--data", good, "--eval-data", ev, "--out", os.path.join(W, "ev"),
              "--steps", 1], "bad --eval-data", ["eval_bad.jsonl:2:"], env=ENV)
# empty file, missing file
empty = data("empty", [""])
expect_error(["sft", "--model", MODEL, "--data", empty, "--out", os.path.join(W, "e"), "--steps", 1],
             "no examples", ["empty.jsonl"], env=ENV)
expect_error(["sft", "--model", MODEL, "--data", os.path.join(W, "absent.jsonl"), "--out", os.path.join(W, "e2"),
              "--steps", 1], "missing data file", ["absent.jsonl"], env=ENV)
# a model whose vocabulary is smaller than the tokenizer's ids (byte tokenizer needs 261 ids)
small = init_model(os.path.join(W, "small"), seed=8, extra=("--override", '{"vocab_size": 200}'))
expect_error(["sft", "--model", small, "--data", good, "--out", os.path.join(W, "v"), "--steps", 1],
             "token id outside the vocabulary", ["good.jsonl", "vocabulary"], env=ENV)

shutil.rmtree(W)
finish()
