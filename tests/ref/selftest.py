#!/usr/bin/python3
"""Self-checks of the PyTorch reference (CTest: ref_selftest), independent of tunic.

What it is for: the reference must refuse what it does not implement (so a family test can never
pass by approximation), decode safetensors dtypes bit-exactly (hand-worked values), compute
llama3 RoPE frequencies as the formula says, and apply the sliding window as HF's mask does.
What it is not: a test of tunic.
"""
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_decoder as H  # noqa: E402

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def write_raw_st(path, entries):
    """entries: name -> (dtype, shape, raw bytes)."""
    header, off, blobs = {}, 0, []
    for name, (dt, shape, raw) in entries.items():
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


BASE = {"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "intermediate_size": 16, "vocab_size": 11, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True}


def refused(cfg):
    try:
        H.Spec(cfg)
    except H.RefusedConfig:
        return True
    return False


def main():
    # 1. refusals
    check(refused(dict(BASE, model_type="mistral")), "refuses model_type mistral")
    check(refused(dict(BASE, rope_scaling={"rope_type": "yarn", "factor": 4.0})), "refuses rope type yarn")
    check(refused(dict(BASE, rope_scaling={"type": "dynamic", "factor": 2.0})), "refuses rope type dynamic (old 'type' key)")
    check(refused(dict(BASE, hidden_act="relu")), "refuses activation relu")
    check(refused(dict(BASE, partial_rotary_factor=0.5)), "refuses partial_rotary_factor 0.5")
    check(refused(dict(BASE, model_type="qwen2", use_sliding_window=True)), "refuses qwen2 use_sliding_window")
    check(refused(dict(BASE, model_type="gemma3_text", layer_types=["sliding_attention"], sliding_window=None)),
          "refuses gemma3 sliding layers without a window")
    check(refused(dict(BASE, model_type="gemma3_text", use_bidirectional_attention=True)),
          "refuses gemma3 bidirectional attention")
    check(not refused(dict(BASE, rope_scaling={"type": "linear", "factor": 2.0})), "accepts linear (old 'type' key)")

    # 2. safetensors decoding, hand-worked bit patterns
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.safetensors")
        write_raw_st(p, {
            "bf": ("BF16", [3], struct.pack("<3H", 0x3F80, 0xC000, 0x3E80)),   # 1.0, -2.0, 0.25
            "hf": ("F16", [2], struct.pack("<2H", 0x3C00, 0xB800)),            # 1.0, -0.5
            "f": ("F32", [2, 1], struct.pack("<2f", 3.5, -7.0)),
        })
        t = H.read_safetensors(p)
        check(t["bf"].tolist() == [1.0, -2.0, 0.25], "BF16 0x3F80,0xC000,0x3E80 -> 1, -2, 0.25")
        check(t["hf"].tolist() == [1.0, -0.5], "F16 0x3C00,0xB800 -> 1, -0.5")
        check(t["f"].tolist() == [[3.5], [-7.0]], "F32 shape [2,1]")
        with open(p, "rb") as f:
            raw = f.read()
        with open(p, "wb") as f:
            f.write(raw[:-3])
        try:
            H.read_safetensors(p)
            check(False, "truncated file rejected")
        except ValueError:
            check(True, "truncated file rejected")

    # 3. llama3 rope against the formula, evaluated per frequency in float64
    sc = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}
    inv = H.rope_inv_freq(500000.0, 16, sc, {}).double()
    ok = True
    for i in range(8):
        f = 1.0 / 500000.0 ** (2 * i / 16)
        wl = 2 * math.pi / f
        if wl < 64 / 4:
            want = f
        elif wl > 64 / 1:
            want = f / 8
        else:
            s = (64 / wl - 1) / (4 - 1)
            want = (1 - s) * f / 8 + s * f
        ok &= abs(inv[i].item() - want) <= 1e-6 * want
    check(ok, "llama3 inv_freq = formula (kept / smoothed / divided), rel 1e-6")
    check(torch.allclose(H.rope_inv_freq(10000.0, 8, {"rope_type": "linear", "factor": 4.0}, {}),
                         H.rope_inv_freq(10000.0, 8, None, {}) / 4), "linear scaling divides inv_freq by factor")

    # 4. sliding window: with one sliding layer of window w, the last logits depend on token
    #    T-w (inside) but not on token T-w-1 (outside): i - w < j <= i.
    cfg = dict(BASE, model_type="gemma3_text", layer_types=["sliding_attention"], sliding_window=3,
               query_pre_attn_scalar=4, head_dim=4)
    g = torch.Generator().manual_seed(0)
    spec = H.Spec(cfg)
    shapes = {"model.embed_tokens.weight": (11, 8), "model.norm.weight": (8,)}
    pfx = "model.layers.0."
    for n, sh in {"self_attn.q_proj.weight": (8, 8), "self_attn.k_proj.weight": (4, 8),
                  "self_attn.v_proj.weight": (4, 8), "self_attn.o_proj.weight": (8, 8),
                  "self_attn.q_norm.weight": (4,), "self_attn.k_norm.weight": (4,),
                  "mlp.gate_proj.weight": (16, 8), "mlp.up_proj.weight": (16, 8),
                  "mlp.down_proj.weight": (8, 16), "input_layernorm.weight": (8,),
                  "post_attention_layernorm.weight": (8,), "pre_feedforward_layernorm.weight": (8,),
                  "post_feedforward_layernorm.weight": (8,)}.items():
        shapes[pfx + n] = sh
    w = {n: torch.randn(*sh, generator=g) * 0.5 for n, sh in shapes.items()}
    dec = H.Decoder(cfg, w)
    base = [1, 2, 3, 4, 5, 6]
    out0 = dec.forward(torch.tensor([base]))[0, -1]
    outside = list(base)
    outside[5 - 3] = 9  # j = i - w: outside the window
    inside = list(base)
    inside[5 - 2] = 9   # j = i - w + 1: inside
    d_out = float((dec.forward(torch.tensor([outside]))[0, -1] - out0).abs().max())
    d_in = float((dec.forward(torch.tensor([inside]))[0, -1] - out0).abs().max())
    check(d_out == 0.0 and d_in > 1e-3, f"sliding window 3: key i-3 invisible (diff {d_out:.1e}), key i-2 visible (diff {d_in:.1e})")
    check(spec.layer_types == ["sliding_attention"], "explicit layer_types kept")
    pat = H.Spec(dict(cfg, layer_types=None, num_hidden_layers=6, sliding_window_pattern=3))
    check(pat.layer_types == ["sliding_attention", "sliding_attention", "full_attention"] * 2,
          "sliding_window_pattern 3 -> S,S,F,S,S,F")

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
