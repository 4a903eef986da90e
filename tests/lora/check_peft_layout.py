#!/usr/bin/python3
"""Check an adapter directory WRITTEN BY TUNIC against PEFT's layout, reading it independently.

What it is for: issue 4's "PEFT and other tools load it". Without PEFT (no PyPI here) the
checks are what PEFT's load path relies on:
  - adapter_config.json: the LoraConfig fields with PEFT's names and JSON types
    (peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha, lora_dropout, use_rslora,
    target_modules, bias "none", fan_in_fan_out false, inference_mode true, use_dora false,
    modules_to_save null, base_model_name_or_path, rank_pattern, alpha_pattern...), values
    as expected by the caller;
  - adapter_model.safetensors parsed here byte by byte: F32 tensors, contiguous offsets,
    exactly base_model.model.<module>.lora_A.weight (r, in) and .lora_B.weight (out, r) for
    every module PEFT's matching rules select (peft_io.targeted) and nothing else;
  - --fresh: PEFT's init (B == 0, |A| <= 1/sqrt(in), std of A close to 1/sqrt(3 in));
  - --ids/--logits: the logits tunic computed with this adapter equal those of the PyTorch
    reference decoder applying the adapter with PEFT's formula (scale from the config), 1e-4.
Usage: check_peft_layout.py --adapter DIR --model DIR --expect JSON [--fresh] [--ids I --logits F]
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import peft_io  # noqa: E402

# LoraConfig fields every PEFT version since 0.7 writes, with their JSON types
FIELDS = {"peft_type": str, "task_type": str, "r": int, "lora_alpha": (int, float), "lora_dropout": (int, float),
          "target_modules": (list, str), "bias": str, "fan_in_fan_out": bool, "inference_mode": bool,
          "use_rslora": bool, "use_dora": bool, "modules_to_save": type(None), "init_lora_weights": bool,
          "rank_pattern": dict, "alpha_pattern": dict, "layers_to_transform": (type(None), int, list),
          "layers_pattern": (type(None), str, list), "base_model_name_or_path": str, "revision": type(None)}


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


def read_st(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8:
        fail(f"{path}: header length {n} not padded to 8 as HF writes it")
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = hdr.pop("__metadata__", None)
    if meta != {"format": "pt"}:
        fail(f"{path}: __metadata__ {meta}, PEFT/transformers write {{'format': 'pt'}}")
    out, end = {}, 0
    for name, info in sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        if b != end:
            fail(f"{path}: {name} starts at {b}, previous ended at {end}")
        if info["dtype"] != "F32":
            fail(f"{path}: {name} dtype {info['dtype']}")
        count = int(np.prod(info["shape"]))
        if e - b != 4 * count:
            fail(f"{path}: {name} byte size {e - b} != 4 * {count}")
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"]).astype(np.float64)
        end = e
    if end != len(data):
        fail(f"{path}: {len(data) - end} trailing bytes")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--expect", required=True, help="JSON of config fields and their expected values")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--ids")
    ap.add_argument("--logits")
    a = ap.parse_args()
    with open(os.path.join(a.adapter, "adapter_config.json")) as f:
        acfg = json.load(f)
    with open(os.path.join(a.model, "config.json")) as f:
        mcfg = json.load(f)
    for k, t in FIELDS.items():
        if k not in acfg:
            fail(f"adapter_config.json: field {k} missing")
        if not isinstance(acfg[k], t) or (t is int and isinstance(acfg[k], bool)):
            fail(f"adapter_config.json: {k} = {acfg[k]!r} has the wrong JSON type")
    fixed = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "bias": "none", "fan_in_fan_out": False,
             "inference_mode": True, "use_dora": False, "modules_to_save": None}
    for k, v in list(fixed.items()) + list(json.loads(a.expect).items()):
        got = acfg[k]
        if isinstance(v, list) and isinstance(got, list):
            got, v = sorted(got), sorted(v)
        if got != v:
            fail(f"adapter_config.json: {k} = {acfg[k]!r}, expected {v!r}")
    tensors = read_st(os.path.join(a.adapter, "adapter_model.safetensors"))
    want = {}
    for layer, key in peft_io.module_names(mcfg["num_hidden_layers"]):
        if peft_io.targeted(acfg, key, layer):
            out, inp = peft_io.module_shape(mcfg, key)
            r, _ = peft_io.scale_of(acfg, key)
            want[f"base_model.model.{key}.lora_A.weight"] = [r, inp]
            want[f"base_model.model.{key}.lora_B.weight"] = [out, r]
    if set(want) != set(tensors):
        fail(f"tensor names differ from PEFT's: {sorted(set(want) ^ set(tensors))[:6]}")
    for n, shp in want.items():
        if list(tensors[n].shape) != shp:
            fail(f"{n}: shape {list(tensors[n].shape)}, PEFT expects {shp}")
    if a.fresh:
        for n, t in tensors.items():
            if n.endswith("lora_B.weight") and np.any(t != 0):
                fail(f"{n}: PEFT initialises B to zeros")
            if n.endswith("lora_A.weight"):
                bound = 1 / math.sqrt(t.shape[1])
                if np.abs(t).max() > bound * (1 + 1e-6):
                    fail(f"{n}: |A| {np.abs(t).max()} exceeds kaiming_uniform(a=sqrt(5))'s bound {bound}")
                # std of U(-b, b) is b/sqrt(3); 8+ hundred samples: 10% is many standard errors
                if t.size >= 500 and abs(t.std() / (bound / math.sqrt(3)) - 1) > 0.1:
                    fail(f"{n}: std {t.std():.4g} vs U(-b,b)'s {bound / math.sqrt(3):.4g}")
    if a.ids and a.logits:
        from compare_lora_grads import LoraDecoder
        lora = {}
        for n in tensors:
            if n.endswith(".lora_A.weight"):
                key = n[len("base_model.model."):-len(".lora_A.weight")]
                _, s = peft_io.scale_of(acfg, key)
                lora[key] = (torch.from_numpy(tensors[n]), torch.from_numpy(tensors[n.replace("lora_A", "lora_B")]), s)
        dec = LoraDecoder.load(a.model, dtype=torch.float64, lora=lora)
        seqs = [[int(t) for t in s.split(",")] for s in a.ids.split(";")]
        got = json.load(open(a.logits))["logits"]
        worst = 0.0
        for sq, g in zip(seqs, got):
            ref = dec.logits_list([sq])[0].numpy()
            worst = max(worst, float(np.abs(np.array(g) - ref).max()))
        print(f"logits vs reference with the adapter applied PEFT's way: max|diff| {worst:.2e}")
        if worst > 1e-4:
            fail("logits differ from the reference")
    print(f"PASS {len(tensors)} tensors, config fields ok")


if __name__ == "__main__":
    main()
