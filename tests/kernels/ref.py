#!/usr/bin/python3
"""ref.py - independent PyTorch autograd reference for the kernels of src/tensor.

Runs `test_kernels_grad --dump DIR` (our C kernels on random inputs, gradient
buffers pre-filled with random values to check the accumulate contract), then
recomputes every forward output and gradient in float64 with torch autograd from
the same inputs, written here from the Hugging Face formulas, and compares.
Tolerance: 1e-4 absolute on every element (the C side is float32).
Exits non-zero on any mismatch.

usage: ref.py PATH/TO/test_kernels_grad [WORKDIR]
"""
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch

torch.set_default_dtype(torch.float64)
ATOL = 1e-4


def load(path):
    recs = {}
    with open(path, "rb") as f:
        buf = f.read()
    o = 0
    while o < len(buf):
        kind = chr(buf[o]); o += 1
        (nl,) = struct.unpack_from("<I", buf, o); o += 4
        name = buf[o:o + nl].decode(); o += nl
        (nd,) = struct.unpack_from("<I", buf, o); o += 4
        dims = list(struct.unpack_from("<%dI" % nd, buf, o)); o += 4 * nd
        n = math.prod(dims)
        if kind == "f":
            t = torch.tensor(struct.unpack_from("<%df" % n, buf, o), dtype=torch.float64).reshape(dims); o += 4 * n
        elif kind == "i":
            t = torch.tensor(struct.unpack_from("<%di" % n, buf, o), dtype=torch.long).reshape(dims); o += 4 * n
        elif kind == "d":
            (t,) = struct.unpack_from("<d", buf, o); o += 8
        elif kind == "s":
            t = buf[o:o + n].decode(); o += n
        else:
            raise ValueError("%s: bad record kind %r" % (path, kind))
        recs[name] = t
    return recs


failures = []


def check(case, name, got, want, atol=ATOL):
    want = want.detach()
    if got.shape != want.shape:
        failures.append("%s.%s: shape %s vs %s" % (case, name, tuple(got.shape), tuple(want.shape)))
        return
    err = (got - want).abs().max().item() if got.numel() else 0.0
    ok = err <= atol
    print("  %-28s %-8s max|err| %.2e %s" % (case, name, err, "ok" if ok else "FAIL (atol %.0e)" % atol))
    if not ok:
        failures.append("%s.%s: max abs err %.3g > %.0e" % (case, name, err, atol))


def leaf(t):
    return t.clone().requires_grad_(True)


def case_linear(c, r):
    x, W, dy = leaf(r["x"]), leaf(r["W"]), r["dy"]
    b = leaf(r["b"]) if "b" in r else None
    y = x @ W.T
    if b is not None:
        y = y + b
    lora = "A" in r and r["lora_on"]
    if lora:
        A, B = leaf(r["A"]), leaf(r["B"])
        xa = x * r["mask"] / (1.0 - r["dropout"]) if "mask" in r else x  # PEFT: B A dropout(x)
        y = y + r["scale"] * (xa @ A.T) @ B.T
    (y * dy).sum().backward()
    if "mask" in r:  # the mask keeps about 1 - p of the inputs
        kept = r["mask"].mean().item()
        if abs(kept - (1 - r["dropout"])) > 0.1:
            failures.append("%s: dropout keeps %.3f of inputs, expected %.3f" % (c, kept, 1 - r["dropout"]))
    check(c, "y", r["y"], y)
    check(c, "dx", r["dx"], r["dx0"] + x.grad)
    check(c, "dW", r["dW"], r["dW0"] + W.grad if r["with_dW"] else r["dW0"])
    check(c, "db", r["db"], r["db0"] + b.grad if b is not None else r["db0"])
    if "A" in r:  # adapter present: grads only when enabled
        check(c, "dA", r["dA"], r["dA0"] + A.grad if lora else r["dA0"])
        check(c, "dB", r["dB"], r["dB0"] + B.grad if lora else r["dB0"])


def case_rmsnorm(c, r):
    x, dy = leaf(r["x"]), r["dy"]
    w = leaf(r["w"]) if "w" in r else None
    var = x.pow(2).mean(-1, keepdim=True)
    n = x * torch.rsqrt(var + r["eps"])
    y = n if w is None else (n * (1.0 + w) if r["plus_one"] else n * w)
    (y * dy).sum().backward()
    check(c, "y", r["y"], y)
    check(c, "rstd", r["rstd"], torch.rsqrt(var + r["eps"]).squeeze(-1))
    check(c, "dx", r["dx"], r["dx0"] + x.grad)
    if w is not None:
        check(c, "dw", r["dw"], r["dw0"] + w.grad)


