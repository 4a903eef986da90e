#!/usr/bin/python3
"""torch_train.py - the PyTorch side of tunic's training benchmark (bench/run_train.sh).

What it is for: load the SAME Hugging Face checkpoint directory that bench_train loads
(config.json + model.safetensors or shards, read into f32) and time, in plain PyTorch
(Debian's torch 1.13, 2 threads), the same training step: forward + next-token
cross-entropy (mean over B*T tokens) + backward + AdamW (betas 0.9/0.999, eps 1e-8,
weight decay 0), full fine-tuning or LoRA (rank r, alpha 2r, on q,k,v,o; B = 0 at the
start as PEFT), in f32 or under torch.autocast("cpu", bfloat16) around forward + loss.
Median step after warm-up steps; peak RSS from getrusage. Tokens and targets come from
the formula bench_train.c uses, so the losses of the first steps must agree.

The model is written the way the peer baseline (shared/peers/torch_llama_train.py) trains:
separate q/k/v projections, GQA by repeat_interleave, an additive causal mask, softmax in
f32, F.cross_entropy on f32 logits; with what the checkpoint needs on top (HF rotate_half
RoPE with the config's theta, Qwen2's q/k/v biases, tied or untied head). Families: llama
and qwen2 with default RoPE; anything else is refused. Run it under the peer's environment
(OpenMP OpenBLAS, tcmalloc): see run_train.sh.

Not for: correctness testing (tests/ref is the reference), inference speed (torch_infer.py).

    /usr/bin/python3 torch_train.py --model DIR [--batch 8] [--seq 256] [--lora-rank 0]
        [--steps 5] [--warmup 2] [--lr 1e-4] [--bf16] [--threads 2] [--label NAME] [--json FILE]
"""
import argparse
import json
import math
import os
import resource
import time

import torch

from torch_st import load_weights as _load_weights  # noqa: E402
import torch.nn as nn
import torch.nn.functional as F


def data_tok(b, t, V):
    """The shared data formula (bench_train.c has the same)."""
    return 3 + (b * 1000003 + t * 7919 + ((t * t) % 9973) * 31 + 12345) % (V - 3)


def load_weights(d):
    return _load_weights(d, "torch_train")


