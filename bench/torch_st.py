"""torch_st.py - safetensors reader shared by the PyTorch peers of the benchmarks
(bench/torch_infer.py, bench/torch_train.py). Reads each tensor straight into its own f32 torch
buffer (no whole-file copy, no lingering mmap pages in the peer's RSS). Not for tunic itself.
Format: 8-byte little-endian header length, JSON header, raw data."""
import json
import struct

import torch


def read_safetensors(path, out, who):
    """Adds {name: f32 tensor} of the safetensors file `path` to `out`; `who` prefixes errors."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            shape = [int(s) for s in info["shape"]]
            dt = info["dtype"]
            f.seek(base + b)
            if dt == "F32":
                t = torch.empty(shape, dtype=torch.float32)
                f.readinto(memoryview(t.numpy()).cast("B"))
            elif dt in ("BF16", "F16"):
                raw = torch.empty(shape, dtype=torch.int16)
                f.readinto(memoryview(raw.numpy()).cast("B"))
                t = raw.view(torch.bfloat16 if dt == "BF16" else torch.float16).float()
            else:
                raise SystemExit(f"{who}: {path}: tensor {name}: dtype {dt} not supported")
            if t.numel() * (4 if dt == "F32" else 2) != e - b:
                raise SystemExit(f"{who}: {path}: tensor {name}: size disagrees with shape")
            out[name] = t


def load_weights(d, who):
    """{name: f32 tensor} of a Hugging Face model directory (single file or sharded)."""
    import os
    out = {}
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            for shard in sorted(set(json.load(f)["weight_map"].values())):
                read_safetensors(os.path.join(d, shard), out, who)
    else:
        read_safetensors(os.path.join(d, "model.safetensors"), out, who)
    return out