def case_rope(c, r):
    x, dy, pos = leaf(r["x"]), r["dy"], r["pos"]
    D = x.shape[-1]
    # HF: inv_freq = 1 / base^(arange(0, D, 2)/D) in f32; freqs = pos * inv_freq in f32
    inv = (1.0 / (r["base"] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))).float()
    check(c, "inv_freq", r["inv_freq"], inv.double(), atol=1e-9)
    freqs = (pos.float()[:, None] * inv[None, :]).double()
    emb = torch.cat([freqs, freqs], -1)[:, None, :]
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    y = x * cos + torch.cat([-x2, x1], -1) * sin
    (y * dy).sum().backward()
    check(c, "y", r["y"], y)
    check(c, "dx", r["dx"], x.grad)  # in place: dx is the rotated upstream gradient


def case_glu(c, r):
    g, u, dh = leaf(r["g"]), leaf(r["u"]), r["dh"]
    a = torch.nn.functional.gelu(g, approximate="tanh") if r["gelu"] else torch.nn.functional.silu(g)
    h = a * u
    (h * dh).sum().backward()
    check(c, "h", r["h"], h)
    check(c, "dgate", r["dg"], r["dg0"] + g.grad)
    check(c, "dup", r["du"], r["du0"] + u.grad)


def case_softcap(c, r):
    x, dy, cap = leaf(r["x"]), r["dy"], r["cap"]
    y = cap * torch.tanh(x / cap)
    (y * dy).sum().backward()
    check(c, "y", r["y"], y)
    check(c, "dx", r["dx"], x.grad)  # in place: dx = dy * dy/dx


def case_xent(c, r):
    x, tg = leaf(r["logits"]), r["targets"]
    w = r["w"] if "w" in r else torch.ones(x.shape[0])
    keep = tg >= 0
    lp = torch.log_softmax(x, -1)
    loss = torch.zeros(x.shape[0])
    loss[keep] = -lp[keep, tg[keep]]
    (loss * w).sum().backward()
    check(c, "loss", r["loss"], loss, atol=1e-4)
    check(c, "dlogits", r["dlogits"], x.grad)  # overwritten, not accumulated


def case_attention(c, r):
    H, KV, D, Tm, S = int(r["H"]), int(r["KV"]), int(r["D"]), int(r["Tmax"]), int(r["S"])
    stride, window, scale, cap = int(r["seq_stride"]), int(r["window"]), r["scale"], r["softcap"]
    q, kf, vf, dout = leaf(r["q"]), leaf(r["k"]), leaf(r["v"]), r["dout"]
    pos, seq = r["pos"].tolist(), r["seq"].tolist()
    N, G = len(pos), H // KV
    outs, probs = [], []
    for i in range(N):
        base = seq[i] * stride
        K = kf[base: base + Tm * KV * D].reshape(Tm, KV, D)
        V = vf[base: base + Tm * KV * D].reshape(Tm, KV, D)
        kh = torch.arange(H) // G  # query head -> kv head
        Kh, Vh = K[:, kh, :], V[:, kh, :]  # (Tm, H, D)
        sc = torch.einsum("hd,thd->ht", q[i], Kh) * scale
        if cap > 0:
            sc = cap * torch.tanh(sc / cap)
        t = torch.arange(Tm)
        lo = max(0, pos[i] - window + 1) if window > 0 else 0
        mask = (t >= lo) & (t <= pos[i])
        sc = sc.masked_fill(~mask[None, :], float("-inf"))
        p = torch.softmax(sc, -1)
        probs.append(p)
        outs.append(torch.einsum("ht,thd->hd", p, Vh))
    out = torch.stack(outs)
    (out * dout).sum().backward()
    check(c, "out", r["out"], out)
    check(c, "att", r["att"], torch.stack(probs))
    check(c, "dq", r["dq"], r["dq0"] + q.grad)
    check(c, "dk", r["dk"], r["dk0"] + kf.grad)
    check(c, "dv", r["dv"], r["dv0"] + vf.grad)


CASES = {"linear": case_linear, "rmsnorm": case_rmsnorm, "rope": case_rope, "glu": case_glu,
         "softcap": case_softcap, "xent": case_xent, "attention": case_attention}


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="tn_kernels_")
    subprocess.run([sys.argv[1], "--dump", work], check=True)
    files = sorted(f for f in os.listdir(work) if f.endswith(".bin"))
    seen = set()
    for f in files:
        r = load(os.path.join(work, f))
        seen.add(r["kernel"])
        CASES[r["kernel"]](f[:-4], r)
    missing = set(CASES) - seen
    if missing:
        failures.append("no cases for: " + ", ".join(sorted(missing)))
    if len(files) < 20:
        failures.append("only %d cases dumped" % len(files))
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("all %d kernel cases match PyTorch autograd (float64) to %.0e abs" % (len(files), ATOL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
