#!/usr/bin/python3
"""ref_nf4.py - an independent numpy reimplementation of bitsandbytes' NF4 (quantize_4bit /
dequantize_4bit with blocksize and compress_statistics) and of bf16 rounding, compared
BIT FOR BIT with what tunic wrote (`test_quant --dump DIR`).

Written from the published definition (bitsandbytes functional.py and csrc/kernels.cu):
  * NF4 values: get_4bit_type("nf4").
  * quantisation: per block of `blocksize` elements of the flattened tensor,
    absmax = max |x|; x is scaled by the f32 reciprocal r = 1/absmax (x * r, as the CUDA
    kernel does, not x / absmax); the code is the number of decision thresholds t with
    x*r > t (dQuantizeNF4: a tree of strict '>' tests). The thresholds are the decimal
    literals of the kernel source, rounded to f32 the way a C/CUDA compiler reads a float
    literal (correct rounding of the decimal; NOT via double, which differs for 4 of them).
    Two codes per byte, the first element in the high nibble; a padded odd tail is the
    code of 0.
  * double quantisation: offset = mean(absmax) (here: the correctly rounded mean),
    c = absmax - offset (f32), quantize_blockwise(c, blocksize=256) with the dynamic map
    create_dynamic_map(signed=True): per block absmax2, code = dQuantize<0>(map, c * (1/absmax2))
    (the kernel's binary search with midpoint tie rule, transcribed below).
  * dynamic map: torch.linspace(0.1, 1, k) as current PyTorch computes it in f32
    (step = (end-start)/(k-1); first half start + step*i, second half end - step*(k-1-i)),
    means (b[:-1]+b[1:])/2, scaled by the Python scalar 10**(i-6) rounded to f32.
  * dequantisation: absmax_b = code2[q] * absmax2 (f32) + offset (f32); w = NF4[c] * absmax_b (f32).
  * bf16: torch's float -> bfloat16 conversion (round to nearest even).
Usage: ref_nf4.py TEST_QUANT_BINARY DUMP_DIR
"""
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import torch

f32 = np.float32

NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32)

# csrc/kernels.cu dQuantizeNF4, the literals as written (sorted)
THR_DECIMAL = ["-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906",
               "-0.33967943489551544", "-0.23460740596055984", "-0.13791173323988914",
               "-0.045525018125772476", "0.03979014977812767", "0.1202552504837513",
               "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
               "0.5016634166240692", "0.6427869200706482", "0.8614784181118011"]


def f32_from_decimal(s):
    """Correctly rounded decimal -> f32 (ties to even), by exact rational comparison."""
    exact = Fraction(s)
    c = np.float32(float(s))
    cands = [np.nextafter(c, f32(-np.inf)), c, np.nextafter(c, f32(np.inf))]
    best = min(cands, key=lambda v: (abs(Fraction(float(v)) - exact), int(v.view(np.uint32)) & 1))
    return f32(best)


THR = np.array([f32_from_decimal(s) for s in THR_DECIMAL], dtype=np.float32)


def nf4_codes(v):
    # number of thresholds strictly below v; NaN compares false everywhere -> 0
    with np.errstate(invalid="ignore"):
        return (v[..., None] > THR).sum(axis=-1).astype(np.uint8)


def linspace_f32(start, end, steps):
    start, end = f32(start), f32(end)
    step = f32((end - start) / f32(steps - 1))
    half = steps // 2
    return np.array([start + step * f32(i) if i < half else end - step * f32(steps - i - 1)
                     for i in range(steps)], dtype=np.float32)


def dynamic_map():
    data = []
    for i in range(7):
        b = linspace_f32(0.1, 1.0, 2 ** i + 1)
        means = (b[:-1] + b[1:]) / f32(2.0)
        scale = f32(10.0 ** (i - 6))
        data += list(scale * means) + list(-scale * means)
    data += [f32(0.0), f32(1.0)]
    assert len(data) == 256
    return np.array(sorted(data), dtype=np.float32)


def dquantize(code, x):
    """csrc/kernels.cu dQuantize<0> (binary search over the sorted map, midpoint rule)."""
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = f32(-1.0), f32(1.0)
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower, pivot = pivot, val, pivot + i
        else:
            upper_pivot, upper, pivot = pivot, val, pivot - i
        val = code[pivot]
        i >>= 1
    if upper_pivot == 255:
        upper = code[upper_pivot]
    if lower_pivot == 0:
        lower = code[lower_pivot]
    if x > val:
        return upper_pivot if x > (upper + val) * f32(0.5) else pivot
    return lower_pivot if x < (lower + val) * f32(0.5) else pivot


