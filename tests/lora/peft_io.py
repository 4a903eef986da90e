#!/usr/bin/python3
"""PEFT LoRA adapter files for tunic's tests, written and read without tunic.

What it is for: making adapters "elsewhere" (as PEFT's save_pretrained lays them out:
adapter_config.json + adapter_model.safetensors with tensors named
base_model.model.<module>.lora_A.weight (r, in) and .lora_B.weight (out, r)), and PEFT's
module matching rules, re-implemented from PEFT's sources (tuners_utils.check_target_module_exists,
get_pattern_key, LoraLayer.update_layer), so tests compare tunic to an independent reading.
Not a general PEFT implementation: LoRA on the seven decoder projections only.
"""
import json
import math
import os
import re
import struct

import numpy as np

KINDS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def module_names(n_layers):
    out = []
    for l in range(n_layers):
        for k in KINDS:
            part = "self_attn" if k in KINDS[:4] else "mlp"
            out.append((l, f"model.layers.{l}.{part}.{k}"))
    return out


def module_shape(cfg, name):
    """(out, in) of a projection, from config.json."""
    C = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or C // H
    F = cfg["intermediate_size"]
    kind = name.rsplit(".", 1)[1]
    return {"q_proj": (H * D, C), "k_proj": (KV * D, C), "v_proj": (KV * D, C), "o_proj": (C, H * D),
            "gate_proj": (F, C), "up_proj": (F, C), "down_proj": (C, F)}[kind]


def targeted(acfg, key, layer):
    """PEFT's check_target_module_exists (string: re.fullmatch; list: equal or endswith '.'+t),
    then exclude_modules and layers_to_transform."""
    tm = acfg["target_modules"]
    if tm == "all-linear":
        hit = True
    elif isinstance(tm, str):
        hit = re.fullmatch(tm, key) is not None
    else:
        hit = key in tm or any(key.endswith("." + t) for t in tm)
    ex = acfg.get("exclude_modules")
    if hit and ex:
        if isinstance(ex, str):
            hit = re.fullmatch(ex, key) is None
        else:
            hit = not (key in ex or any(key.endswith("." + t) for t in ex))
    ltt = acfg.get("layers_to_transform")
    if hit and ltt is not None:
        hit = layer == ltt if isinstance(ltt, int) else layer in ltt
    return hit


def pattern_value(patterns, key, default):
    """PEFT's get_pattern_key: first pattern p with re.match(rf"(^|.*\\.){p}$", key)."""
    for p, v in (patterns or {}).items():
        if re.match(rf"(^|.*\.){p}$", key):
            return v
    return default


def scale_of(acfg, key):
    r = pattern_value(acfg.get("rank_pattern"), key, acfg["r"])
    alpha = pattern_value(acfg.get("alpha_pattern"), key, acfg.get("lora_alpha", 8))
    return r, (alpha / math.sqrt(r) if acfg.get("use_rslora") else alpha / r)


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: dict name -> float array. F32, F16 or BF16 (round to nearest even)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr, dtype=np.float32)
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            u = a.view(np.uint32).astype(np.uint64)
            u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
            raw = u.astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_adapter(out_dir, model_dir, acfg, seed=0, b_std=0.2, dtype="F32"):
    """A PEFT-layout adapter with random A (kaiming-uniform bound) and random nonzero B.
    Returns {module: (A, B, scale)} as float64 numpy arrays."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    rng = np.random.default_rng(seed)
    full = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "bias": "none", "lora_dropout": 0.0,
            "fan_in_fan_out": False, "inference_mode": True, "use_rslora": False, "use_dora": False,
            "modules_to_save": None, "base_model_name_or_path": model_dir}
    full.update(acfg)
    tensors, mods = {}, {}
    for layer, key in module_names(cfg["num_hidden_layers"]):
        if not targeted(full, key, layer):
            continue
        out, inp = module_shape(cfg, key)
        r, scale = scale_of(full, key)
        A = rng.uniform(-1 / math.sqrt(inp), 1 / math.sqrt(inp), size=(r, inp)).astype(np.float32)
        B = (rng.standard_normal((out, r)) * b_std).astype(np.float32)
        tensors[f"base_model.model.{key}.lora_A.weight"] = A
        tensors[f"base_model.model.{key}.lora_B.weight"] = B
        mods[key] = (A.astype(np.float64), B.astype(np.float64), scale)
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), tensors, dtype)
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump(full, f, indent=2, sort_keys=True)
    return mods
