#!/usr/bin/python3
"""LoRA gradients of `tunic logits --adapter DIR --loss --lora-grads FILE` vs PyTorch autograd.

What it is for: issue 4's LoRA correctness check. An adapter is made here in PEFT's layout
(peft_io.make_adapter: random A, random NONZERO B, so every gradient path is exercised),
tunic loads it as an adapter made elsewhere, and the reference is tests/ref/hf_decoder.Decoder
in float64 with every targeted projection computed as PEFT's LoRA Linear does:
    y = x W^T (+ b) + scale * (x A^T) B^T          (dropout 0)
with A and B requiring grad and the base weights frozen. Loss: mean next-token cross-entropy
over all positions of all sequences (each sequence run on its own in the reference).
Checks: loss to 1e-5; every lora_A/lora_B gradient to 1e-4 max abs and to 1e-3 of the
tensor's largest reference gradient (+1e-7); the same tensor names both sides.
Usage: compare_lora_grads.py --model DIR --ids "1,2;3,4,5" --adapter-config JSON [--dtype F32]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import hf_decoder  # noqa: E402
import peft_io  # noqa: E402


class LoraDecoder(hf_decoder.Decoder):
    """hf_decoder.Decoder with LoRA deltas on some projections."""

    def __init__(self, *a, lora=None, **kw):
        super().__init__(*a, **kw)
        self.lora = lora or {}  # module name -> (A, B, scale), A/B torch tensors

    def _linear(self, x, name):
        y = super()._linear(x, name)
        if name in self.lora:
            A, B, s = self.lora[name]
            y = y + s * F.linear(F.linear(x, A), B)
        return y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--adapter-config", required=True, help="JSON: LoraConfig fields (r, lora_alpha, target_modules...)")
    ap.add_argument("--dtype", default="F32", help="tensor dtype in adapter_model.safetensors")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--tunic", default=os.environ.get("TUNIC", "tunic"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    seqs = [[int(t) for t in s.split(",")] for s in a.ids.split(";")]
    acfg = json.loads(a.adapter_config)

    with tempfile.TemporaryDirectory() as tmp:
        adir = os.path.join(tmp, "adapter")
        peft_io.make_adapter(adir, a.model, acfg, seed=a.seed, dtype=a.dtype)
        # the values actually stored (bf16/f16 rounding included), read back independently
        stored = hf_decoder.read_safetensors(os.path.join(adir, "adapter_model.safetensors"))
        with open(os.path.join(adir, "adapter_config.json")) as f:
            full = json.load(f)
        lora, leaves = {}, {}
        for name, t in stored.items():
            leaves[name] = t.double().clone().requires_grad_(True)
        for name in stored:
            if name.endswith(".lora_A.weight"):
                mod = name[len("base_model.model."):-len(".lora_A.weight")]
                _, scale = peft_io.scale_of(full, mod)
                lora[mod] = (leaves[name], leaves[name.replace("lora_A", "lora_B")], scale)
        # hf_decoder's _linear is called with the module name ("model.layers.N.self_attn.q_proj")
        dec = LoraDecoder.load(a.model, dtype=torch.float64, requires_grad=False, lora=lora)
        total, count = 0.0, 0
        for sq in seqs:
            ids = torch.tensor(sq, dtype=torch.int64)[None]
            logits = dec.forward(ids)[0]
            if len(sq) > 1:
                total = total + F.cross_entropy(logits[:-1], ids[0, 1:], reduction="sum")
                count += len(sq) - 1
        loss = total / count
        loss.backward()

        gpath = os.path.join(tmp, "lora_grads.safetensors")
        r = subprocess.run([a.tunic, "logits", "--model", a.model, "--ids", a.ids, "--out",
                            os.path.join(tmp, "l.json"), "--adapter", adir, "--loss", "--lora-grads", gpath],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        tl = float(r.stdout.split()[1])
        grads = hf_decoder.read_safetensors(gpath)

    ok = True
    dl = abs(tl - loss.item())
    print(f"loss tunic {tl:.7f} ref {loss.item():.7f} |diff| {dl:.2e}  ({len(lora)} adapted modules)")
    ok &= dl < 1e-5
    if set(grads) != set(leaves):
        print("tensor names differ:", sorted(set(grads) ^ set(leaves)))
        return 1
    worst = (0.0, "")
    for n in sorted(leaves):
        ref = leaves[n].grad
        if list(grads[n].shape) != list(ref.shape):
            print(f"FAIL {n}: shape {list(grads[n].shape)} vs {list(ref.shape)}")
            ok = False
            continue
        d = (grads[n].double() - ref).abs().max().item()
        scale = ref.abs().max().item()
        if d > worst[0]:
            worst = (d, n)
        if d > a.tol or d > 1e-3 * scale + 1e-7:
            print(f"FAIL {n}: max|diff| {d:.3e} (max|ref| {scale:.3e})")
            ok = False
        if scale == 0.0:
            print(f"FAIL {n}: reference gradient is zero (the test would not test anything)")
            ok = False
    print(f"{len(leaves)} LoRA gradients, worst max|diff| {worst[0]:.3e} in {worst[1]}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
