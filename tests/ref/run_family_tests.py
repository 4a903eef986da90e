#!/usr/bin/python3
"""Per-family correctness tests of tunic's decoder against the PyTorch reference (CTest: ref_*).

What it is for: for one family (llama | qwen2 | qwen3 | gemma3), create tiny random checkpoints
with `$TUNIC init ... --override JSON` in a temp dir, covering the shapes issue 2 asks for
(GQA and MQA, head_dim != hidden/heads, tied and untied, f32 and bf16 files, sharded files,
llama3 / linear RoPE scaling, qwen2 biases, gemma3 local + global layers with sequences longer
than the window, with and without soft-caps), then check:
  1. `tunic logits` for a batch of mixed-length sequences == reference, max abs diff <= 1e-4;
  2. `tunic logits --step 1` and `--step 3` (KV cache) == reference and == tunic full forward;
  3. greedy `tunic generate --json` (batched, mixed-length prompts) == `--one-at-a-time`, token
     for token, and every chosen token is an argmax of the reference logits (within 1e-4, so an
     exact tie cannot flip the test) with its log-prob equal to the reference log_softmax.
What it is not: a test of sampling, tokenizer or bad-input handling.

Usage: TUNIC=path/to/tunic /usr/bin/python3 run_family_tests.py llama|qwen2|qwen3|gemma3 [-v]
"""
import json
import os
import struct
import random
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_logits  # noqa: E402
import hf_decoder  # noqa: E402

TOL = 1e-4
VOCAB = 384

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}
# With head_dim 16 and rope_theta 500000 the wavelengths are 6.3, 32.5, 168, ... positions, so
# original_max_position_embeddings 64 puts dimensions in all three llama3 regimes
# (wavelen < 16 kept, 16..64 smoothed, > 64 divided by factor).

# tunic init draws every matrix from N(0, 0.02): q.k scores are then ~0.03 and attention is
# nearly uniform, which would hide mask / RoPE / bias mistakes below 1e-4. The tests multiply
# q_proj and k_proj (weights and biases) by this factor, in place in the files tunic wrote
# (same header, dtype and shards), so that scores are O(1). See check_mutants for the proof.
QK_SHARPEN = 6.0

