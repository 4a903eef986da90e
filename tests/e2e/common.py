"""Shared helpers of the end-to-end CLI tests (tests/e2e/*.py, registered in tests/e2e.cmake).

What it is for: finding the tunic binary (env TUNIC, else $TN_BUILD/tunic), running it with a
time limit, classifying how it ended (exit code vs. killed by a signal, sanitizer reports),
making tiny byte-tokenizer models with `tunic init`, and an independent safetensors
reader/writer (struct + json only, written from the format spec) to build broken files.
What it is not: a reference for numerics (tests/ref/hf_decoder.py is).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

SRC = os.environ.get("TN_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("TN_BUILD", "")
TUNIC = os.environ.get("TUNIC") or os.path.join(BUILD, "tunic")

FAILURES = []


def check(cond, what):
    """Record one assertion; print it. The test exits non-zero if any failed."""
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)
    return cond


def finish():
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed:")
        for f in FAILURES:
            print("  - " + f)
        sys.exit(1)
    print("\nall checks passed")
    sys.exit(0)


def workdir(name):
    d = tempfile.mkdtemp(prefix=f"tn-e2e-{name}-")
    return d


def run(args, timeout=120, env=None, cwd=None):
    """Run tunic with args; returns CompletedProcess (returncode < 0 means a signal)."""
    e = dict(os.environ)
    e.setdefault("OMP_NUM_THREADS", "2")
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    if env:
        e.update(env)
    return subprocess.run([TUNIC] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=cwd)


def sanitizer_report(p):
    return "AddressSanitizer" in p.stderr or "runtime error:" in p.stderr or "LeakSanitizer" in p.stderr


def ok_run(args, what, **kw):
    p = run(args, **kw)
    good = p.returncode == 0 and not sanitizer_report(p)
    if not check(good, f"{what}: exit 0 (got {p.returncode})"):
        print(p.stdout[-2000:])
        print(p.stderr[-4000:])
        raise SystemExit(finish())
    return p


def clean_failure(p):
    """(ok, why): the command failed with exit status 1 or 2, not a signal or a sanitizer report."""
    if p.returncode < 0:
        return False, f"killed by signal {-p.returncode}"
    if p.returncode not in (1, 2):
        return False, f"exit status {p.returncode} (want 1 or 2)"
    if sanitizer_report(p):
        return False, "sanitizer report on stderr"
    return True, f"exit {p.returncode}"


def expect_error(args, what, must_contain, **kw):
    """The command must fail cleanly with every string of must_contain in its stderr."""
    p = run(args, **kw)
    good, why = clean_failure(p)
    check(good, f"{what}: fails cleanly ({why})")
    missing = [m for m in must_contain if m not in p.stderr]
    check(not missing, f"{what}: message names {must_contain}" + (f" -- missing {missing}" if missing else ""))
    if not good or missing:
        print("    stderr: " + p.stderr.strip()[-1500:])
    else:
        print("    message: " + p.stderr.strip().splitlines()[-1][:300])
    return p


def init_model(out, seed=1, arch="llama", extra=()):
    ok_run(["init", "--arch", arch, "--size", "tiny", "--tokenizer", "bytes", "--seed", seed, "--out", out, *extra],
           f"tunic init {arch} -> {os.path.basename(out)}")
    return out


def copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


# ---- safetensors, from the spec: u64 LE header length, JSON header, data buffer ----
def st_read(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    return hdr, raw[8 + n:]


def st_write_raw(path, hdr, data, header_len=None, pad=True):
    h = json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h) if header_len is None else header_len))
        f.write(h)
        f.write(data)


def st_tensors(path):
    """{name: (dtype, shape, bytes)} of a safetensors file."""
    hdr, data = st_read(path)
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], data[a:b])
    return out


def st_write(path, tensors, metadata=None):
    """tensors: {name: (dtype, shape, bytes)} in order; contiguous, non-overlapping layout."""
    hdr = {}
    if metadata:
        hdr["__metadata__"] = metadata
    off, chunks = 0, []
    for k, (dt, shape, b) in tensors.items():
        hdr[k] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    st_write_raw(path, hdr, b"".join(chunks))


def f32_values(b):
    return struct.unpack(f"<{len(b) // 4}f", b)


def jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def read_metrics(run_dir):
    rows = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows
