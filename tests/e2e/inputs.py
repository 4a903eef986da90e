#!/usr/bin/python3
"""Issue 12, "defects found by trying it as a hostile or careless user would": inputs that are
numbers or text tunic cannot use, and outputs that would overwrite what tunic did not write.
Each case failed (or silently did the wrong thing) before the fix; docs/options.md has the rules.

  - NaN/Inf in the weights: `generate` (greedy and sampled) fails cleanly with a message that the
    logits are not finite, naming prompt/sample/token (was: a token picked around the NaN, or a
    read of logits[-1]). A NaN only in an embedding row no prompt uses does not matter (no scan
    at load), the row used does.
  - `logits --out x.json` of such a model is JSON that a strict parser reads (null, no bare nan).
  - eval data holding invalid UTF-8: the results and summary files are valid UTF-8 (U+FFFD); grpo
    with such a prompt and --system-prompt: its reward process (strict UTF-8 JSON decoding),
    run_manifest.json and --dump-rollouts see valid UTF-8.
  - a \\u0000 (or raw NUL) inside a JSONL string: an error naming FILE:LINE (was: cut there).
  - --out of init, merge, data math, train-tokenizer, report, eval, logits on foreign files:
    refused naming the path, the foreign files untouched; the command's own earlier output is
    replaced without --force; --force overwrites; merge --out = --model is refused.
"""
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import TUNIC, check, copy_model, expect_error, finish, init_model, ok_run, run, st_tensors, st_write, workdir

W = workdir("inputs")
GOOD = init_model(os.path.join(W, "good"), seed=5)
ST = "model.safetensors"


def with_tensor(name, dst, fn):
    d = copy_model(GOOD, os.path.join(W, dst))
    t = st_tensors(os.path.join(d, ST))
    dt, shape, b = t[name]
    vals = list(struct.unpack(f"<{len(b) // 4}f", b))
    fn(vals, shape)
    t[name] = (dt, shape, struct.pack(f"<{len(vals)}f", *vals))
    st_write(os.path.join(d, ST), t)
    return d


def strict_json(text):
    def no_constant(c):
        raise ValueError(f"bare {c} in JSON")
    return json.loads(text, parse_constant=no_constant)


# ---- NaN / Inf weights ----
# NaN/Inf weights are refused at load (naming the tensor); finite weights so large that the
# forward overflows reach the sampler with non-finite logits
NAN_NORM = with_tensor("model.norm.weight", "nan_norm", lambda v, s: v.__setitem__(slice(None), [3e38] * len(v)))
INF_NORM = with_tensor("model.norm.weight", "inf_norm", lambda v, s: v.__setitem__(slice(None), [-3e38] * len(v)))
REAL_NAN = with_tensor("model.norm.weight", "real_nan", lambda v, s: v.__setitem__(0, float("nan")))
expect_error(["generate", "--model", REAL_NAN, "--ids", "1,2,3", "--max-new-tokens", "3"],
             "a model with a NaN weight is refused at load", ["model.norm.weight", "non-finite"])
# token 7's embedding row only (tied head: the logit of token 7 too; so prompts without 7 still see NaN)
for d, what in ((NAN_NORM, "final norm 3e38 (overflow)"), (INF_NORM, "final norm -3e38 (overflow)")):
    for extra in ([], ["--temperature", "1", "--seed", "3"], ["--temperature", "0.7", "--top-p", "0.9"]):
        expect_error(["generate", "--model", d, "--ids", "1,2,3", "--max-new-tokens", "3", "--json", *extra],
                     f"generate on a model with {what} {' '.join(extra) or 'greedy'}",
                     ["logits are not finite", "prompt 0, sample 0, token 1"])
ok_run(["generate", "--model", GOOD, "--ids", "1,2,3", "--max-new-tokens", "3", "--json"], "the good model generates")

out = os.path.join(W, "nan_logits.json")
ok_run(["logits", "--model", NAN_NORM, "--ids", "1,2,3", "--out", out], "logits of the NaN model are written")
with open(out) as f:
    txt = f.read()
try:
    j = strict_json(txt)
    rows = j["logits"][0]
    check(all(x is None for r in rows for x in r), "logits --out x.json: every NaN logit is null (strict JSON parser)")
