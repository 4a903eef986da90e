#!/usr/bin/python3
"""Issue 12, "Bad input gets a clear error": crafted files that the fuzzers' parsers must refuse
through the CLI with a message naming the file (and line, field or tensor) and exit status 1 or
2, never a signal or a sanitizer report (run the SAN build to get the sanitizer half). Cases not
already in bad_model.py (truncated / lying safetensors headers, out-of-range and overlapping
offsets, wrong-typed config fields) or sft_nan.py (NaN/Inf weights in F32):
  - a safetensors shape whose element count overflows 64 bits, and one of 2^62 elements;
  - config.json sizes no machine can hold (hidden_size 2e9, num_hidden_layers 1e6, a product
    of sizes above 2^40 parameters);
  - config.json nested 100000 deep; a 20 MB config.json (a long junk field: loads);
  - tokenizer.json nested 100000 deep, and one with a vocabulary id of 2^40;
  - Inf in a BF16 weight;
  - SFT data with invalid UTF-8, a raw NUL byte, a line nested 100000 deep;
  - a YAML run config with exponentially expanding anchors (billion laughs) and 200 levels of
    mappings; a rubric with the same anchors;
  - a PEFT adapter_config.json with r = 1e300 and layers_to_transform = 1e300.
Each case must also finish within its timeout (no exponential blow-up)."""
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (check, copy_model, expect_error, finish, init_model, jsonl, ok_run, run, st_tensors, st_write,
                    st_write_raw, workdir)

W = workdir("badinput")
GOOD = init_model(os.path.join(W, "good"), seed=3)
ST, CFG = "model.safetensors", "config.json"
n_case = 0


def variant(name):
    global n_case
    n_case += 1
    return copy_model(GOOD, os.path.join(W, f"{n_case:02d}-{name}"))


def logits_fails(d, what, must):
    t0 = time.time()
    p = expect_error(["logits", "--model", d, "--ids", "1,2,3", "--out", os.path.join(d, "out.json")], what, must)
    check(time.time() - t0 < 60, f"{what}: refused within 60 s")
    return p


def edit_config(d, fn):
    path = os.path.join(d, CFG)
    with open(path) as f:
        c = json.load(f)
    fn(c)
    with open(path, "w") as f:
        json.dump(c, f)


# ---- safetensors: shape products
for label, shape in (("overflow", [1 << 40, 1 << 40, 1 << 10]), ("2^62", [1 << 31, 1 << 31])):
    d = variant("shape-" + label)
    st_write_raw(os.path.join(d, ST), {"x": {"dtype": "F32", "shape": shape, "data_offsets": [0, 16]}}, b"\0" * 16)
    logits_fails(d, f"tensor of shape {shape} over 16 bytes", [ST, "'x'"])

# ---- config.json: impossible sizes
for field, val in (("hidden_size", 2000000000), ("num_hidden_layers", 1000000), ("vocab_size", 1 << 30)):
    d = variant("size-" + field)
    edit_config(d, lambda c: c.__setitem__(field, val))
    logits_fails(d, f"{field} = {val}", [CFG, field])
d = variant("size-product")
edit_config(d, lambda c: c.update(hidden_size=16384, intermediate_size=16777216, num_hidden_layers=4096))
logits_fails(d, "16384 x 2^24 x 4096 layers: more than 2^40 parameters", [CFG, "parameters"])

# ---- config.json: deeply nested, and huge
d = variant("nested")
with open(os.path.join(d, CFG), "w") as f:
    f.write("[" * 100000 + "]" * 100000)
logits_fails(d, "config.json nested 100000 deep", [CFG])
d = variant("huge")
edit_config(d, lambda c: c.__setitem__("junk", "x" * (20 << 20)))
t0 = time.time()
ok_run(["logits", "--model", d, "--ids", "1,2,3", "--out", os.path.join(d, "out.json")], "a 20 MB config.json loads")
check(time.time() - t0 < 60, "a 20 MB config.json loads within 60 s")

# ---- tokenizer.json: nested deeply, invalid UTF-8 in the vocabulary, a huge id
def tok_fails(label, text, must):
    d = variant("tok-" + label)
    with open(os.path.join(d, "tokenizer.json"), "wb") as f:
        f.write(text)
    t0 = time.time()
    p = run(["tokenize", "--model", d, "--ids"], timeout=60)
    good = p.returncode in (1, 2) and "Sanitizer" not in p.stderr and "runtime error" not in p.stderr
    check(good, f"tokenizer.json {label}: fails cleanly (exit {p.returncode})")
    missing = [m for m in must if m not in p.stderr]
    check(not missing, f"tokenizer.json {label}: message names {must}" + (f" -- missing {missing}" if missing else ""))
    print("    message: " + (p.stderr.strip().splitlines() or [""])[-1][:300])
    check(time.time() - t0 < 60, f"tokenizer.json {label}: refused within 60 s")


tok_fails("nested", b"{\"model\": " + b"[" * 100000 + b"]" * 100000 + b"}", ["tokenizer.json"])
with open(os.path.join(GOOD, "tokenizer.json"), "rb") as f:
    tj = json.loads(f.read())
tj["model"]["vocab"]["ok"] = 1 << 40
tok_fails("huge-id", json.dumps(tj).encode(), ["tokenizer.json"])

