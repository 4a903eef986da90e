#!/usr/bin/python3
"""Compare `tunic logits` with the independent PyTorch reference (hf_decoder.py).

What it is for: one model directory, a batch of token sequences; runs
    $TUNIC logits --model DIR --ids "1,2,3;4,5" --out tmp.json [--step K]
and the reference on the same ids, prints the max abs diff per sequence (and where the worst
position is), and exits 1 if any exceeds the tolerance (default 1e-4, f32 logits).
With --step K it also runs tunic's full forward and checks that KV-cache decoding K tokens at a
time gives the same logits (same tolerance).
What it is not: a test of generation (run_family_tests.py does that).

Usage: /usr/bin/python3 compare_logits.py --model DIR --ids "1,2,3;4,5" [--step K] [--tol 1e-4]
       (tunic binary from --tunic or $TUNIC)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_decoder  # noqa: E402


def ids_arg(seqs):
    return ";".join(",".join(str(t) for t in s) for s in seqs)


def run_tunic_logits(tunic, model_dir, seqs, step=None, workdir=None):
    """Returns a list of (T_b, V) f32 tensors read from tunic's JSON output."""
    fd, out = tempfile.mkstemp(suffix=".json", dir=workdir)
    os.close(fd)
    try:
        cmd = [tunic, "logits", "--model", model_dir, "--ids", ids_arg(seqs), "--out", out]
        if step is not None:
            cmd += ["--step", str(step)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr.strip()}")
        with open(out) as f:
            data = json.load(f)
    finally:
        os.unlink(out)
    logits = data["logits"]
    if len(logits) != len(seqs):
        raise RuntimeError(f"tunic returned {len(logits)} sequences, expected {len(seqs)}")
    res = []
    for b, (lg, sq) in enumerate(zip(logits, seqs)):
        t = torch.tensor(lg, dtype=torch.float32)
        if t.dim() != 2 or t.shape[0] != len(sq):
            raise RuntimeError(f"sequence {b}: tunic logits shape {list(t.shape)}, expected ({len(sq)}, V)")
        res.append(t)
    return res


def diff_report(name, got, want, tol):
    """Prints one line (plus one per failing sequence); returns True if all within tol and finite."""
    ok = True
    maxes, details = [], []
    for b, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            details.append(f"    seq {b}: shape {list(g.shape)} vs reference {list(w.shape)}")
            maxes.append(float("nan"))
            ok = False
            continue
        if not torch.isfinite(g).all():
            details.append(f"    seq {b}: non-finite values")
            maxes.append(float("nan"))
            ok = False
            continue
        d = (g.double() - w.double()).abs()
        per_pos = d.max(dim=1).values
        maxes.append(float(d.max()))
        if float(d.max()) > tol:
            ok = False
            bad = [i for i, v in enumerate(per_pos.tolist()) if v > tol]
            details.append(f"    seq {b} (T={g.shape[0]}): positions over {tol:g}: {bad}; per-position max "
                           f"diff {[f'{v:.1e}' for v in per_pos.tolist()]}; max|ref| {float(w.abs().max()):.3g}")
    print(f"  {name}: max|diff| per sequence [{', '.join(f'{m:.1e}' for m in maxes)}]"
          f" {'ok' if ok else 'FAIL'}")
    for line in details:
        print(line)
    return ok


def compare(tunic, model_dir, seqs, step=None, tol=1e-4, dec=None, label=""):
    """tunic vs reference (and, with step, tunic step-K vs tunic full). Returns True if all pass."""
    if dec is None:
        dec = hf_decoder.Decoder.load(model_dir)
    ref = dec.logits_list(seqs)
    tag = f"{label} " if label else ""
    if step is None:
        got = run_tunic_logits(tunic, model_dir, seqs)
        return diff_report(f"{tag}full-vs-ref", got, ref, tol)
    got = run_tunic_logits(tunic, model_dir, seqs, step=step)
    ok = diff_report(f"{tag}step{step}-vs-ref", got, ref, tol)
    full = run_tunic_logits(tunic, model_dir, seqs)
    ok &= diff_report(f"{tag}step{step}-vs-full", got, full, tol)
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description="tunic logits vs the PyTorch reference")
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--step", type=int)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--tunic", default=os.environ.get("TUNIC"))
    a = ap.parse_args(argv)
    if not a.tunic:
        print("compare_logits: set $TUNIC or pass --tunic", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    try:
        ok = compare(a.tunic, a.model, hf_decoder.parse_ids(a.ids), step=a.step, tol=a.tol)
    except hf_decoder.RefusedConfig as e:
        print(f"compare_logits: reference refused the config: {e}", file=sys.stderr)
        return 1
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