except ValueError as e:
    check(False, f"logits --out x.json is valid JSON ({e})")

# ---- invalid UTF-8 and NUL in JSONL input ----
# JSON text is UTF-8 (RFC 8259): a data line with ill-formed UTF-8 is refused, naming FILE:LINE
# and the column (text that the model itself generates may still be ill-formed: outputs replace it)
data = os.path.join(W, "eval_bad_utf8.jsonl")
with open(data, "wb") as f:
    f.write(b'{"id": "b", "prompt": "What is 1 + 1?", "answer": "2"}\n')
    f.write(b'{"id": "a", "prompt": "caf\xe9 \xff\xfe ok", "answer": "1", "category": "c\xc3"}\n')
expect_error(["eval", "--model", GOOD, "--data", data, "--out", os.path.join(W, "res.jsonl"), "--max-new-tokens", "2"],
             "eval data with invalid UTF-8", [f"{data}:2", "invalid UTF-8"])
good_data = os.path.join(W, "eval_good.jsonl")
with open(good_data, "w") as f:
    f.write('{"id": "b", "prompt": "What is 1 + 1?", "answer": "2", "category": "caf\u00e9"}\n')
res = os.path.join(W, "res.jsonl")  # eval results, used below as report input
ok_run(["eval", "--model", GOOD, "--data", good_data, "--out", res, "--max-new-tokens", "2", "--quiet"], "eval on valid data")

# grpo: a system prompt with invalid UTF-8 (a flag, not JSON); the reward process decodes its
# stdin strictly (Python's default), the manifest and the rollout dump are JSON files: all valid UTF-8
gdata = os.path.join(W, "grpo_utf8.jsonl")
with open(gdata, "wb") as f:
    f.write(b'{"prompt": "What is 1 + 1?", "answer": "2"}\n{"prompt": "What is 2 + 2?", "answer": "4"}\n')
