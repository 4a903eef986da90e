#!/usr/bin/python3
"""check_data_tools.py - `tunic data math --tools`: the three files, deterministic for a seed;
distinct questions; every answer equals Python's evaluation of the problem's expression, and
the expression's numbers are the question's (3-4 digit factors, 4-digit addends); every SFT
trajectory is user -> assistant calculator call -> tool result (= the answer) -> final answer
`<answer>R</answer>` (nothing else); with --text-calls the call is Hermes text that tunic's own tool-call parser
reads back as the same call, and the trajectory renders with a model's chat template
(`tunic render-chat`) with the assistant turns as the trained spans."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

TUNIC = os.environ["TUNIC"]
fails = []
W = tempfile.mkdtemp(prefix="tn_data_tools_")


def tunic(*a):
    p = subprocess.run([TUNIC, *a], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        fails.append((a, p.returncode, p.stderr))
    return p


def load(d, f):
    return [json.loads(l) for l in open(os.path.join(d, f))]


tunic("data", "math", "--tools", "--n", "400", "--seed", "5", "--out", f"{W}/a", "--quiet")
tunic("data", "math", "--tools", "--n", "400", "--seed", "5", "--out", f"{W}/b", "--quiet")
tunic("data", "math", "--tools", "--n", "400", "--seed", "6", "--out", f"{W}/c", "--quiet")
for f in ("train_sft.jsonl", "train_grpo.jsonl", "test.jsonl"):
    if open(f"{W}/a/{f}").read() != open(f"{W}/b/{f}").read():
        fails.append(("not deterministic", f))
if open(f"{W}/a/test.jsonl").read() == open(f"{W}/c/test.jsonl").read():
    fails.append("seed 6 gave the same problems")
sft, grpo, test = load(f"{W}/a", "train_sft.jsonl"), load(f"{W}/a", "train_grpo.jsonl"), load(f"{W}/a", "test.jsonl")
if (len(sft), len(grpo), len(test)) != (360, 360, 40):
    fails.append(("sizes", len(sft), len(grpo), len(test)))
qs = [r["question"] for r in grpo + test]
if len(set(qs)) != len(qs):
    fails.append("duplicate questions")
for r in grpo + test:
    want = eval(r["expression"], {"__builtins__": {}})
    if r["answer"] != str(want) or r["expected_answer"] != r["answer"] or r["prompt"] != r["question"]:
        fails.append(("answer", r))
    nums = re.findall(r"\d+", r["expression"])
    if [n for n in re.findall(r"\d+", r["question"])] != nums:
        fails.append(("numbers differ between question and expression", r["question"], r["expression"]))
    if max(len(n) for n in nums) < 3 or abs(want) < 1000:
        fails.append(("too easy", r))
for s, g in zip(sft, grpo):
    m = s["messages"]
    roles = [x["role"] for x in m]
    call = m[1].get("tool_calls", [{}])[0].get("function", {})
    if roles != ["user", "assistant", "tool", "assistant"] or m[0]["content"] != g["question"] or \
            call.get("name") != "calculator" or call.get("arguments") != {"expression": g["expression"]} or \
            m[2]["content"] != g["answer"] or m[2]["tool_call_id"] != m[1]["tool_calls"][0]["id"] or \
            m[3]["content"] != f"<answer>{g['answer']}</answer>" or s["tools"][0]["function"]["name"] != "calculator":
        fails.append(("trajectory", s))
# the calculator gives what the trajectories say
r = json.loads(tunic("tool", "run", "calculator", "--args", json.dumps({"expression": grpo[0]["expression"]})).stdout)
if r.get("content") != grpo[0]["answer"]:
    fails.append(("calculator disagrees", r, grpo[0]))

# text calls: parsed back by tunic's own parser; rendered by a model's template
tunic("data", "math", "--tools", "--text-calls", "--n", "50", "--seed", "5", "--out", f"{W}/t", "--quiet")
tunic("init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", f"{W}/model")
for s in load(f"{W}/t", "train_sft.jsonl")[:5]:
    m = s["messages"]
    open(f"{W}/gen.txt", "w").write(m[1]["content"])
    parsed = json.loads(tunic("render-chat", "--model", f"{W}/model", "--parse-tool-calls", f"{W}/gen.txt").stdout)
    want_expr = re.search(r'"expression": "([^"]+)"', m[1]["content"]).group(1)
    if parsed.get("tool_calls", [{}])[0].get("function") != {"name": "calculator", "arguments": {"expression": want_expr}}:
        fails.append(("parse back", parsed))
    json.dump(m, open(f"{W}/m.json", "w"))
    text = tunic("render-chat", "--model", f"{W}/model", "--messages", f"{W}/m.json").stdout
    spans = json.loads(tunic("render-chat", "--model", f"{W}/model", "--messages", f"{W}/m.json", "--spans").stdout.strip().splitlines()[-1])
    raw = text.encode()
    got = [raw[a:b].decode() for a, b in spans]
    if len(got) != 2 or m[1]["content"] not in got[0] or m[3]["content"] not in got[1] or m[2]["content"] not in text:
        fails.append(("render", text, got))

shutil.rmtree(W, ignore_errors=True)
for f in fails:
    print("FAIL", f)
print(f"data math --tools: {len(grpo) + len(test)} problems checked, {len(fails)} failures")
sys.exit(1 if fails else 0)
