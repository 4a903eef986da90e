#!/usr/bin/python3
"""bnb_ckpt.py - loading checkpoints saved by bitsandbytes (transformers `load_in_4bit`,
`bnb_4bit_quant_type="nf4"`), with an independent writer of that layout.

1. `tunic init` makes a tiny bf16 Qwen2 model.
2. This script quantises its projection weights with the numpy bitsandbytes
   reimplementation of ref_nf4.py and writes them the way Linear4bit._save_to_state_dict
   + QuantState.as_dict(packed=True) do:
     W                                   U8  ((n+1)/2, 1)  packed codes, first element high nibble
     W.absmax                            F32 (nblocks), or U8 (nblocks) with double quantisation
     W.quant_map                         F32 (16)
     W.nested_absmax, W.nested_quant_map F32 (nblocks2), F32 (256)     [double quantisation]
     W.quant_state.bitsandbytes__nf4     U8  json.dumps({"quant_type", "blocksize", "dtype",
                                             "shape", ["nested_blocksize", "nested_dtype",
                                             "nested_offset"]}) as UTF-8 bytes
   plus config.json "quantization_config". One layer's MLP is left unquantised in bf16
   (as llm_int8_skip_modules does), one layer is quantised without double quantisation,
   with blocksize 128.
3. It writes the f32 model of the same dequantised weights (plain layout) and requires:
   `tunic logits` of the bnb checkpoint read with --base-dtype f32 (dequantised by tunic)
   equals the f32 model's logits bit for bit; read as NF4 (auto, the default for such
   checkpoints: the bf16 MLP stays unquantised, the embedding/head stay bf16) within 1e-4
   (the NF4 kernels sum in another order) through the decode (--step 1) kernels, and
   within the bf16 rounding bound of the head's input (stated below) through prefill; with an explicit
   --base-dtype nf4 the bf16 MLP is quantised too (differs by 1e-4..0.1); a missing quant-state
   tensor and an fp4 checkpoint are refused with exit 1 and a message naming them.
4. bnb_4bit_compute_dtype float32: the embedding / LM head follow it (f32), --head-dtype bf16
   is the opt-in bf16 mode (see compute_dtype_f32).
Usage: bnb_ckpt.py TUNIC WORKDIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_nf4  # noqa: E402

DT = {"F32": np.float32, "U8": np.uint8, "BF16": np.uint16}


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    hdr = json.loads(data[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = np.frombuffer(data[8 + n + a:8 + n + b], dtype=DT[v["dtype"]]).reshape(v["shape"])
        out[k] = (v["dtype"], arr)
    return out


def write_st(path, tensors):
    hdr, off, blobs = {}, 0, []
    for k, (dt, arr) in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        hdr[k] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def bf16_to_f32(u):
    return (u.astype(np.uint32) << 16).view(np.float32)


PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def run(cmd, ok=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if ok and r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return r


def main():
    tunic, work = sys.argv[1], sys.argv[2]
    global tunic_path
    tunic_path = tunic
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    base, bnb, ref = (os.path.join(work, d) for d in ("base", "bnb", "ref"))
    run([tunic, "init", "--arch", "qwen2", "--size", "tiny", "--dtype", "bf16", "--seed", "5", "--out", base])
    src = read_st(os.path.join(base, "model.safetensors"))
    q_out, f_out = {}, {}
    for name, (dt, arr) in src.items():
        assert dt == "BF16", (name, dt)
        w = bf16_to_f32(arr)
        parts = name.split(".")
        is_proj = name.endswith(".weight") and len(parts) > 3 and parts[-2] in PROJ
        skip = is_proj and parts[2] == "1" and parts[3] == "mlp"  # llm_int8_skip_modules-like
        if not is_proj or skip:
            q_out[name] = (dt, arr)
            f_out[name] = ("F32", w)
            continue
        layer0 = parts[2] == "0"
        bs, nested = (128, False) if layer0 and parts[-2] in ("q_proj", "down_proj") else (64, True)
        r = ref_nf4.quantize(w.reshape(-1).astype(np.float32), bs, nested)
        n = w.size
        q_out[name] = ("U8", r["codes"].reshape((n + 1) // 2, 1))
        st = {"quant_type": "nf4", "blocksize": bs, "dtype": "bfloat16", "shape": list(w.shape)}
        if nested:
            q_out[name + ".absmax"] = ("U8", r["qabsmax"])
            q_out[name + ".quant_map"] = ("F32", ref_nf4.NF4)
            q_out[name + ".nested_absmax"] = ("F32", r["absmax2"])
            q_out[name + ".nested_quant_map"] = ("F32", ref_nf4.dynamic_map())
            st.update({"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": float(r["offset"][0])})
        else:
            q_out[name + ".absmax"] = ("F32", r["absmax"])
            q_out[name + ".quant_map"] = ("F32", ref_nf4.NF4)
        q_out[name + ".quant_state.bitsandbytes__nf4"] = ("U8", np.frombuffer(json.dumps(st).encode("utf-8"), dtype=np.uint8))
        f_out[name] = ("F32", r["deq"].reshape(w.shape))
    cfg = json.load(open(os.path.join(base, "config.json")))
    for d, tensors in ((bnb, q_out), (ref, f_out)):
        os.makedirs(d)
        for f in os.listdir(base):
            if f != "model.safetensors":
                shutil.copy(os.path.join(base, f), d)
        write_st(os.path.join(d, "model.safetensors"), tensors)
    cfg_b = dict(cfg)
    cfg_b["quantization_config"] = {
        "_load_in_4bit": True, "_load_in_8bit": False, "bnb_4bit_compute_dtype": "bfloat16",
        "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
        "llm_int8_enable_fp32_cpu_offload": False, "llm_int8_has_fp16_weight": False,
        "llm_int8_skip_modules": ["lm_head", "model.layers.1.mlp"], "llm_int8_threshold": 6.0,
        "load_in_4bit": True, "load_in_8bit": False, "quant_method": "bitsandbytes"}
    json.dump(cfg_b, open(os.path.join(bnb, "config.json"), "w"), indent=2)
    cfg_r = dict(cfg)
    cfg_r["torch_dtype"] = "float32"
    json.dump(cfg_r, open(os.path.join(ref, "config.json"), "w"), indent=2)

    ids = "1,5,9,77,3,200,41,8,8,19,250,7;2,4,6,8,10,12,14,16,18,20,22,24"

    def logits(d, *extra):
        out = os.path.join(work, f"lg_{os.path.basename(d)}_{'_'.join(extra) or 'default'}.npy")
        run([tunic, "logits", "--model", d, "--ids", ids, "--out", out, *extra])
        return np.load(out)

    bad = 0
    want = logits(ref)
    got_f32 = logits(bnb, "--base-dtype", "f32")
    got_nf4 = logits(bnb)
    got_nf4_step = logits(bnb, "--step", "1")  # the GEMV (decode) path
    # explicit nf4 also quantises the projections the checkpoint left in bf16
    got_all = logits(bnb, "--base-dtype", "nf4")
    if not np.array_equal(got_f32.view(np.uint32), want.view(np.uint32)):
        print("bnb checkpoint dequantised to f32 differs from the f32 model:", np.abs(got_f32 - want).max())
        bad += 1
    # Read as NF4 the model keeps the (bf16) embedding / LM head in bf16, as bitsandbytes
    # does: exact here (the checkpoint's values are bf16). Decoding (--step 1) keeps x in
    # f32: 1e-4 (summation order). The prefill head may be a vdpbf16ps GEMM that rounds the
    # normed hidden state x to bf16 (relative error <= 2^-9 per element), so there
    # |err_v| <= 1e-4 + 2^-9 sum_k |W_vk x_k| <= 1e-4 + 2^-9 ||W_v|| ||x||, and
    # ||x|| <= max|g| sqrt(C) for x = RMSNorm(h) * g (Cauchy-Schwarz).
    head = f_out.get("lm_head.weight", f_out["model.embed_tokens.weight"])[1].astype(np.float64)
    g = f_out["model.norm.weight"][1].astype(np.float64)
    bound_pre = 1e-4 + 2.0 ** -9 * float(np.sqrt((head ** 2).sum(1)).max()) * float(np.abs(g).max()) * np.sqrt(head.shape[1])
    for what, g_, tol in (("nf4", got_nf4, bound_pre), ("nf4 step 1", got_nf4_step, 1e-4)):
        e = float(np.abs(g_ - want).max())
        print(f"{what}: max |logit - f32 model| = {e:.3g} (bound {tol:.3g})")
        if e > tol:
            bad += 1
    e_all = float(np.abs(got_all - want).max())
    print(f"--base-dtype nf4 (skipped MLP quantised too): max |logit - f32 model| = {e_all:.3g}")
    if not 1e-4 < e_all < 0.1:
        bad += 1
    # errors: a missing quant-state tensor, fp4
    broken = os.path.join(work, "broken")
    shutil.copytree(bnb, broken)
    t = dict(q_out)
    del t["model.layers.0.self_attn.k_proj.weight.absmax"]
    write_st(os.path.join(broken, "model.safetensors"), t)
    r = run([tunic, "logits", "--model", broken, "--ids", "1,2", "--out", os.path.join(work, "x.json")], ok=False)
    if r.returncode != 1 or "model.layers.0.self_attn.k_proj.weight.absmax" not in r.stderr:
        print("missing absmax not reported:", r.returncode, r.stderr)
        bad += 1
    cfg_f = dict(cfg_b)
    cfg_f["quantization_config"] = dict(cfg_b["quantization_config"], bnb_4bit_quant_type="fp4")
    json.dump(cfg_f, open(os.path.join(broken, "config.json"), "w"))
    r = run([tunic, "logits", "--model", broken, "--ids", "1,2", "--out", os.path.join(work, "x.json")], ok=False)
    if r.returncode != 1 or "fp4" not in r.stderr:
        print("fp4 not refused:", r.returncode, r.stderr)
        bad += 1
    bad += compute_dtype_f32(work, bnb, ref, q_out, f_out, cfg_b, cfg_r, logits)
    print("bnb checkpoint:", "OK" if bad == 0 else f"{bad} FAILURES")
    sys.exit(1 if bad else 0)


def compute_dtype_f32(work, bnb, ref, q_out, f_out, cfg_b, cfg_r, logits):
    """bnb_4bit_compute_dtype float32 (issue 21): the embedding and LM head, stored F32 with
    values bf16 cannot hold, are computed in f32 by default (as transformers does), so the
    logits equal the f32 model of the dequantised weights within the NF4 kernels' summation
    order (1e-4, prefill and decode); --head-dtype bf16 (the speed mode) rounds them to bf16
    and must give exactly the logits of the same checkpoint saying compute dtype bfloat16."""
    rng = np.random.default_rng(7)
    q2, f2 = dict(q_out), dict(f_out)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        if k in f2:
            w = f2[k][1].astype(np.float32)
            w = (w * (1 + rng.uniform(-2 ** -8, 2 ** -8, w.shape))).astype(np.float32)
            q2[k] = ("F32", w)
            f2[k] = ("F32", w)
    bad = 0
    dirs = {}
    for name, tensors, cfg in (("bnb32", q2, dict(cfg_b, quantization_config=dict(cfg_b["quantization_config"], bnb_4bit_compute_dtype="float32"))),
                               ("bnb32_bf", q2, cfg_b), ("ref32", f2, cfg_r)):
        d = dirs[name] = os.path.join(work, name)
        shutil.copytree(bnb, d)
        write_st(os.path.join(d, "model.safetensors"), tensors)
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    want = logits(dirs["ref32"])
    for extra in ((), ("--step", "1")):
        e = float(np.abs(logits(dirs["bnb32"], *extra) - want).max())
        print(f"compute dtype float32 {' '.join(extra) or 'prefill'}: max |logit - f32 model| = {e:.3g} (bound 1e-4)")
        if e > 1e-4:
            bad += 1
    fast = logits(dirs["bnb32"], "--head-dtype", "bf16")
    e_fast = float(np.abs(fast - want).max())
    same = np.array_equal(fast.view(np.uint32), logits(dirs["bnb32_bf"]).view(np.uint32))
    print(f"--head-dtype bf16: max |logit - f32 model| = {e_fast:.3g}; equals compute dtype bfloat16: {same}")
    if e_fast <= 1e-4 or not same:
        bad += 1
    bf = dict(cfg_b, quantization_config=dict(cfg_b["quantization_config"], bnb_4bit_compute_dtype="int8"))
    json.dump(bf, open(os.path.join(dirs["bnb32"], "config.json"), "w"))
    r = run([tunic_path, "logits", "--model", dirs["bnb32"], "--ids", "1,2", "--out", os.path.join(work, "y.json")], ok=False)
    if r.returncode != 1 or "bnb_4bit_compute_dtype" not in r.stderr:
        print("bad compute dtype not refused:", r.returncode, r.stderr)
        bad += 1
    return bad


if __name__ == "__main__":
    main()