# Each case: name, init args, override, and which checks run on it.
CASES = {
    "llama": [
        dict(name="gqa_tied_f32_llama3rope", dtype="f32",
             override={"tie_word_embeddings": True, "rope_theta": 500000.0, "rope_scaling": LLAMA3_ROPE,
                       "max_position_embeddings": 256},
             steps=[1, 3], generate=True,
             mutants={"no llama3 scaling": {"rope_scaling": None},
                      "llama3 high_freq_factor 2": {"rope_scaling": dict(LLAMA3_ROPE, high_freq_factor=2.0)},
                      "rope_theta 10000": {"rope_theta": 10000.0}}),
        dict(name="mqa_headdim40_untied_bf16_shards3_linear_bias", dtype="bf16", shards=3,
             override={"num_key_value_heads": 1, "head_dim": 40, "tie_word_embeddings": False,
                       "rope_scaling": {"rope_type": "linear", "factor": 4.0},
                       "attention_bias": True, "mlp_bias": True},
             steps=[1], generate=True,
             mutants={"no linear scaling": {"rope_scaling": None},
                      "o_proj bias zeroed": "self_attn.o_proj.bias",
                      "down_proj bias zeroed": "mlp.down_proj.bias",
                      "k_proj bias zeroed": "self_attn.k_proj.bias"}),
        dict(name="mha_untied_f32", dtype="f32",
             override={"num_key_value_heads": 4, "tie_word_embeddings": False}, steps=[3],
             mutants={"rope_theta x10": "ROPE_X10", "untied head -> embeddings": "TIE"}),
    ],
    "qwen2": [
        dict(name="gqa_tied_f32_biases", dtype="f32", override={"tie_word_embeddings": True},
             steps=[1, 3], generate=True,
             mutants={"q_proj bias zeroed": "self_attn.q_proj.bias",
                      "k_proj bias zeroed": "self_attn.k_proj.bias",
                      "v_proj bias zeroed": "self_attn.v_proj.bias"}),
        dict(name="mqa_headdim24_untied_bf16_shards3", dtype="bf16", shards=3,
             override={"num_key_value_heads": 1, "head_dim": 24, "tie_word_embeddings": False},
             steps=[1], generate=True,
             mutants={"rope_theta x10": "ROPE_X10", "untied head -> embeddings": "TIE"}),
    ],
    "qwen3": [
        dict(name="gqa_tied_f32_qknorm", dtype="f32", override={"tie_word_embeddings": True},
             steps=[1, 3], generate=True,
             mutants={"q_norm weight ones": ("self_attn.q_norm.weight", 1.0),
                      "k_norm weight ones": ("self_attn.k_norm.weight", 1.0)}),
        dict(name="mqa_headdim32_untied_bf16_shards3_attnbias", dtype="bf16", shards=3,
             override={"num_key_value_heads": 1, "head_dim": 32, "tie_word_embeddings": False,
                       "attention_bias": True},
             steps=[1], generate=True,
             mutants={"o_proj bias zeroed": "self_attn.o_proj.bias",
                      "q_proj bias zeroed": "self_attn.q_proj.bias"}),
    ],
    "gemma3": [
        # local/global via explicit layer_types; window 5 < longest sequence 16; linear rope
        # scaling (global layers only), different local/global RoPE bases.
        dict(name="layer_types_window5_linear_f32", dtype="f32",
             override={"num_hidden_layers": 3,
                       "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
                       "sliding_window": 5, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
                       "rope_scaling": {"rope_type": "linear", "factor": 8.0},
                       "query_pre_attn_scalar": 24, "final_logit_softcapping": None,
                       "attn_logit_softcapping": None},
             steps=[1, 3], generate=True,
             mutants={"window 6 (off by one)": {"sliding_window": 6},
                      "window 4 (off by one)": {"sliding_window": 4},
                      "all layers global": {"layer_types": ["full_attention"] * 3},
                      "local base = rope_theta": {"rope_local_base_freq": 1000000.0},
                      "no linear scaling on global": {"rope_scaling": None},
                      "query_pre_attn_scalar = head_dim": {"query_pre_attn_scalar": 16},
                      "pre_feedforward norm zeroed": ("pre_feedforward_layernorm.weight", 0.0)}),
        # layer_types derived from sliding_window_pattern ((i+1) % 2 -> S, F, S, F); MQA,
        # head_dim 24 != 64/4, bf16, 3 shards, both soft-caps set small enough to bend the values.
        dict(name="pattern2_mqa_headdim24_softcaps_bf16_shards3", dtype="bf16", shards=3,
             override={"num_hidden_layers": 4, "layer_types": None, "sliding_window_pattern": 2,
                       "sliding_window": 4, "num_key_value_heads": 1, "head_dim": 24,
                       "query_pre_attn_scalar": 24, "final_logit_softcapping": 0.3,
                       "attn_logit_softcapping": 0.5},
             steps=[1, 3], generate=True,
             mutants={"no final soft-cap": {"final_logit_softcapping": None},
                      "pattern 3": {"sliding_window_pattern": 3},
                      "window 5 (off by one)": {"sliding_window": 5}}),
    ],
}
ARCH = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma3": "gemma3_text"}