strict = "/usr/bin/python3 -c 'import sys, json\nfor l in sys.stdin: json.loads(l); print(1.0, flush=True)'"
grun = os.path.join(W, "grpo_utf8")
pg = subprocess.run([TUNIC, "grpo", "--model", GOOD, "--data", gdata, "--out", grun, "--steps", "1", "--batch-size", "2",
                     "--num-generations", "2", "--max-tokens-to-generate", "2", "--reward", "format_exact:1",
                     "--reward-cmd", strict, "--system-prompt", b"answer \xc3 briefly", "--dump-rollouts",
                     os.path.join(W, "roll.jsonl")], capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
check(pg.returncode == 0, f"grpo with invalid UTF-8 in --system-prompt, strict reward process: exit 0 "
      f"(got {pg.returncode}: {pg.stderr[-300:]!r})")
for path in (os.path.join(grun, "run_manifest.json"), os.path.join(W, "roll.jsonl")):
    try:
        open(path, "rb").read().decode("utf-8")
        check(True, f"{os.path.basename(path)} is valid UTF-8")
    except (OSError, UnicodeDecodeError) as e:
        check(False, f"{os.path.basename(path)} is valid UTF-8 ({e})")

for name, line in (("escape", '{"id": "a", "prompt": "cut\\u0000here", "answer": "1"}\n'),
                   ("raw", '{"id": "a", "prompt": "cut\x00here", "answer": "1"}\n')):
    p = os.path.join(W, f"nul_{name}.jsonl")
    with open(p, "w") as f:
        f.write('{"id": "z", "prompt": "fine", "answer": "1"}\n' + line)
    expect_error(["eval", "--model", GOOD, "--data", p, "--out", os.path.join(W, f"nul_{name}_res.jsonl")],
                 f"eval data with a {name} NUL in a string", [f"{p}:2", "NUL"])
    sft = os.path.join(W, f"nul_{name}_sft.jsonl")
    with open(sft, "w") as f:
        f.write('{"prompt": "a", "completion": "b"}\n' + line.replace('"id": "a", ', "").replace('"answer": "1"', '"completion": "x"'))
    expect_error(["sft", "--model", GOOD, "--data", sft, "--out", os.path.join(W, f"nul_{name}_run"), "--steps", "1"],
                 f"sft data with a {name} NUL in a string", [f"{sft}:2", "NUL"])
q = os.path.join(W, "literal.jsonl")  # an escaped backslash before u0000 is text, not NUL
with open(q, "w") as f:
    f.write('{"id": "a", "prompt": "a \\\\u0000 b", "answer": "1"}\n')
ok_run(["eval", "--model", GOOD, "--data", q, "--out", os.path.join(W, "lit.jsonl"), "--max-new-tokens", "1", "--quiet"],
       "eval data with the text \\\\u0000 (escaped backslash) runs")


# ---- outputs over foreign files ----
def foreign_dir(name, files=("README.md",)):
    d = os.path.join(W, name)
    os.makedirs(d)
    for fn in files:
        with open(os.path.join(d, fn), "w") as f:
            f.write("precious\n")
    return d


def untouched(d, what, files=("README.md",)):
    ok = all(open(os.path.join(d, fn)).read() == "precious\n" for fn in files)
    check(ok and sorted(os.listdir(d)) == sorted(files), f"{what}: the foreign files are untouched, nothing added")


d = foreign_dir("init_foreign", ("README.md", "config.json"))
expect_error(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", d], "init into a foreign directory",
             [d, "README.md", "--force"])
untouched(d, "init", ("README.md", "config.json"))
ok_run(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", d, "--force"], "init --force")
own = init_model(os.path.join(W, "own"), seed=1)
ok_run(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", own, "--seed", "2"],
       "init again into its own output (no --force needed)")

expect_error(["merge", "--model", GOOD, "--adapter", os.path.join(W, "no_adapter"), "--out", GOOD],
             "merge --out = --model", ["is the --model directory", "--force"])
d = foreign_dir("merge_foreign")
expect_error(["merge", "--model", GOOD, "--adapter", os.path.join(W, "no_adapter"), "--out", d],
             "merge into a foreign directory", [d, "README.md"])
untouched(d, "merge")

d = foreign_dir("data_foreign")
expect_error(["data", "math", "--n", "20", "--out", d, "--quiet"], "data math into a foreign directory", [d, "README.md"])
untouched(d, "data math")
dm = os.path.join(W, "data_own")
ok_run(["data", "math", "--n", "20", "--out", dm, "--quiet"], "data math")
ok_run(["data", "math", "--n", "20", "--seed", "2", "--out", dm, "--quiet"], "data math again into its own output")

d = foreign_dir("tok_foreign")
expect_error(["train-tokenizer", "--data", os.path.join(dm, "test.jsonl"), "--vocab-size", "300", "--out", d],
             "train-tokenizer into a foreign directory", [d, "README.md"])
untouched(d, "train-tokenizer")

d = foreign_dir("report_foreign")
expect_error(["report", "--before", res, "--after", res, "--out", d, "--no-plots"], "report into a foreign directory",
             [d, "README.md"])
untouched(d, "report")

precious = os.path.join(W, "precious.txt")
with open(precious, "w") as f:
    f.write("precious\n")
expect_error(["eval", "--model", GOOD, "--data", data, "--out", precious, "--max-new-tokens", "1"],
             "eval --out over a foreign file", [precious, "--force"])
expect_error(["eval", "--model", GOOD, "--data", data, "--out", res, "--summary", precious, "--max-new-tokens", "1"],
             "eval --summary over a foreign file", [precious, "--force"])
expect_error(["logits", "--model", GOOD, "--ids", "1,2", "--out", precious], "logits --out over a foreign file",
             [precious, "--force"])
check(open(precious).read() == "precious\n", "the foreign file is untouched")
expect_error(["logits", "--model", GOOD, "--ids", "1,2", "--out", W], "logits --out on a directory", [W, "directory"])
clean = os.path.join(W, "eval_clean.jsonl")
with open(clean, "w") as f:
    f.write('{"id": "b", "prompt": "What is 1 + 1?", "answer": "2"}\n')
ok_run(["eval", "--model", GOOD, "--data", clean, "--out", res, "--max-new-tokens", "1", "--quiet"],
       "eval again over its own results and summary")
ok_run(["logits", "--model", GOOD, "--ids", "1,2", "--out", out], "logits again over its own output")
ok_run(["logits", "--model", GOOD, "--ids", "1,2", "--out", precious, "--force"], "logits --force over a foreign file")
check(open(precious).read().startswith('{"logits":'), "--force overwrote it")
finish()