# ---- Inf in a BF16 weight (sft_nan.py has F32 NaN/Inf)
d = variant("bf16-inf")
t = st_tensors(os.path.join(d, ST))
name = "model.layers.0.mlp.up_proj.weight"
dt, shape, raw = t[name]
vals = struct.unpack(f"<{len(raw) // 4}f", raw)
bf = bytearray(b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in vals))
bf[10:12] = struct.pack("<H", 0x7f80)  # element 5 = +Inf
t[name] = ("BF16", shape, bytes(bf))
st_write(os.path.join(d, ST), t, {"format": "pt"})
logits_fails(d, "+Inf in a BF16 weight", [ST, name, "element 5"])

# ---- SFT data
good_line = json.dumps({"prompt": "1+1=", "completion": "2"}).encode()


def sft_fails(label, data_bytes, must, line):
    path = os.path.join(W, f"sft-{label}.jsonl")
    with open(path, "wb") as f:
        f.write(data_bytes)
    t0 = time.time()
    expect_error(["sft", "--model", GOOD, "--data", path, "--out", os.path.join(W, "out-" + label), "--steps", 1],
                 f"SFT data: {label}", [f"sft-{label}.jsonl:{line}"] + must)
    check(time.time() - t0 < 60, f"SFT data {label}: refused within 60 s")


sft_fails("utf8", good_line + b"\n" + b'{"prompt": "caf\xe9", "completion": "x"}\n', ["UTF-8", "column 16"], 2)
sft_fails("overlong", good_line + b"\n" + b'{"text": "\xc0\xaf"}\n', ["UTF-8"], 2)
sft_fails("nul", good_line + b"\n" + good_line[:-1] + b"\0}\n", ["NUL"], 2)
sft_fails("nested", b'{"text": ' + b"[" * 100000 + b"]" * 100000 + b"}\n", ["invalid JSON"], 1)

# ---- YAML: anchors that expand exponentially, deep mappings
# nine levels of ten aliases each: 10^9 strings if expanded; keys are real string options of sft
KEYS = ["lora_targets", "data", "eval_data", "chat_format", "schedule", "tokenizer", "base_dtype", "out", "model"]
laughs = f"{KEYS[0]}: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{KEYS[i + 1]}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8))
cfg = os.path.join(W, "laughs.yaml")
with open(cfg, "w") as f:
    f.write("steps: 1\n" + laughs)
t0 = time.time()
expect_error(["sft", "--config", cfg, "--model", GOOD, "--data", os.path.join(W, "sft-utf8.jsonl"),
              "--out", os.path.join(W, "out-laughs")], "run config with 10^9 expanding aliases", ["laughs.yaml", "alias"])
check(time.time() - t0 < 30, "run config with expanding aliases: refused within 30 s")
deep = os.path.join(W, "deep.yaml")
with open(deep, "w") as f:
    f.write("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n")
expect_error(["sft", "--config", deep, "--model", GOOD], "run config nested 200 mappings deep", ["deep.yaml", "deep"])

prompts = jsonl(os.path.join(W, "prompts.jsonl"), [{"prompt": "1+2=", "answer": "3"}, {"prompt": "2+2=", "answer": "4"}])
rubric = os.path.join(W, "rubric.yaml")
with open(rubric, "w") as f:
    f.write(laughs + "checks:\n  - must_contain: *i\n")
t0 = time.time()
expect_error(["grpo", "--model", GOOD, "--data", prompts, "--out", os.path.join(W, "out-rubric"), "--steps", 1,
              "--reward", "rubric", "--rubric", rubric, "--num-generations", 2, "--batch-size", 1,
              "--max-tokens-to-generate", 4], "rubric with 10^9 expanding aliases", ["rubric.yaml", "check 1"])
check(time.time() - t0 < 30, "rubric with expanding aliases: refused within 30 s")

# ---- PEFT adapter_config.json
adapter = os.path.join(W, "adapter")
ok_run(["sft", "--model", GOOD, "--data", jsonl(os.path.join(W, "ok.jsonl"), [{"prompt": "a", "completion": "b"}] * 4),
        "--out", os.path.join(W, "lora-run"), "--steps", 1, "--lora-rank", 2], "a LoRA adapter to break")
for label, key, val in (("r", "r", 1e300), ("layers", "layers_to_transform", 1e300), ("alpha", "lora_alpha", 1e300)):
    d = os.path.join(W, "adapter-" + label)
    copy_model(os.path.join(W, "lora-run", "adapter"), d)
    with open(os.path.join(d, "adapter_config.json")) as f:
        c = json.load(f)
    c[key] = val
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(c, f)
    p = run(["logits", "--model", GOOD, "--adapter", d, "--ids", "1,2,3", "--out", os.path.join(d, "o.json")])
    if label == "layers":  # a layer that does not exist: the adapter targets nothing or is refused; never a crash
        check(p.returncode in (0, 1, 2) and "runtime error" not in p.stderr and "Sanitizer" not in p.stderr,
              f"adapter {key} = 1e300: no crash (exit {p.returncode})")
    else:
        expect_error(["logits", "--model", GOOD, "--adapter", d, "--ids", "1,2,3", "--out", os.path.join(d, "o.json")],
                     f"adapter {key} = 1e300", ["adapter_config.json", key])
sys.exit(finish())
