#!/usr/bin/python3
"""merge.py - `tunic merge` of LoRA adapters trained on an NF4 base (issue 7).

A tiny llama with bf16-valued weights (so that the bf16 embedding / LM head the NF4 base
keeps are exact and only the projections differ between the runs compared):

A. f32/bf16 checkpoint trained with --base-dtype nf4 (8 LoRA steps, all-linear, lr 1e-2):
   `tunic merge --base-dtype nf4 --dtype f32` writes W' = dequant(nf4(W)) + s B A. Its logits
   must equal those of the NF4 base + adapter, both decoded one token at a time (--step 1:
   the kernels keep x in f32): |diff| <= 1e-4 (f32 rounding of W' and the summation order;
   logits here are O(1)). The adapter must matter (adapter on/off differ by > 1e-2), and
   merging onto the original weights (--base-dtype f32) must give logits farther from the
   trained model (> 10x the nf4 merge's error): the NF4 quantisation error. Without
   --base-dtype, merge reads the base dtype from the adapter's run manifest (RUN/adapter and
   RUN/checkpoints/step_8): the same merged weights, bit for bit.
B. a bitsandbytes-saved 4-bit checkpoint (written with tests/quant/bnb_ckpt.py's writer and
   numpy NF4 reference) trained with --base-dtype auto (= nf4): `tunic merge` (defaults)
   writes a plain checkpoint: config.json without quantization_config, torch_dtype
   bfloat16 (the checkpoint's), only BF16 tensors under the plain HF names; its logits
   within 0.02 of the NF4 base + adapter (bf16 rounding of the merged weights, relative
   2^-9 per weight; measured 0.004); with --dtype f32, within 1e-4 as in A.
Both merged models run with plain `tunic generate`.
Usage: merge.py TUNIC WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "quant"))
import bnb_ckpt  # noqa: E402
import ref_nf4  # noqa: E402

T = sys.argv[1]
W = sys.argv[2]
IDS = "1,5,9,77,3,200,41,8,8,19,250,7,60,61;2,4,6,8,10,12,14,16,18,20,22,24,26,28"
bad = 0


def run(*args, ok=True):
    r = subprocess.run([T, *args], capture_output=True, text=True, env=dict(os.environ, TN_PROGRESS="off"))
    if ok and r.returncode != 0:
        sys.exit(f"failed: tunic {' '.join(args)}\n{r.stderr}")
    return r


def logits(model, *extra):
    out = os.path.join(W, f"lg{logits.n}.npy")
    logits.n += 1
    run("logits", "--model", model, "--ids", IDS, "--out", out, "--step", "1", *extra)
    return np.load(out)


logits.n = 0


def check(what, ok, detail):
    global bad
    print(f"{what}: {detail} -> {'ok' if ok else 'FAIL'}")
    bad += not ok


def sft(model, out, base_dtype):
    run("sft", "--model", model, "--data", f"{W}/data/train_sft.jsonl", "--out", out, "--base-dtype", base_dtype,
        "--lora-rank", "8", "--lora-alpha", "16", "--lora-targets", "all-linear", "--steps", "8", "--batch-size", "4",
        "--lr", "1e-2", "--max-seq-len", "128", "--seed", "1")
    return os.path.join(out, "adapter")


def generate(model):
    r = run("generate", "--model", model, "--prompt", "1 + 2 =", "--max-new-tokens", "6", ok=False)
    check(f"generate on {os.path.basename(model)}", r.returncode == 0, f"exit {r.returncode} {r.stderr.strip()[:200]}")


shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
m = os.path.join(W, "m")
run("init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--dtype", "bf16", "--out", m, "--seed", "5",
    "--override", '{"hidden_size":128,"intermediate_size":256,"head_dim":32}')
run("data", "math", "--profile", "easy", "--max-steps", "1", "--n", "64", "--seed", "3", "--out", f"{W}/data", "--quiet")

# ---- A: f32/bf16 checkpoint, adapter trained on --base-dtype nf4
ad = sft(m, f"{W}/ra", "nf4")
run("merge", "--model", m, "--adapter", ad, "--out", f"{W}/merged_nf4", "--base-dtype", "nf4", "--dtype", "f32")
run("merge", "--model", m, "--adapter", ad, "--out", f"{W}/merged_orig", "--base-dtype", "f32", "--dtype", "f32")
want = logits(m, "--base-dtype", "nf4", "--adapter", ad)
plain = logits(m, "--base-dtype", "nf4")
got = logits(f"{W}/merged_nf4")
orig = logits(f"{W}/merged_orig")
e = float(np.abs(got - want).max())
eo = float(np.abs(orig - want).max())
ea = float(np.abs(plain - want).max())
check("A: merged (onto NF4) vs NF4 base + adapter", e <= 1e-4, f"max |diff| {e:.3g} (bound 1e-4; max |logit| {np.abs(want).max():.3g})")
check("A: the adapter matters", ea > 1e-2, f"adapter on/off max |diff| {ea:.3g}")
check("A: merged onto the original weights is farther", eo > 10 * max(e, 1e-6), f"max |diff| {eo:.3g}")
for what, a in (("adapter", ad), ("checkpoint", f"{W}/ra/checkpoints/step_8")):
    r = run("merge", "--model", m, "--adapter", a, "--out", f"{W}/merged_auto", "--dtype", "f32")
    same = open(f"{W}/merged_auto/model.safetensors", "rb").read() == open(f"{W}/merged_nf4/model.safetensors", "rb").read()
    check(f"A: base dtype from the run manifest ({what})", same and "run_manifest.json" in r.stderr,
          f"identical weights {same}; {r.stderr.strip().splitlines()[0][:120]}")
cfg = json.load(open(f"{W}/merged_nf4/config.json"))
check("A: config", "quantization_config" not in cfg and cfg.get("torch_dtype") == "float32", f"torch_dtype {cfg.get('torch_dtype')}")
generate(f"{W}/merged_nf4")


def eval_completions(model, *extra):
    out = f"{W}/eval_{len(os.listdir(W))}.jsonl"
    run("eval", "--model", model, "--data", f"{W}/data/test.jsonl", "--out", out, "--max-new-tokens", "24", "--quiet",
        *extra)
    return [json.loads(x)["completion"] for x in open(out)]


# eval takes --base-dtype like generate: the NF4 base + adapter answers as the model merged onto NF4
e_nf4 = eval_completions(m, "--base-dtype", "nf4", "--adapter", ad)
e_merged = eval_completions(f"{W}/merged_nf4")
check("A: eval --base-dtype nf4 --adapter == eval of the merged model", e_nf4 == e_merged and len(e_nf4) > 0,
      f"{sum(a == b for a, b in zip(e_nf4, e_merged))}/{len(e_nf4)} greedy completions equal")
e_f32 = eval_completions(m, "--base-dtype", "f32", "--adapter", ad)
check("A: eval --base-dtype f32 --adapter answers differently (the flag is not ignored)", e_f32 != e_nf4,
      f"{sum(a == b for a, b in zip(e_f32, e_nf4))}/{len(e_f32)} completions equal to the NF4 ones")

# ---- B: a bitsandbytes 4-bit checkpoint
src = bnb_ckpt.read_st(os.path.join(m, "model.safetensors"))
q_out = {}
for name, (dt, arr) in src.items():
    parts = name.split(".")
    if not (name.endswith(".weight") and len(parts) > 3 and parts[-2] in bnb_ckpt.PROJ):
        q_out[name] = (dt, arr)
        continue
    w = bnb_ckpt.bf16_to_f32(arr)
    r = ref_nf4.quantize(w.reshape(-1).astype(np.float32), 64, True)
    q_out[name] = ("U8", r["codes"].reshape((w.size + 1) // 2, 1))
    q_out[name + ".absmax"] = ("U8", r["qabsmax"])
    q_out[name + ".quant_map"] = ("F32", ref_nf4.NF4)
    q_out[name + ".nested_absmax"] = ("F32", r["absmax2"])
    q_out[name + ".nested_quant_map"] = ("F32", ref_nf4.dynamic_map())
    st = {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": list(w.shape), "nested_blocksize": 256,
          "nested_dtype": "float32", "nested_offset": float(r["offset"][0])}
    q_out[name + ".quant_state.bitsandbytes__nf4"] = ("U8", np.frombuffer(json.dumps(st).encode(), dtype=np.uint8))
bnb = os.path.join(W, "bnb")
os.makedirs(bnb)
for f in os.listdir(m):
    if f != "model.safetensors":
        shutil.copy(os.path.join(m, f), bnb)
bnb_ckpt.write_st(os.path.join(bnb, "model.safetensors"), q_out)
cfg = json.load(open(os.path.join(m, "config.json")))
cfg["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True, "load_in_8bit": False,
                              "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                              "bnb_4bit_compute_dtype": "bfloat16", "llm_int8_skip_modules": ["lm_head"]}
json.dump(cfg, open(os.path.join(bnb, "config.json"), "w"), indent=2)

ad = sft(bnb, f"{W}/rb", "auto")
run("merge", "--model", bnb, "--adapter", ad, "--out", f"{W}/merged_bnb")
run("merge", "--model", bnb, "--adapter", ad, "--out", f"{W}/merged_bnb32", "--dtype", "f32")
want = logits(bnb, "--adapter", ad)
got = logits(f"{W}/merged_bnb")
got32 = logits(f"{W}/merged_bnb32")
e, e32 = float(np.abs(got - want).max()), float(np.abs(got32 - want).max())
check("B: merged bnb (bf16) vs bnb + adapter", e <= 0.02, f"max |diff| {e:.3g} (bound 0.02)")
check("B: merged bnb (f32) vs bnb + adapter", e32 <= 1e-4, f"max |diff| {e32:.3g} (bound 1e-4)")
cfg = json.load(open(f"{W}/merged_bnb/config.json"))
check("B: config", "quantization_config" not in cfg and cfg.get("torch_dtype") == "bfloat16",
      f"keys {sorted(k for k in cfg if 'quant' in k)}, torch_dtype {cfg.get('torch_dtype')}")
st = bnb_ckpt.read_st(f"{W}/merged_bnb/model.safetensors")
names = set(st)
dts = {dt for dt, _ in st.values()}
check("B: tensors", dts == {"BF16"} and names == set(src),
      f"dtypes {sorted(dts)}, {len(names)} tensors, extra {sorted(names - set(src))[:3]}, missing {sorted(set(src) - names)[:3]}")
generate(f"{W}/merged_bnb")

print("qlora merge:", "OK" if bad == 0 else f"{bad} FAILURES")
sys.exit(1 if bad else 0)
