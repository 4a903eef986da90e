#!/usr/bin/env python3
"""check_stack.py - stacked LoRA adapters (issue 17: "adapters stacked or merged as configured"):
- `tunic sft --base-adapter A` trains on model + A merged in memory: its adapter is byte-identical
  to the one trained on the model that `tunic merge` wrote from the same A (and differs from a run
  without --base-adapter, so the check can fail);
- `tunic improve --adapters stack` (2 LoRA rounds): round 2's model is --model + round_2/adapter,
  and that adapter is the concatenation of round 1's and round 2's own adapters: its delta
  scale * B A on every module equals the sum of theirs, recomputed here with numpy from the files
  (1e-6 relative), with r and lora_alpha the sums; the round's eval equals `tunic eval` of
  --model with that adapter, completion for completion; and the logits of --model + the stack equal those of the model made
  by merging the two adapters one after the other with `tunic merge` (1e-4)."""
import json, os, shutil, struct, subprocess, sys

import numpy as np

tunic = os.environ["TUNIC"]
work = sys.argv[1]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def run(args):
    return subprocess.run([tunic] + args, check=True, capture_output=True, text=True,
                          env=dict(os.environ, TN_PROGRESS="off"))


def read_st(path):
    """safetensors -> {name: float32 array}, read here without tunic."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__": continue
        assert v["dtype"] == "F32", v
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"])
    return out


def deltas(adir):
    """{module: scale * B @ A} of a PEFT adapter (uniform r / lora_alpha, or its patterns)."""
    cfg = json.load(open(os.path.join(adir, "adapter_config.json")))
    t = read_st(os.path.join(adir, "adapter_model.safetensors"))
    out = {}
    for k in t:
        if not k.endswith(".lora_A.weight"): continue
        mod = k[len("base_model.model."):-len(".lora_A.weight")]
        A, B = t[k].astype(np.float64), t[k.replace("lora_A", "lora_B")].astype(np.float64)
        assert not cfg.get("rank_pattern") and not cfg.get("alpha_pattern") and not cfg["use_rslora"]
        assert A.shape[0] == cfg["r"], (A.shape, cfg["r"])
        out[mod] = cfg["lora_alpha"] / cfg["r"] * (B @ A)
    return out, cfg


model = os.path.join(work, "model")
run(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", model, "--seed", "7"])
run(["data", "math", "--profile", "easy", "--max-steps", "1", "--n", "40", "--seed", "1", "--out",
     os.path.join(work, "data"), "--quiet"])
data = os.path.join(work, "data", "train_sft.jsonl")
sft = ["--data", data, "--lora-rank", "4", "--steps", "4", "--batch-size", "4", "--lr", "5e-2",
       "--max-seq-len", "96", "--save-every", "0"]
# 1. --base-adapter == training on the merged model
run(["sft", "--model", model, "--out", os.path.join(work, "r1"), "--seed", "1"] + sft)
a1 = os.path.join(work, "r1", "adapter")
run(["merge", "--model", model, "--adapter", a1, "--out", os.path.join(work, "m1")])
run(["sft", "--model", os.path.join(work, "m1"), "--out", os.path.join(work, "r2_merged"), "--seed", "2"] + sft)
run(["sft", "--model", model, "--base-adapter", a1, "--out", os.path.join(work, "r2_base"), "--seed", "2"] + sft)
run(["sft", "--model", model, "--out", os.path.join(work, "r2_plain"), "--seed", "2"] + sft)
w = lambda r: open(os.path.join(work, r, "adapter", "adapter_model.safetensors"), "rb").read()
assert w("r2_base") == w("r2_merged"), "sft --base-adapter differs from sft on the merged model"
assert w("r2_base") != w("r2_plain"), "--base-adapter changed nothing (the check cannot fail)"
man = json.load(open(os.path.join(work, "r2_base", "run_manifest.json")))
assert a1 in json.dumps(man), "the manifest does not record --base-adapter"
p = subprocess.run([tunic, "sft", "--model", model, "--base-adapter", os.path.join(work, "nope"), "--out",
                    os.path.join(work, "r_bad")] + sft, capture_output=True, text=True)
assert p.returncode != 0 and "--base-adapter" in p.stderr and "nope" in p.stderr, p.stderr

# 2. improve --adapters stack
prompts, evald = os.path.join(work, "p.jsonl"), os.path.join(work, "e.jsonl")
with open(prompts, "w") as f:
    for i in range(6): f.write(json.dumps({"id": "p%d" % i, "prompt": "%d+%d?" % (i, i), "answer": str(2 * i)}) + "\n")
with open(evald, "w") as f:
    for i in range(8): f.write(json.dumps({"id": "e%d" % i, "prompt": "%d*2?" % i, "answer": str(2 * i)}) + "\n")
R = os.path.join(work, "run")
run(["improve", "--model", model, "--prompts", prompts, "--eval-data", evald, "--out", R, "--rounds", "2",
     "--samples", "2", "--max-new-tokens", "10", "--temperature", "1.0", "--judge", "answer:1", "--threshold", "-1",
     "--any-format", "--keep-truncated", "--steps", "3", "--batch-size", "4", "--max-seq-len", "64", "--lr", "5e-2",
     "--lora-rank", "4", "--adapters", "stack", "--eval-max-new-tokens", "8",
     "--no-early-stop", "--seed", "3"])
mp1 = open(os.path.join(R, "round_1", "model_path")).read().strip()
mp2 = open(os.path.join(R, "round_2", "model_path")).read().strip()
assert mp1 == os.path.join(R, "round_1", "sft", "adapter"), mp1
assert mp2 == os.path.join(R, "round_2", "adapter"), mp2
assert not os.path.exists(os.path.join(R, "round_1", "model")), "stacking wrote a full model"
d1, c1 = deltas(mp1)
d2, c2 = deltas(os.path.join(R, "round_2", "sft", "adapter"))
ds, cs = deltas(mp2)
assert cs["r"] == c1["r"] + c2["r"] == 8 and cs["lora_alpha"] == cs["r"], cs
assert set(ds) == set(d1) == set(d2) and len(ds) >= 4, sorted(ds)
worst = 0.0
for k in ds:
    want = d1[k] + d2[k]
    err = np.abs(ds[k] - want).max() / max(np.abs(want).max(), 1e-30)
    worst = max(worst, err)
assert worst < 1e-6, worst
assert max(np.abs(d2[k]).max() for k in d2) > 1e-4, "round 2 learned nothing (the check cannot fail)"
rep = json.load(open(os.path.join(R, "report.json")))
assert rep["best_model"] == model or rep.get("best_adapter"), rep
# the round's eval (model + stack merged in memory) == tunic eval with the adapter applied
ev = os.path.join(work, "ev.jsonl")
run(["eval", "--model", model, "--adapter", mp2, "--data", evald, "--out", ev, "--max-new-tokens", "8",
     "--system-prompt", "", "--quiet"])
mine = {json.loads(l)["id"]: json.loads(l)["completion"] for l in open(ev)}
theirs = {json.loads(l)["id"]: json.loads(l)["completion"] for l in open(os.path.join(R, "round_2", "eval.jsonl"))}
same = sum(mine[i] == theirs[i] for i in theirs)
assert same == len(theirs), (same, mine, theirs)  # improve loads the round's model as tunic eval does
# logits: --model + stack == merge(merge(model, round 1), round 2's own adapter)
run(["merge", "--model", model, "--adapter", mp1, "--out", os.path.join(work, "s1")])
run(["merge", "--model", os.path.join(work, "s1"), "--adapter", os.path.join(R, "round_2", "sft", "adapter"),
     "--out", os.path.join(work, "s12")])
ids = "257,72,105,50,43,51;257,49,50,42,50,63"
run(["logits", "--model", model, "--adapter", mp2, "--ids", ids, "--out", os.path.join(work, "ls.json")])
run(["logits", "--model", os.path.join(work, "s12"), "--ids", ids, "--out", os.path.join(work, "lm.json")])
run(["logits", "--model", model, "--ids", ids, "--out", os.path.join(work, "l0.json")])
def lg(p):
    j = json.load(open(os.path.join(work, p)))
    return np.array(j["logits"] if isinstance(j, dict) else j, dtype=np.float64)
ls, lm, l0 = lg("ls.json"), lg("lm.json"), lg("l0.json")
assert np.abs(ls - lm).max() < 1e-4, np.abs(ls - lm).max()
assert np.abs(ls - l0).max() > 1e-2, "the stack does not change the logits (the check cannot fail)"
print("PASS: --base-adapter byte-identical to a merged start; stack delta error %.2e; logits %.2e" %
      (worst, np.abs(ls - lm).max()))
