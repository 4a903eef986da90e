#!/usr/bin/python3
"""torch_infer.py - the PyTorch side of tunic's inference benchmark (bench/run_infer.sh).

What it is for: load the SAME Hugging Face checkpoint directory that bench_infer loads
(config.json + model.safetensors or shards, f32/bf16/f16 read into f32) and time, in plain
PyTorch (Debian's torch 1.13, 2 threads), the same work: prefill of B prompts of P tokens
in one forward, then NEW greedy KV-cache decode steps; median of a few reps after a warm-up.
The prompts come from the same formula as bench_infer.c, and the first greedy tokens of
every sequence are written out so the driver can check both engines computed the same thing.

The decoder is written for speed the way the peer baseline (shared/peers/torch_llama_train.py)
decodes: a preallocated per-layer KV cache (B, KV, Tmax, D), GQA by viewing the query heads
grouped per kv head (no repeat of K/V), the causal mask only when T > 1, logits only for the
last position. On top of that q/k/v and gate/up are fused into one matmul each (fewer, larger
GEMMs). Families: llama and qwen2 with default RoPE (rotate_half layout, as HF); anything else
is refused. Run it under the peer's environment (OpenMP OpenBLAS, tcmalloc): see run_infer.sh.

Not for: correctness testing (tests/ref/hf_decoder.py is the reference), training speed.

    /usr/bin/python3 torch_infer.py --model DIR [--prompt-len 128] [--new-tokens 32]
        [--batches 1,8] [--reps 3] [--threads 2] [--label NAME] [--json FILE] [--dump FILE]
--dump appends, per batch size, the prefill logits (B, V) and the last decode step's logits
(B, V) as raw f32, as bench_infer --dump does (the driver compares the two files).
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch

from torch_st import load_weights as _load_weights  # noqa: E402
import torch.nn.functional as F

N_CHECK = 16


def prompt_tok(b, t, V):
    """The shared prompt formula (bench_infer.c has the same)."""
    return 3 + (b * 1000003 + t * 7919 + 12345) % (V - 3)


def load_weights(d):
    return _load_weights(d, "torch_infer")


class Decoder:
    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        mt = cfg["model_type"]
        if mt not in ("llama", "qwen2"):
            raise SystemExit(f"torch_infer: model_type {mt} not implemented here")
        rs = cfg.get("rope_scaling")
        if rs is not None and rs.get("rope_type", rs.get("type")) not in (None, "default"):
            raise SystemExit("torch_infer: rope_scaling not implemented here")
        if cfg.get("use_sliding_window"):
            raise SystemExit("torch_infer: sliding window not implemented here")
        self.C = cfg["hidden_size"]
        self.L = cfg["num_hidden_layers"]
        self.H = cfg["num_attention_heads"]
        self.KV = cfg.get("num_key_value_heads") or self.H
        self.D = cfg.get("head_dim") or self.C // self.H
        self.F = cfg["intermediate_size"]
        self.V = cfg["vocab_size"]
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.theta = float(cfg.get("rope_theta", 10000.0))
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        qkv_bias = mt == "qwen2" or bool(cfg.get("attention_bias", False))
        o_bias = mt == "llama" and bool(cfg.get("attention_bias", False))
        if mt == "llama" and cfg.get("mlp_bias"):
            raise SystemExit("torch_infer: mlp_bias not implemented here")
        if cfg.get("hidden_act", "silu") not in ("silu", "swish"):
            raise SystemExit("torch_infer: only silu MLPs here")
        w = load_weights(d)
        self.n_floats = sum(t.numel() for t in w.values())
        self.embed = w.pop("model.embed_tokens.weight")
        self.head = self.embed if self.tied else w.pop("lm_head.weight")
        self.norm = w.pop("model.norm.weight")
        self.layers = []
        for l in range(self.L):
            p = f"model.layers.{l}."
            g = lambda n: w.pop(p + n)  # noqa: E731
            y = dict(ln1=g("input_layernorm.weight"), ln2=g("post_attention_layernorm.weight"))
            y["wqkv"] = torch.cat([g("self_attn.q_proj.weight"), g("self_attn.k_proj.weight"),
                                   g("self_attn.v_proj.weight")], 0).contiguous()
            y["bqkv"] = (torch.cat([g("self_attn.q_proj.bias"), g("self_attn.k_proj.bias"),
                                    g("self_attn.v_proj.bias")]) if qkv_bias else None)
            y["wo"] = g("self_attn.o_proj.weight")
            y["bo"] = g("self_attn.o_proj.bias") if o_bias else None
            y["wgu"] = torch.cat([g("mlp.gate_proj.weight"), g("mlp.up_proj.weight")], 0).contiguous()
            y["wdown"] = g("mlp.down_proj.weight")
            self.layers.append(y)
        if w:
            raise SystemExit(f"torch_infer: unused tensors {sorted(w)[:4]}")

    def setup(self, B, Tmax):
        D, KV = self.D, self.KV
        inv = 1.0 / (self.theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
        fr = torch.outer(torch.arange(Tmax, dtype=torch.int64).float(), inv)
        emb = torch.cat((fr, fr), -1)
        self.cos, self.sin = emb.cos(), emb.sin()  # (Tmax, D)
        self.mask = torch.full((Tmax, Tmax), float("-inf")).triu(1)
        self.cache = [(torch.zeros(B, KV, Tmax, D), torch.zeros(B, KV, Tmax, D)) for _ in range(self.L)]

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    @staticmethod
    def rope(x, cos, sin):
        h = x.shape[-1] // 2
        rot = torch.cat((-x[..., h:], x[..., :h]), -1)
        return x * cos + rot * sin

    def forward(self, idx, pos):
        """idx (B, T) at positions pos..pos+T-1 -> logits (B, V) of the last position."""
        B, T = idx.shape
        H, KV, D = self.H, self.KV, self.D
        G, HD, KD = H // KV, H * D, KV * D
        scale = 1.0 / math.sqrt(D)
        cos, sin = self.cos[pos:pos + T], self.sin[pos:pos + T]
        Lk = pos + T
        x = F.embedding(idx, self.embed)  # (B, T, C)
        for y, (kc, vc) in zip(self.layers, self.cache):
            qkv = F.linear(self.rms(x, y["ln1"]), y["wqkv"], y["bqkv"])  # (B, T, HD + 2 KD)
            q = qkv[..., :HD].view(B, T, H, D).transpose(1, 2)
            k = qkv[..., HD:HD + KD].view(B, T, KV, D).transpose(1, 2)
            v = qkv[..., HD + KD:].view(B, T, KV, D).transpose(1, 2)
            q = self.rope(q, cos, sin)
            kc[:, :, pos:Lk] = self.rope(k, cos, sin)
            vc[:, :, pos:Lk] = v
            qq = q.reshape(B, KV, G, T, D)  # query heads grouped by their kv head
            att = (qq @ kc[:, :, :Lk].unsqueeze(2).transpose(-2, -1)) * scale  # (B, KV, G, T, Lk)
            if T > 1:
                att = att + self.mask[pos:Lk, :Lk]
            att = torch.softmax(att, -1)
            o = (att @ vc[:, :, :Lk].unsqueeze(2)).view(B, H, T, D).transpose(1, 2).reshape(B, T, HD)
            x = x + F.linear(o, y["wo"], y["bo"])
            gu = F.linear(self.rms(x, y["ln2"]), y["wgu"])  # (B, T, 2F)
            x = x + F.linear(F.silu(gu[..., :self.F]) * gu[..., self.F:], y["wdown"])
        return F.linear(self.rms(x[:, -1], self.norm), self.head)


def dump(path, t):
    with open(path, "ab") as f:
        f.write(t.float().contiguous().numpy().astype("<f4").tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label", default="")
    ap.add_argument("--json")
    ap.add_argument("--dump")
    a = ap.parse_args()
    P, NEW = a.prompt_len, a.new_tokens
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    m = Decoder(a.model)
    load_s = time.perf_counter() - t0
    with open("/proc/self/statm") as f:
        rss_loaded = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} "
          f"LD_PRELOAD={os.environ.get('LD_PRELOAD')} LD_LIBRARY_PATH={os.environ.get('LD_LIBRARY_PATH')}")
    print(f"# model {a.model}: params={m.n_floats/1e6:.1f}M load {load_s:.2f} s")
    C, L, H, KV, D, Fd, V = m.C, m.L, m.H, m.KV, m.D, m.F, m.V
    HD, KD = H * D, KV * D
    n_layer_mm = L * (C * HD * 2 + 2 * C * KD + 3 * C * Fd)
    n_head = V * C
    res = []
    for B in [int(s) for s in a.batches.split(",")]:
        m.setup(B, P + NEW + 1)
        prompt = torch.tensor([[prompt_tok(b, t, V) for t in range(P)] for b in range(B)], dtype=torch.int64)
        tp, td, toks = [], [], None
        for rep in range(-1, a.reps):  # rep -1: warm-up
            with torch.inference_mode():
                t0 = time.perf_counter()
                lg = m.forward(prompt, 0)
                nxt = lg.argmax(-1)  # (B)
                t1 = time.perf_counter()
                if rep == -1 and a.dump:
                    dump(a.dump, lg)
                out = []
                for step in range(NEW):
                    out.append(nxt)
                    lg = m.forward(nxt[:, None], P + step)
                    nxt = lg.argmax(-1)
                t2 = time.perf_counter()
                if rep == -1 and a.dump:
                    dump(a.dump, lg)
            if rep <= 0:
                toks = torch.stack(out[:N_CHECK], 1).tolist()
            if rep >= 0:
                tp.append(t1 - t0)
                td.append(t2 - t1)
        ps, ds = float(np.median(tp)), float(np.median(td))
        att = 4.0 * L * HD * P * (P + 1) / 2
        flops = 2.0 * n_layer_mm * B * P + 2.0 * n_head * B + att * B
        small = L * (2 * C + (HD + 2 * KD if m.layers[0]["bqkv"] is not None else 0)) + C
        wbytes = 4.0 * (n_layer_mm + n_head + small)
        kvbytes = 4.0 * 2 * L * KD * (P + NEW / 2.0) * B
        r = dict(B=B, prefill_s=ps, prefill_tok_s=B * P / ps, prefill_gflops=flops / ps / 1e9, decode_s=ds,
                 decode_tok_s=B * NEW / ds, ms_per_step=ds / NEW * 1e3,
                 decode_gbs=(wbytes + kvbytes) / (ds / NEW) / 1e9, prefill_best_s=min(tp),
                 decode_best_s=min(td), tokens=toks)
        res.append(r)
        print(f"B={B} prefill {B*P} tok: {ps*1e3:.1f} ms -> {r['prefill_tok_s']:.0f} tok/s, "
              f"{r['prefill_gflops']:.1f} GFLOP/s | decode {NEW} steps: {r['ms_per_step']:.2f} ms/step -> "
              f"{r['decode_tok_s']:.1f} tok/s, {r['decode_gbs']:.2f} GB/s of weights+KV", flush=True)
        print(f"B={B} greedy tokens of sequence 0: {' '.join(map(str, toks[0]))}")
        m.cache = None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"# peak RSS {peak:.1f} MB (after load {rss_loaded:.1f} MB)")
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(dict(engine="torch", label=a.label, model=a.model, P=P, new=NEW, reps=a.reps,
                                    threads=a.threads, rss_peak_mb=peak, rss_loaded_mb=rss_loaded,
                                    load_s=load_s, batches=res)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