class RMSNorm(nn.Module):
    def __init__(self, w, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(w)

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


class Linear(nn.Module):
    """y = x W^T (+ b) (+ s * (x A^T) B^T with a LoRA adapter)."""

    def __init__(self, w, b=None):
        super().__init__()
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(b) if b is not None else None
        self.lora = None

    def add_lora(self, r, alpha, gen):
        out, inp = self.weight.shape
        bound = 1.0 / math.sqrt(inp)  # PEFT: kaiming_uniform(a=sqrt(5)) on A, B = 0
        self.A = nn.Parameter((torch.rand(r, inp, generator=gen) * 2 - 1) * bound)
        self.B = nn.Parameter(torch.zeros(out, r))
        self.lora = alpha / r

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.lora is not None:
            y = y + F.linear(F.linear(x, self.A), self.B) * self.lora
        return y


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin


class Block(nn.Module):
    def __init__(self, w, p, c):
        super().__init__()
        self.H, self.KV, self.D = c["H"], c["KV"], c["D"]
        g = lambda n: w.pop(p + n)  # noqa: E731
        gb = lambda n: w.pop(p + n) if c["qkv_bias"] else None  # noqa: E731
        self.ln1 = RMSNorm(g("input_layernorm.weight"), c["eps"])
        self.ln2 = RMSNorm(g("post_attention_layernorm.weight"), c["eps"])
        self.q = Linear(g("self_attn.q_proj.weight"), gb("self_attn.q_proj.bias"))
        self.k = Linear(g("self_attn.k_proj.weight"), gb("self_attn.k_proj.bias"))
        self.v = Linear(g("self_attn.v_proj.weight"), gb("self_attn.v_proj.bias"))
        self.o = Linear(g("self_attn.o_proj.weight"), w.pop(p + "self_attn.o_proj.bias") if c["o_bias"] else None)
        self.gate = Linear(g("mlp.gate_proj.weight"))
        self.up = Linear(g("mlp.up_proj.weight"))
        self.down = Linear(g("mlp.down_proj.weight"))

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        H, KV, D = self.H, self.KV, self.D
        h = self.ln1(x)
        q = self.q(h).view(B, T, H, D).transpose(1, 2)
        k = self.k(h).view(B, T, KV, D).transpose(1, 2)
        v = self.v(h).view(B, T, KV, D).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if H > KV:
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D)) + mask
        att = F.softmax(att.float(), dim=-1).type_as(q)
        y = (att @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + self.o(y)
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, d):
        super().__init__()
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        mt = cfg["model_type"]
        if mt not in ("llama", "qwen2"):
            raise SystemExit(f"torch_train: model_type {mt} not implemented here")
        rs = cfg.get("rope_scaling")
        if rs is not None and rs.get("rope_type", rs.get("type")) not in (None, "default"):
            raise SystemExit("torch_train: rope_scaling not implemented here")
        if cfg.get("hidden_act", "silu") not in ("silu", "swish") or cfg.get("mlp_bias"):
            raise SystemExit("torch_train: only silu MLPs without bias here")
        H = cfg["num_attention_heads"]
        c = dict(H=H, KV=cfg.get("num_key_value_heads") or H,
                 D=cfg.get("head_dim") or cfg["hidden_size"] // H,
                 eps=float(cfg.get("rms_norm_eps", 1e-6)),
                 qkv_bias=mt == "qwen2" or bool(cfg.get("attention_bias", False)),
                 o_bias=mt == "llama" and bool(cfg.get("attention_bias", False)))
        self.V, self.theta, self.D = cfg["vocab_size"], float(cfg.get("rope_theta", 10000.0)), c["D"]
        w = load_weights(d)
        self.embed = nn.Parameter(w.pop("model.embed_tokens.weight"))
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        self.head = None if self.tied else nn.Parameter(w.pop("lm_head.weight"))
        self.norm = RMSNorm(w.pop("model.norm.weight"), c["eps"])
        self.layers = nn.ModuleList(Block(w, f"model.layers.{l}.", c) for l in range(cfg["num_hidden_layers"]))
        if w:
            raise SystemExit(f"torch_train: unused tensors {sorted(w)[:4]}")

    def setup(self, T):
        D = self.D
        inv = 1.0 / (self.theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
        fr = torch.outer(torch.arange(T, dtype=torch.int64).float(), inv)
        emb = torch.cat((fr, fr), -1)
        self.cos, self.sin = emb.cos(), emb.sin()  # (T, D)
        self.mask = torch.full((T, T), float("-inf")).triu(1)

    def forward(self, idx, targets):
        x = F.embedding(idx, self.embed)
        for l in self.layers:
            x = l(x, self.cos, self.sin, self.mask)
        logits = F.linear(self.norm(x), self.embed if self.tied else self.head)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lora-rank", type=int, default=0)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--bf16", action="store_true", help="torch.autocast('cpu', bfloat16) around forward + loss")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label", default="")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = Model(a.model)
    load_s = time.perf_counter() - t0
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    B, T, V = a.batch, a.seq, model.V
    model.setup(T)
    if a.lora_rank:
        for p in model.parameters():
            p.requires_grad_(False)
        gen = torch.Generator().manual_seed(1)
        for l in model.layers:
            for lin in (l.q, l.k, l.v, l.o):
                lin.add_lora(a.lora_rank, 2.0 * a.lora_rank, gen)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    x = torch.tensor([[data_tok(b, t, V) for t in range(T)] for b in range(B)], dtype=torch.int64)
    y = torch.tensor([[data_tok(b, t + 1, V) for t in range(T)] for b in range(B)], dtype=torch.int64)
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} {a.model}: "
          f"{'LoRA r=%d' % a.lora_rank if a.lora_rank else 'full'}, B={B} T={T}, "
          f"{sum(p.numel() for p in params)} trainable, bf16 autocast {a.bf16}", flush=True)
    times, losses, cpus = [], [], []
    for step in range(a.warmup + a.steps):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        losses.append(loss.item())
        print(f"step {step} ({'warmup' if step < a.warmup else 'timed'}) loss {losses[-1]:.6f} {dt*1e3:.0f} ms  "
              f"usr {r1.ru_utime-r0.ru_utime:.2f}s sys {r1.ru_stime-r0.ru_stime:.2f}s "
              f"minflt {r1.ru_minflt-r0.ru_minflt}", flush=True)
        if step >= a.warmup:
            times.append(dt)
            cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    ts = sorted(times)
    n = len(ts)
    med = ts[n // 2] if n % 2 else 0.5 * (ts[n // 2 - 1] + ts[n // 2])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cs = sorted(cpus)
    cpu = cs[n // 2] if n % 2 else 0.5 * (cs[n // 2 - 1] + cs[n // 2])
    N = B * T
    print(f"RESULT {a.label} train tokens/s {N/med:.0f} (median step {med*1e3:.0f} ms, best {N/ts[0]:.0f} tok/s)  "
          f"{cpu:.2f} CPU s/step; peak RSS {rss:.0f} MB (after load {rss_loaded:.0f} MB)")
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(dict(engine="torch", label=a.label, mode="bf16" if a.bf16 else "f32",
                                    lora_rank=a.lora_rank, B=B, T=T, tok_s=N / med, tok_s_best=N / ts[0],
                                    step_s=med, cpu_s=cpu, rss_peak_mb=rss, rss_loaded_mb=rss_loaded, load_s=load_s,
                                    trainable=sum(p.numel() for p in params), losses=losses)) + "\n")


if __name__ == "__main__":
    main()