def quantize(x, bs, nested):
    n = x.size
    nb = (n + bs - 1) // bs
    pad = np.zeros(nb * bs, dtype=np.float32)
    pad[:n] = x
    blocks = pad.reshape(nb, bs)
    absmax = np.abs(blocks).max(axis=1).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = f32(1.0) / absmax
        scaled = blocks * r[:, None]
    codes = nf4_codes(scaled).reshape(-1)[: n + (n & 1)]
    if n & 1:  # the padded element is the code of 0 * r
        with np.errstate(invalid="ignore"):
            codes[n] = nf4_codes(np.array([f32(0.0) * r[-1]], dtype=np.float32))[0]
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)
    out = {"codes": packed}
    if not nested:
        out["absmax"] = absmax
        am = absmax
    else:
        offset = f32(np.mean(absmax.astype(np.float64)))
        c = (absmax - offset).astype(np.float32)
        code2 = dynamic_map()
        nb2 = (nb + 255) // 256
        absmax2 = np.zeros(nb2, dtype=np.float32)
        q = np.zeros(nb, dtype=np.uint8)
        for b in range(nb2):
            blk = c[b * 256:(b + 1) * 256]
            absmax2[b] = np.abs(blk).max()
            r2 = f32(1.0) / absmax2[b]
            for j, v in enumerate(blk):
                q[b * 256 + j] = dquantize(code2, f32(v * r2))
        out.update(qabsmax=q, absmax2=absmax2, offset=np.array([offset], dtype=np.float32))
        am = (code2[q] * np.repeat(absmax2, 256)[:nb]).astype(np.float32) + offset
    allc = np.empty(2 * packed.size, dtype=np.uint8)
    allc[0::2], allc[1::2] = packed >> 4, packed & 15
    deq = (NF4[allc[:n]] * np.repeat(am, bs)[:n]).astype(np.float32)
    out["deq"] = deq
    return out


def main():
    binary, d = sys.argv[1], sys.argv[2]
    subprocess.run([binary, "--dump", d], check=True)
    bad = 0
    # the f32 of the double midpoints is not what the kernel compares against for some
    mids = ((NF4[:-1].astype(np.float64) + NF4[1:].astype(np.float64)) / 2).astype(np.float32)
    ndiff = int((mids.view(np.uint32) != THR.view(np.uint32)).sum())
    print(f"thresholds: {ndiff} of 15 differ by 1 ulp from f32(double midpoint)")
    code2 = np.fromfile(os.path.join(d, "dynamic_map.f32"), dtype=np.float32)
    ref2 = dynamic_map()
    if not np.array_equal(code2.view(np.uint32), ref2.view(np.uint32)):
        print("dynamic map differs at", np.nonzero(code2 != ref2)[0][:10])
        bad += 1
    # the binary search with the midpoint rule is the nearest code except at exact ties
    rng = np.random.default_rng(0)
    for v in rng.uniform(-1, 1, 2000).astype(np.float32):
        a, b = dquantize(ref2, v), int(np.argmin(np.abs(ref2.astype(np.float64) - v)))
        if a != b and abs(abs(ref2[a] - v) - abs(ref2[b] - v)) > 1e-9:
            print("dQuantize is not nearest for", v, a, b)
            bad += 1
            break
    ncase = 0
    for line in open(os.path.join(d, "cases.txt")):
        name, n, bs, nested = line.split()
        n, bs, nested = int(n), int(bs), nested == "1"
        x = np.fromfile(os.path.join(d, f"{name}_x.f32"), dtype=np.float32)
        ref = quantize(x, bs, nested)
        for key, dt in [("codes", np.uint8), ("absmax", np.float32), ("qabsmax", np.uint8),
                        ("absmax2", np.float32), ("offset", np.float32), ("deq", np.float32)]:
            if key not in ref:
                continue
            got = np.fromfile(os.path.join(d, f"{name}_{key}.{'u8' if dt == np.uint8 else 'f32'}"), dtype=dt)
            want = ref[key]
            if got.shape != want.shape or not np.array_equal(got.view(np.uint8), want.view(np.uint8)):
                idx = np.nonzero(got.view(np.uint8) != want.view(np.uint8))[0][:5] if got.shape == want.shape else []
                print(f"{name} (n {n}, blocksize {bs}, nested {nested}): {key} differs (bytes {list(idx)})")
                bad += 1
        ncase += 1
    # bf16 rounding vs torch
    b = np.fromfile(os.path.join(d, "bf16_in.f32"), dtype=np.float32)
    h = np.fromfile(os.path.join(d, "bf16_out.u16"), dtype=np.uint16)
    want = torch.from_numpy(b.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    if not np.array_equal(h, want):
        print("bf16 conversion differs at", np.nonzero(h != want)[0][:10])
        bad += 1
    print(f"{ncase} NF4 cases, dynamic map, {b.size} bf16 values: {'OK' if bad == 0 else f'{bad} FAILURES'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
