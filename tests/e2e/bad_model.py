#!/usr/bin/python3
"""Issue 2, "Bad input": broken checkpoints given to `tunic logits --model DIR`.

Each case starts from a good tiny llama checkpoint made by `tunic init`, breaks ONE thing
(with an independent safetensors writer, tests/e2e/common.py) and requires:
  - exit status 1 or 2 (never a signal such as SIGSEGV/SIGBUS/SIGABRT, never a sanitizer report),
  - a message that names the file (model.safetensors / config.json) and the tensor or field.
Under the sanitizer build (TN_BUILD pointing at it) the same runs also prove no out-of-bounds read.
The good checkpoint is checked to load first, so the failures are caused by the mutation.
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (check, copy_model, expect_error, finish, init_model, ok_run, st_read, st_tensors, st_write,
                    st_write_raw, workdir)

W = workdir("badmodel")
GOOD = init_model(os.path.join(W, "good"), seed=7)
ST, CFG = "model.safetensors", "config.json"
ok_run(["logits", "--model", GOOD, "--ids", "1,2,3", "--out", os.path.join(W, "good.json")], "good checkpoint loads")

n_case = 0


def variant(name):
    global n_case
    n_case += 1
    d = os.path.join(W, f"{n_case:02d}-{name}")
    copy_model(GOOD, d)
    return d


def logits_fails(d, what, must):
    return expect_error(["logits", "--model", d, "--ids", "1,2,3", "--out", os.path.join(d, "out.json")], what, must)


def edit_config(d, fn):
    p = os.path.join(d, CFG)
    with open(p) as f:
        c = json.load(f)
    fn(c)
    with open(p, "w") as f:
        json.dump(c, f, indent=1)


Q = "model.layers.0.self_attn.q_proj.weight"
K = "model.layers.0.self_attn.k_proj.weight"

# 1. truncated file: the last tensor's bytes are cut off
d = variant("truncated")
p = os.path.join(d, ST)
size = os.path.getsize(p)
with open(p, "r+b") as f:
    f.truncate(size - 1000)
logits_fails(d, "truncated model.safetensors", [ST])

# 1b. truncated inside the 8-byte length, and inside the header
for cut, label in ((5, "length"), (100, "header")):
    d = variant(f"truncated-{label}")
    with open(os.path.join(d, ST), "r+b") as f:
        f.truncate(cut)
    logits_fails(d, f"model.safetensors truncated inside the {label}", [ST])

# 2. header length past the end of the file
d = variant("hdrlen")
hdr, data = st_read(os.path.join(d, ST))
st_write_raw(os.path.join(d, ST), hdr, data, header_len=os.path.getsize(os.path.join(GOOD, ST)) + 4096)
logits_fails(d, "header length past the end of the file", [ST])

# 2b. a huge header length (would overflow / allocate absurdly)
d = variant("hdrlen-huge")
st_write_raw(os.path.join(d, ST), hdr, data, header_len=(1 << 64) - 16)
logits_fails(d, "header length 2^64-16", [ST])

# 3. data_offsets past the end of the data buffer (on the LAST tensor, so nothing else is wrong)
d = variant("offsets-range")
hdr, data = st_read(os.path.join(d, ST))
last = max((k for k in hdr if k != "__metadata__"), key=lambda k: hdr[k]["data_offsets"][1])
a, b = hdr[last]["data_offsets"]
hdr[last]["data_offsets"] = [a + 4096, b + 4096]
st_write_raw(os.path.join(d, ST), hdr, data)
logits_fails(d, "data_offsets past the end of the data", [ST, last])

# 3b. data_offsets whose length disagrees with dtype x shape
d = variant("offsets-size")
hdr, data = st_read(os.path.join(d, ST))
a, b = hdr[Q]["data_offsets"]
hdr[Q]["data_offsets"] = [a, b - 4]
st_write_raw(os.path.join(d, ST), hdr, data)
logits_fails(d, "data_offsets length != dtype x shape", [ST, Q])

# 3c. two tensors overlapping (k_proj placed over q_proj's bytes; sizes consistent)
d = variant("offsets-overlap")
hdr, data = st_read(os.path.join(d, ST))
qa, qb = hdr[Q]["data_offsets"]
ka, kb = hdr[K]["data_offsets"]
hdr[K]["data_offsets"] = [qa, qa + (kb - ka)]
st_write_raw(os.path.join(d, ST), hdr, data)
p = logits_fails(d, "overlapping data_offsets", [ST])
check(Q in p.stderr or K in p.stderr, "overlapping data_offsets: message names one of the two tensors")

# 4. dtype that disagrees: q_proj stored as I32 (same byte size as F32, so only the dtype is wrong)
d = variant("dtype")
t = st_tensors(os.path.join(d, ST))
t[Q] = ("I32", t[Q][1], t[Q][2])
st_write(os.path.join(d, ST), t, {"format": "pt"})
logits_fails(d, "q_proj stored as I32", [ST, Q])

# 4b. an unknown dtype string
d = variant("dtype-unknown")
t = st_tensors(os.path.join(d, ST))
t[Q] = ("F31", t[Q][1], t[Q][2])
st_write(os.path.join(d, ST), t, {"format": "pt"})
logits_fails(d, "unknown dtype F31", [ST, Q])

# 5. shape that disagrees with config.json (same element count: [64,64] -> [32,128])
d = variant("shape")
t = st_tensors(os.path.join(d, ST))
dt, shape, raw = t[Q]
check(shape == [64, 64], f"q_proj of the tiny llama is [64, 64] (got {shape})")
t[Q] = (dt, [32, 128], raw)
st_write(os.path.join(d, ST), t, {"format": "pt"})
logits_fails(d, "q_proj shape [32,128] vs config [64,64]", [ST, Q])

# 5b. config.json changed instead: hidden_size disagrees with every tensor
d = variant("shape-config")
edit_config(d, lambda c: c.update(intermediate_size=96))
logits_fails(d, "intermediate_size 96 vs tensors of 128", ["gate_proj"])

# 6. missing tensor
d = variant("missing")
t = st_tensors(os.path.join(d, ST))
MISSING = "model.layers.1.mlp.down_proj.weight"
del t[MISSING]
st_write(os.path.join(d, ST), t, {"format": "pt"})
logits_fails(d, "missing down_proj", [MISSING])

# 6b. untied config but no lm_head.weight in the file
d = variant("missing-head")
edit_config(d, lambda c: c.update(tie_word_embeddings=False))
logits_fails(d, "tie_word_embeddings=false without lm_head.weight", ["lm_head.weight"])

# 7. unknown model_type
d = variant("model-type")
edit_config(d, lambda c: c.update(model_type="mistral"))
logits_fails(d, "model_type mistral", [CFG, "mistral"])

# 8. invalid JSON in config.json
d = variant("config-json")
with open(os.path.join(d, CFG), "r+") as f:
    text = f.read()
    f.seek(0)
    f.truncate()
    f.write(text.replace('"hidden_size":', '"hidden_size"', 1))
logits_fails(d, "config.json with a missing ':'", [CFG])

# 8b. invalid JSON in the safetensors header
d = variant("header-json")
with open(os.path.join(d, ST), "r+b") as f:
    f.seek(8)
    f.write(b"{\"model.embed_tokens.weight\":[")
logits_fails(d, "safetensors header not JSON", [ST])

# 9. a field of the wrong type
for field, val in (("hidden_size", "64"), ("num_hidden_layers", 2.5), ("rms_norm_eps", "1e-5"),
                   ("tie_word_embeddings", "yes")):
    d = variant("type-" + field)
    edit_config(d, lambda c: c.update({field: val}))
    logits_fails(d, f"{field} = {json.dumps(val)}", [CFG, field])

# 10. unsupported rope_scaling types
for rs in ({"rope_type": "yarn", "factor": 2.0}, {"type": "dynamic", "factor": 2.0}):
    d = variant("rope-" + rs.get("rope_type", rs.get("type")))
    edit_config(d, lambda c: c.update(rope_scaling=rs))
    logits_fails(d, f"rope_scaling {json.dumps(rs)}", [CFG, "rope_scaling"])

# 11. config.json or the weights absent
d = variant("no-config")
os.remove(os.path.join(d, CFG))
logits_fails(d, "no config.json", [CFG])
d = variant("no-weights")
os.remove(os.path.join(d, ST))
logits_fails(d, "no model.safetensors", [ST])

# 12. sharded: the index names a shard that does not exist
d = variant("shard")
shutil.rmtree(d)
init_model(d, seed=7, extra=("--shards", "2"))
idx = os.path.join(d, "model.safetensors.index.json")
with open(idx) as f:
    ix = json.load(f)
shard = sorted(set(ix["weight_map"].values()))[1]
os.remove(os.path.join(d, shard))
logits_fails(d, "index names a missing shard", [shard])

shutil.rmtree(W)
finish()
