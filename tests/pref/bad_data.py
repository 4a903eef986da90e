#!/usr/bin/python3
"""Bad preference data for `tunic dpo`: each case fails cleanly (exit 1/2, no signal, no
sanitizer report) with a message naming the file (and line where there is one)."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from common import expect_error, finish, init_model, ok_run, workdir  # noqa: E402

W = workdir("prefbad")
BASE = init_model(os.path.join(W, "m"), seed=1)
good = {"prompt": "1+1?", "chosen": "2.", "rejected": "Sorry, I think it is 2."}


def write(name, lines):
    p = os.path.join(W, name)
    with open(p, "w") as f:
        f.write("".join(l + "\n" for l in lines))
    return p


def dpo(data, out):
    return ["dpo", "--model", BASE, "--data", data, "--out", os.path.join(W, out), "--steps", 1, "--batch-size", 1]


ok_run(dpo(write("ok.jsonl", [json.dumps(good)] * 2), "ok"), "well-formed pairs train", env={"TN_PROGRESS": "off"})
p = write("broken.jsonl", [json.dumps(good), '{"prompt": "2+2?", "chosen": "4.", "rejected": '])
expect_error(dpo(p, "o1"), "truncated JSON line", [p + ":2", "invalid JSON"])
p = write("trailing.jsonl", [json.dumps(good) + ' {"x": 1}'])
expect_error(dpo(p, "o2"), "text after the object", [p + ":1", "invalid JSON"])
p = write("array.jsonl", [json.dumps(good), "[1, 2]"])
expect_error(dpo(p, "o3"), "a line that is not an object", [p + ":2", "expected a JSON object"])
p = write("nofield.jsonl", [json.dumps(good), json.dumps({"prompt": "x", "chosen": "y"})])
expect_error(dpo(p, "o4"), "missing 'rejected'", [p + ":2", '"rejected"'])
p = write("mixed.jsonl", [json.dumps({"prompt": "x", "chosen": "y", "rejected": [{"role": "assistant", "content": "z"}]})])
expect_error(dpo(p, "o5"), "string vs message list", [p + ":1", "must both be strings or both message lists"])
p = write("empty.jsonl", ["", "   "])
expect_error(dpo(p, "o6"), "no pairs", [p, "no usable preference pairs"])
expect_error(dpo(os.path.join(W, "missing.jsonl"), "o7"), "missing file", ["missing.jsonl"])
finish()
