#!/usr/bin/python3
"""Independent PyTorch reference decoder for tunic's correctness tests.

What it is for: load a Hugging Face model directory (config.json + model.safetensors, or shards
with model.safetensors.index.json) and compute the logits of every position of token sequences,
following transformers' modeling code for four families: llama, qwen2, qwen3, gemma3_text.
It was written from the HF sources (modeling_llama.py, modeling_qwen2.py, modeling_qwen3.py,
modeling_gemma3.py, modeling_rope_utils.py, masking_utils.py), not from tunic's C code.

What it is not: fast, or a general HF loader. Anything it does not implement (another
model_type, rope type, activation, sliding window on qwen, partial rotary...) is REFUSED with
an error, so that a test can never pass by silently approximating.

Needs only torch (1.13 is enough) and numpy. Use it as a script:
    /usr/bin/python3 hf_decoder.py --model DIR --ids "1,2,3;4,5" [--out FILE.json] [--dtype f32|f64]
or as a module (training tests reuse it with autograd):
    from hf_decoder import Decoder
    dec = Decoder.load(DIR, dtype=torch.float32, requires_grad=True)
    logits = dec.forward(ids)           # ids: LongTensor (B, T) -> (B, T, V)
    logits.sum().backward(); dec.params["model.embed_tokens.weight"].grad
Right padding is safe for forward(): with a causal mask, position t of a sequence only sees
positions <= t, so padded tails never change the logits of the real tokens.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


class RefusedConfig(Exception):
    """The config asks for something this reference does not implement."""


# ----------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length N, N bytes of JSON header, then raw data.
# Header: {"name": {"dtype": "F32"|"BF16"|"F16", "shape": [...], "data_offsets": [b, e]}, ...,
# optional "__metadata__"}; offsets are relative to the start of the data section.

def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        shape = [int(s) for s in info["shape"]]
        count = int(np.prod(shape)) if shape else 1
        dt = info["dtype"]
        if not (0 <= b <= e <= len(data)):
            raise ValueError(f"{path}: tensor {name}: data_offsets {b},{e} out of range")
        buf = data[b:e]
        if dt == "F32":
            arr = np.frombuffer(buf, dtype="<f4", count=count)
        elif dt == "F16":
            arr = np.frombuffer(buf, dtype="<f2", count=count).astype(np.float32)
        elif dt == "BF16":
            # bf16 is the top half of an f32: widen the 16 bits and shift them up.
            u16 = np.frombuffer(buf, dtype="<u2", count=count)
            arr = (u16.astype(np.uint32) << 16).view(np.float32)
        else:
            raise RefusedConfig(f"{path}: tensor {name}: dtype {dt} not supported by the reference")
        if arr.size * (2 if dt in ("F16", "BF16") else 4) != e - b:
            raise ValueError(f"{path}: tensor {name}: byte size disagrees with shape {shape}")
        out[name] = torch.from_numpy(np.array(arr, dtype=np.float32).reshape(shape))
    return out


def load_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        out = {}
        for shard in sorted(set(weight_map.values())):
            tensors = read_safetensors(os.path.join(model_dir, shard))
            for name, t in tensors.items():
                if weight_map.get(name) != shard:
                    raise ValueError(f"{shard}: tensor {name} not listed for this shard in the index")
                out[name] = t
        missing = [n for n in weight_map if n not in out]
        if missing:
            raise ValueError(f"index lists tensors not found in shards: {missing[:5]}")
        return out
    return read_safetensors(single)


# ----------------------------------------------------------------------------------------------
# Config -> a small table of differences between the families (checked against HF modeling code).

KNOWN_ACTS = {
    "silu": F.silu,
    "swish": F.silu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


class Spec:
    def __init__(self, cfg):
        self.cfg = cfg
        mt = cfg.get("model_type")
        if mt not in ("llama", "qwen2", "qwen3", "gemma3_text"):
            raise RefusedConfig(f"model_type {mt!r} not implemented by the reference")
        self.model_type = mt
        g = cfg.get
        self.hidden = int(g("hidden_size"))
        self.n_layers = int(g("num_hidden_layers"))
        self.n_heads = int(g("num_attention_heads"))
        self.n_kv = int(g("num_key_value_heads") or self.n_heads)
        self.ffn = int(g("intermediate_size"))
        self.vocab = int(g("vocab_size"))
        # HF: self.head_dim = getattr(config, "head_dim", hidden // heads) (None counts as absent
        # for the rope init: `getattr(config, "head_dim", None) or hidden // heads`).
        self.head_dim = int(g("head_dim") or self.hidden // self.n_heads)
        if self.n_heads % self.n_kv:
            raise RefusedConfig("num_attention_heads not a multiple of num_key_value_heads")
        self.eps = float(g("rms_norm_eps", 1e-6))
        # Default when absent: LlamaConfig/Qwen2Config/Qwen3Config False, Gemma3TextConfig True.
        self.tied = bool(g("tie_word_embeddings", mt == "gemma3_text"))
        prf = g("partial_rotary_factor", 1.0)
        if prf not in (None, 1, 1.0):
            raise RefusedConfig(f"partial_rotary_factor {prf} not implemented")

        act_key = "hidden_activation" if mt == "gemma3_text" else "hidden_act"
        act = g(act_key) or (g("hidden_act") if mt == "gemma3_text" else None)
        if act is None:
            act = "gelu_pytorch_tanh" if mt == "gemma3_text" else "silu"
        if act not in KNOWN_ACTS:
            raise RefusedConfig(f"activation {act!r} not implemented")
        self.act = KNOWN_ACTS[act]

        # Biases. llama: attention_bias on q/k/v/o, mlp_bias on gate/up/down.
        # qwen2: q/k/v always biased, o never (hard-coded in Qwen2Attention).
        # qwen3 / gemma3: attention_bias on q/k/v/o; no mlp bias.
        ab = bool(g("attention_bias", False))
        if mt == "qwen2":
            self.qkv_bias, self.o_bias, self.mlp_bias = True, False, False
        elif mt == "llama":
            self.qkv_bias, self.o_bias, self.mlp_bias = ab, ab, bool(g("mlp_bias", False))
        else:
            self.qkv_bias, self.o_bias, self.mlp_bias = ab, ab, False

        self.gemma = mt == "gemma3_text"
        self.qk_norm = mt in ("qwen3", "gemma3_text")
        if self.gemma:
            self.scaling = float(g("query_pre_attn_scalar", 256)) ** -0.5
            # Gemma3TextScaledWordEmbedding: torch.tensor(hidden**0.5) is f32, cast to weight dtype.
            self.embed_scale = float(np.float32(self.hidden ** 0.5))
            self.final_softcap = g("final_logit_softcapping")
            self.attn_softcap = g("attn_logit_softcapping")  # HF ignores it, see attn_softcap_mode
            self.sliding_window = g("sliding_window")
            lt = g("layer_types")
            if lt is None:
                pat = int(g("sliding_window_pattern", 6))
                lt = ["sliding_attention" if (i + 1) % pat else "full_attention"
                      for i in range(self.n_layers)]
            if len(lt) != self.n_layers or any(t not in ("sliding_attention", "full_attention") for t in lt):
                raise RefusedConfig(f"layer_types {lt} invalid for {self.n_layers} layers")
            self.layer_types = list(lt)
            if "sliding_attention" in lt and not self.sliding_window:
                raise RefusedConfig("sliding layers but no sliding_window")
            if g("use_bidirectional_attention"):
                raise RefusedConfig("use_bidirectional_attention not implemented")
            if g("rope_parameters") is not None:
                raise RefusedConfig("rope_parameters (transformers v5 layout) not implemented")
            theta_global = float(g("rope_theta", 1_000_000.0))
            theta_local = float(g("rope_local_base_freq", 10_000.0))
            # Rope scaling applies to global (full_attention) layers only; local layers use the
            # default rope with rope_local_base_freq.
            self.rope = {
                "full_attention": rope_inv_freq(theta_global, self.head_dim, g("rope_scaling"), cfg),
                "sliding_attention": rope_inv_freq(theta_local, self.head_dim, None, cfg),
            }
        else:
            self.scaling = self.head_dim ** -0.5
            self.embed_scale = None
            self.final_softcap = None
            self.attn_softcap = None
            if g("use_sliding_window"):
                raise RefusedConfig(f"{mt}: use_sliding_window=true not implemented")
            lt = g("layer_types")
            if lt is not None and any(t != "full_attention" for t in lt):
                raise RefusedConfig(f"{mt}: layer_types other than full_attention not implemented")
            self.layer_types = ["full_attention"] * self.n_layers
            self.sliding_window = None
            inv = rope_inv_freq(float(g("rope_theta", 10000.0)), self.head_dim, g("rope_scaling"), cfg)
            self.rope = {"full_attention": inv}


def rope_inv_freq(base, dim, scaling, cfg):
    """inv_freq as modeling_rope_utils computes it, in f32. Returns a (dim/2,) f32 tensor."""
    # _compute_default_rope_parameters
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if scaling is None:
        return inv_freq
    rtype = scaling.get("rope_type", scaling.get("type"))
    if rtype in (None, "default"):
        return inv_freq
    if rtype == "linear":
        # _compute_linear_scaling_rope_parameters: inv_freq /= factor
        return inv_freq / float(scaling["factor"])
    if rtype == "llama3":
        # _compute_llama3_parameters
        factor = scaling["factor"]
        low_freq_factor = scaling["low_freq_factor"]
        high_freq_factor = scaling["high_freq_factor"]
        old_context_len = scaling["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    raise RefusedConfig(f"rope_scaling type {rtype!r} not implemented")


def rope_cos_sin(inv_freq, T):
    """(T, D) cos and sin in f32, as the HF RotaryEmbedding forward: emb = cat(freqs, freqs)."""
    pos = torch.arange(T, dtype=torch.int64).float()
    freqs = (inv_freq[:, None].float() @ pos[None, :]).transpose(0, 1)  # (T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


# ----------------------------------------------------------------------------------------------

class Decoder:
    """Weights (a dict keyed by HF tensor name) + the Spec; forward() computes logits."""

    def __init__(self, cfg, weights, dtype=torch.float32, requires_grad=False, attn_softcap_mode="hf"):
        self.spec = Spec(cfg)
        self.dtype = dtype
        self.attn_softcap_mode = attn_softcap_mode
        self.params = {}
        for name, t in weights.items():
            p = t.to(dtype).clone()
            if requires_grad:
                p.requires_grad_(True)
            self.params[name] = p
        self._check_tensors()

    @classmethod
    def load(cls, model_dir, **kw):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        return cls(cfg, load_weights(model_dir), **kw)

    def _expect(self, name, shape):
        if name not in self.params:
            raise ValueError(f"missing tensor {name}")
        if list(self.params[name].shape) != list(shape):
            raise ValueError(f"tensor {name}: shape {list(self.params[name].shape)}, expected {list(shape)}")

    def _check_tensors(self):
        s = self.spec
        C, D, H, KV, I = s.hidden, s.head_dim, s.n_heads, s.n_kv, s.ffn
        want = {"model.embed_tokens.weight": (s.vocab, C), "model.norm.weight": (C,)}
        if not s.tied:
            want["lm_head.weight"] = (s.vocab, C)
        for l in range(s.n_layers):
            p = f"model.layers.{l}."
            want[p + "self_attn.q_proj.weight"] = (H * D, C)
            want[p + "self_attn.k_proj.weight"] = (KV * D, C)
            want[p + "self_attn.v_proj.weight"] = (KV * D, C)
            want[p + "self_attn.o_proj.weight"] = (C, H * D)
            if s.qkv_bias:
                want[p + "self_attn.q_proj.bias"] = (H * D,)
                want[p + "self_attn.k_proj.bias"] = (KV * D,)
                want[p + "self_attn.v_proj.bias"] = (KV * D,)
            if s.o_bias:
                want[p + "self_attn.o_proj.bias"] = (C,)
            if s.qk_norm:
                want[p + "self_attn.q_norm.weight"] = (D,)
                want[p + "self_attn.k_norm.weight"] = (D,)
            want[p + "mlp.gate_proj.weight"] = (I, C)
            want[p + "mlp.up_proj.weight"] = (I, C)
            want[p + "mlp.down_proj.weight"] = (C, I)
            if s.mlp_bias:
                want[p + "mlp.gate_proj.bias"] = (I,)
                want[p + "mlp.up_proj.bias"] = (I,)
                want[p + "mlp.down_proj.bias"] = (C,)
            want[p + "input_layernorm.weight"] = (C,)
            want[p + "post_attention_layernorm.weight"] = (C,)
            if s.gemma:
                want[p + "pre_feedforward_layernorm.weight"] = (C,)
                want[p + "post_feedforward_layernorm.weight"] = (C,)
        for n, sh in want.items():
            self._expect(n, sh)
        extra = [n for n in self.params if n not in want and not (s.tied and n == "lm_head.weight")]
        if extra:
            # An unexpected tensor means the file holds something this reference would ignore.
            raise RefusedConfig(f"unexpected tensors (not used by the reference): {extra[:5]}")

    # -- pieces -----------------------------------------------------------------------------

    def _norm(self, x, w):
        s = self.spec
        if s.gemma:
            # Gemma3RMSNorm: computed in f32, x * rsqrt(mean(x^2) + eps) * (1 + w)
            # (self.dtype is f32 or f64, both at least as wide as HF's f32 upcast.)
            out = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + s.eps)
            return out * (1.0 + w)
        # LlamaRMSNorm / Qwen2RMSNorm / Qwen3RMSNorm: w * (x * rsqrt(mean(x^2) + eps))
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + s.eps))

    def _linear(self, x, name):
        b = self.params.get(name + ".bias")
        return F.linear(x, self.params[name + ".weight"], b)

    def _attention(self, x, l, cos, sin, layer_type):
        s = self.spec
        B, T, _ = x.shape
        H, KV, D = s.n_heads, s.n_kv, s.head_dim
        p = f"model.layers.{l}.self_attn."
        q = self._linear(x, p + "q_proj").view(B, T, H, D)
        k = self._linear(x, p + "k_proj").view(B, T, KV, D)
        v = self._linear(x, p + "v_proj").view(B, T, KV, D)
        if s.qk_norm:  # per head, over head_dim, before RoPE
            q = self._norm(q, self.params[p + "q_norm.weight"])
            k = self._norm(k, self.params[p + "k_norm.weight"])
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H|KV, T, D)
        c, sn = cos.to(x.dtype)[None, None], sin.to(x.dtype)[None, None]
        q = q * c + rotate_half(q) * sn
        k = k * c + rotate_half(k) * sn
        rep = H // KV  # repeat_kv: kv head j serves query heads j*rep .. j*rep+rep-1
        k = k[:, :, None].expand(B, KV, rep, T, D).reshape(B, H, T, D)
        v = v[:, :, None].expand(B, KV, rep, T, D).reshape(B, H, T, D)
        scores = torch.matmul(q, k.transpose(2, 3)) * s.scaling  # (B, H, T, T)
        if s.attn_softcap is not None and self.attn_softcap_mode == "apply":
            cap = float(s.attn_softcap)
            scores = torch.tanh(scores / cap) * cap
        # Mask (masking_utils): causal kv_idx <= q_idx; sliding overlay kv_idx > q_idx - window.
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        allowed = j <= i
        if layer_type == "sliding_attention":
            allowed = allowed & (j > i - int(s.sliding_window))
        scores = scores.masked_fill(~allowed, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(B, T, H * D)
        return self._linear(out, p + "o_proj")

    def _mlp(self, x, l):
        p = f"model.layers.{l}.mlp."
        return self._linear(self.spec.act(self._linear(x, p + "gate_proj")) * self._linear(x, p + "up_proj"),
                            p + "down_proj")

    # -- forward ----------------------------------------------------------------------------

    def forward(self, ids, return_hidden=False):
        """ids: LongTensor (B, T) (or a list of ints) -> logits (B, T, V) in self.dtype
        (return_hidden: also the final-normed hidden states (B, T, C), what a value head reads)."""
        s = self.spec
        if not torch.is_tensor(ids):
            ids = torch.tensor(ids, dtype=torch.int64)
        if ids.dim() == 1:
            ids = ids[None]
        if int(ids.min()) < 0 or int(ids.max()) >= s.vocab:
            raise ValueError(f"token id out of range [0, {s.vocab})")
        B, T = ids.shape
        P = self.params
        x = F.embedding(ids, P["model.embed_tokens.weight"])  # (B, T, C)
        if s.gemma:
            x = x * torch.tensor(s.embed_scale, dtype=x.dtype)
        rope = {lt: rope_cos_sin(inv, T) for lt, inv in s.rope.items()}
        for l in range(s.n_layers):
            lt = s.layer_types[l]
            cos, sin = rope[lt]
            p = f"model.layers.{l}."
            h = self._attention(self._norm(x, P[p + "input_layernorm.weight"]), l, cos, sin, lt)
            if s.gemma:
                h = self._norm(h, P[p + "post_attention_layernorm.weight"])
                x = x + h
                h = self._mlp(self._norm(x, P[p + "pre_feedforward_layernorm.weight"]), l)
                x = x + self._norm(h, P[p + "post_feedforward_layernorm.weight"])
            else:
                x = x + h
                x = x + self._mlp(self._norm(x, P[p + "post_attention_layernorm.weight"]), l)
        x = self._norm(x, P["model.norm.weight"])
        head = P["model.embed_tokens.weight"] if s.tied else P["lm_head.weight"]
        logits = F.linear(x, head)
        if s.final_softcap is not None:
            cap = float(s.final_softcap)
            logits = torch.tanh(logits / cap) * cap
        return (logits, x) if return_hidden else logits

    def logits_list(self, seqs):
        """List of id lists -> list of (T_b, V) tensors, each sequence run on its own."""
        with torch.no_grad():
            return [self.forward(torch.tensor(sq, dtype=torch.int64)[None])[0] for sq in seqs]


def parse_ids(text):
    return [[int(t) for t in part.split(",") if t.strip() != ""] for part in text.split(";")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help='"1,2,3;4,5": sequences separated by ";"')
    ap.add_argument("--out", help="write {\"logits\": [[[V] x T_b] x B]} JSON here")
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    ap.add_argument("--gemma3-attn-softcap", choices=["hf", "apply"], default="hf",
                    help="hf: ignore attn_logit_softcapping as HF Gemma-3 does; apply: cap scores")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        dec = Decoder.load(a.model, dtype=torch.float64 if a.dtype == "f64" else torch.float32,
                           attn_softcap_mode=a.gemma3_attn_softcap)
    except RefusedConfig as e:
        print(f"hf_decoder: refused: {e}", file=sys.stderr)
        return 2
    outs = dec.logits_list(parse_ids(a.ids))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"logits": [o.float().tolist() for o in outs]}, f)
    else:
        for b, o in enumerate(outs):
            print(f"seq {b}: T={o.shape[0]} argmax={o.argmax(-1).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