def sh(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n  exited {r.returncode}: {r.stderr.strip()[:2000]}")
    return r.stdout


def make_batch(rng, lengths, vocab):
    return [[rng.randrange(vocab) for _ in range(n)] for n in lengths]


def parse_gen(out):
    rows = {}
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        o = json.loads(line)
        rows[(o["prompt"], o.get("sample", 0))] = o
    return rows


def check_generate(tunic, model_dir, dec, prompts, max_new):
    base = [tunic, "generate", "--model", model_dir, "--ids", compare_logits.ids_arg(prompts),
            "--max-new-tokens", str(max_new), "--temperature", "0", "--json"]
    batched = parse_gen(sh(base))
    single = parse_gen(sh(base + ["--one-at-a-time"]))
    ok = True
    if sorted(batched) != sorted(single) or len(batched) != len(prompts):
        print(f"  generate: batched rows {sorted(batched)} vs one-at-a-time {sorted(single)}  FAIL")
        return False
    for i, p in enumerate(prompts):
        b, s = batched[(i, 0)], single[(i, 0)]
        if b["ids"] != s["ids"] or b.get("finish_reason") != s.get("finish_reason"):
            print(f"  generate prompt {i}: batched {b['ids']} ({b.get('finish_reason')}) != "
                  f"one-at-a-time {s['ids']} ({s.get('finish_reason')})  FAIL")
            ok = False
        lp_b, lp_s = b.get("logprobs", []), s.get("logprobs", [])
        if len(lp_b) != len(b["ids"]) or any(abs(x - y) > TOL for x, y in zip(lp_b, lp_s)):
            print(f"  generate prompt {i}: logprobs batched {lp_b} vs one-at-a-time {lp_s}  FAIL")
            ok = False
        if b.get("finish_reason") == "length" and len(b["ids"]) != max_new:
            print(f"  generate prompt {i}: finish_reason length but {len(b['ids'])} ids  FAIL")
            ok = False
        # Against the reference: follow tunic's tokens, each must be a (near-)argmax.
        seq = list(p)
        worst_gap, worst_lp = 0.0, 0.0
        with torch.no_grad():
            for k, t in enumerate(b["ids"]):
                lg = dec.forward(torch.tensor(seq)[None])[0, -1].double()
                gap = float(lg.max() - lg[t])
                lp_ref = float(torch.log_softmax(lg, -1)[t])
                worst_gap = max(worst_gap, gap)
                if k < len(lp_b):
                    worst_lp = max(worst_lp, abs(lp_b[k] - lp_ref))
                seq.append(t)
        good = worst_gap <= TOL and worst_lp <= TOL
        ok &= good
        print(f"  generate prompt {i} (len {len(p)}): {len(b['ids'])} ids, batched == one-at-a-time: "
              f"{b['ids'] == s['ids']}; vs ref: max argmax gap {worst_gap:.2e}, max |logprob diff| "
              f"{worst_lp:.2e}{'' if good else '  FAIL'}")
    return ok


def check_mutants(tunic, d, dec, seqs, mutants):
    """Each mutant is the reference with one feature changed (a config field, or a weight set to a
    constant); tunic's logits must differ from it by > 10*TOL, which shows the batch really
    exercises that feature (a test that cannot fail is no test)."""
    got = compare_logits.run_tunic_logits(tunic, d, seqs)
    ok = True
    seen = []
    for what, m in mutants.items():
        cfg = dict(dec.spec.cfg)
        weights = {n: p.detach().clone() for n, p in dec.params.items()}
        if isinstance(m, dict):
            cfg.update(m)
        elif m == "ROPE_X10":
            cfg["rope_theta"] = float(cfg.get("rope_theta", 10000.0)) * 10
        elif m == "TIE":
            cfg["tie_word_embeddings"] = True
            del weights["lm_head.weight"]
        else:
            suffix, value = (m, 0.0) if isinstance(m, str) else m
            hit = [n for n in weights if n.endswith(suffix)]
            if not hit:
                raise RuntimeError(f"mutant {what!r}: no tensor ends with {suffix}")
            for n in hit:
                weights[n].fill_(value)
        mut = hf_decoder.Decoder(cfg, weights).logits_list(seqs)
        diff = max(float((g.double() - w.double()).abs().max()) for g, w in zip(got, mut))
        seen.append(f"{what}: {diff:.1e}")
        if diff <= 10 * TOL:
            print(f"  mutant {what!r}: tunic differs from it by only {diff:.1e}: the test is blind to it  FAIL")
            ok = False
    print(f"  sensitivity (max|tunic - mutated ref|): {'; '.join(seen)} {'ok' if ok else 'FAIL'}")
    return ok


def scale_tensors_inplace(model_dir, suffixes, factor):
    """Multiplies every tensor whose name ends with one of suffixes by factor, rewriting only the
    data bytes of the safetensors files in model_dir (header, offsets, dtype unchanged)."""
    n_done = 0
    for fn in sorted(os.listdir(model_dir)):
        if not fn.endswith(".safetensors"):
            continue
        path = os.path.join(model_dir, fn)
        with open(path, "r+b") as f:
            raw = bytearray(f.read())
            (n,) = struct.unpack("<Q", raw[:8])
            header = json.loads(raw[8:8 + n])
            base = 8 + n
            for name, info in header.items():
                if name == "__metadata__" or not name.endswith(tuple(suffixes)):
                    continue
                b, e = (base + o for o in info["data_offsets"])
                dt = info["dtype"]
                if dt == "F32":
                    out = (np.frombuffer(raw[b:e], "<f4") * np.float32(factor)).astype("<f4")
                elif dt == "F16":
                    out = (np.frombuffer(raw[b:e], "<f2").astype(np.float32) * factor).astype("<f2")
                elif dt == "BF16":
                    x = (np.frombuffer(raw[b:e], "<u2").astype(np.uint32) << 16).view(np.float32)
                    u = (x * np.float32(factor)).astype(np.float32).view(np.uint32)
                    out = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
                else:
                    raise RuntimeError(f"{fn}: {name}: dtype {dt}")
                raw[b:e] = out.tobytes()
                n_done += 1
            f.seek(0)
            f.write(raw)
    return n_done


def check_npy(tunic, d, dec, seqs):
    """`tunic logits --out X.npy` (equal lengths): a float32 (B, T, V) array equal to the reference."""
    out = os.path.join(d, "logits.npy")
    sh([tunic, "logits", "--model", d, "--ids", compare_logits.ids_arg(seqs), "--out", out])
    arr = np.load(out)
    V = dec.spec.vocab
    if arr.dtype != np.float32 or arr.shape != (len(seqs), len(seqs[0]), V):
        print(f"  npy: dtype {arr.dtype} shape {arr.shape}, expected float32 {(len(seqs), len(seqs[0]), V)}  FAIL")
        return False
    return compare_logits.diff_report("npy-vs-ref", [torch.from_numpy(a.copy()) for a in arr],
                                      dec.logits_list(seqs), TOL)


def run_case(tunic, family, case, tmp, rng):
    d = os.path.join(tmp, case["name"])
    cmd = [tunic, "init", "--arch", ARCH[family], "--size", "tiny", "--vocab", str(VOCAB), "--out", d,
           "--seed", str(rng.randrange(1 << 30)), "--dtype", case.get("dtype", "f32")]
    if case.get("shards"):
        cmd += ["--shards", str(case["shards"])]
    if case.get("override"):
        cmd += ["--override", json.dumps(case["override"])]
    sh(cmd)
    if case.get("shards"):
        n = len([f for f in os.listdir(d) if f.endswith(".safetensors")])
        if n != case["shards"] or not os.path.exists(os.path.join(d, "model.safetensors.index.json")):
            print(f"  init: expected {case['shards']} shards + index, found {n} files  FAIL")
            return False
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    sfx = [f"self_attn.{p}_proj.{w}" for p in "qk" for w in ("weight", "bias")]
    if scale_tensors_inplace(d, sfx, QK_SHARPEN) < 2 * cfg["num_hidden_layers"]:
        print("  could not find the q/k projections to sharpen  FAIL")
        return False
    # The override must really be in config.json, or the case tests something else.
    for k, v in case.get("override", {}).items():
        if cfg.get(k) != v:
            print(f"  init: config.json {k}={cfg.get(k)!r}, override asked {v!r}  FAIL")
            return False
    dec = hf_decoder.Decoder.load(d)
    s = dec.spec
    print(f"[{family}/{case['name']}] hidden {s.hidden} layers {s.n_layers} heads {s.n_heads}/{s.n_kv} "
          f"head_dim {s.head_dim} tied {s.tied} layer_types {s.layer_types if s.gemma else 'full'}")
    seqs = make_batch(rng, [1, 7, 16, 11], VOCAB)
    ok = compare_logits.compare(tunic, d, seqs, tol=TOL, dec=dec)
    if case.get("mutants"):
        ok &= check_mutants(tunic, d, dec, seqs, case["mutants"])
    if case is CASES[family][0]:
        ok &= check_npy(tunic, d, dec, make_batch(rng, [9, 9, 9], VOCAB))
    for k in case.get("steps", []):
        ok &= compare_logits.compare(tunic, d, seqs, step=k, tol=TOL, dec=dec)
    if case.get("generate"):
        prompts = make_batch(rng, [3, 9, 1, 6], VOCAB)
        ok &= check_generate(tunic, d, dec, prompts, max_new=8)
    return ok


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in CASES:
        print(f"usage: run_family_tests.py {'|'.join(CASES)}", file=sys.stderr)
        return 2
    family = sys.argv[1]
    tunic = os.environ.get("TUNIC")
    if not tunic:
        print("run_family_tests: $TUNIC is not set", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    rng = random.Random(1234 + sum(map(ord, family)))
    t0 = time.time()
    failed = []
    with tempfile.TemporaryDirectory(prefix=f"tn_ref_{family}_") as tmp:
        for case in CASES[family]:
            try:
                good = run_case(tunic, family, case, tmp, rng)
            except (RuntimeError, ValueError, hf_decoder.RefusedConfig) as e:
                print(f"[{family}/{case['name']}] ERROR: {e}")
                good = False
            if not good:
                failed.append(case["name"])
    print(f"{family}: {len(CASES[family]) - len(failed)}/{len(CASES[family])} cases passed "
          f"in {time.time() - t0:.1f}s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
