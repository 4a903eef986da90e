#!/usr/bin/python3
"""check.py - an independent check of tunic's safetensors reader and writer.

A small reader and writer written here from the format spec (struct + json +
numpy; no tunic code), used both ways:
  1. test_safetensors --write DIR N writes a known tensor set (formula below, the
     same table as st_set in test_safetensors.c); we read it and check the bytes,
     the exact layout (u64 LE header length, header padded with spaces to 8
     bytes, contiguous offsets in the given order, nothing after the data) and,
     for sharded output, HF's shard names and index JSON.
  2. We write files (unpadded/indented headers, keys out of data order, unicode
     names, scalars, empty tensors, HF-style shards + index) with random data;
     test_safetensors --dump PATH reads them and must give back the same bytes.
  3. We write a few lying files; --dump must refuse them naming file and tensor.
Usage: check.py TEST_BINARY WORKDIR
"""
import json, os, shutil, struct, subprocess, sys
import numpy as np

DT = {  # name: (numpy dtype for raw bytes, size)
    "F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
    "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("i1", 1),
    "U64": ("<u8", 8), "U32": ("<u4", 4), "U16": ("<u2", 2), "U8": ("u1", 1),
    "BOOL": ("u1", 1), "F8_E4M3": ("u1", 1), "F8_E5M2": ("u1", 1),
}

# Same table as st_set[] in tests/test_safetensors.c (name, dtype, shape).
SET = [
    ("model.embed_tokens.weight", "F32", [5, 3]),
    ("model.layers.0.self_attn.q_proj.weight", "BF16", [4, 6]),
    ("model.layers.0.mlp.up_proj.weight", "F16", [2, 3, 4]),
    ("scalar.f64", "F64", []),
    ("ids.i64", "I64", [7]),
    ("ids.i32", "I32", [3, 1]),
    ("ids.i16", "I16", [5]),
    ("ids.i8", "I8", [9]),
    ("bytes.u8", "U8", [11]),
    ("mask.bool", "BOOL", [2, 5]),
    ("u16", "U16", [3]),
    ("u32", "U32", [4]),
    ("u64", "U64", [2]),
    ("fp8.e4m3", "F8_E4M3", [6]),
    ("fp8.e5m2", "F8_E5M2", [2, 2]),
    ("empty.f32", "F32", [0, 4]),
    ("model.norm.weight", "F32", [1, 1, 1, 1, 1, 1, 1, 8]),
    ('name "quoted" \\ \u00fc', "U8", [1]),
]

failures = []
passes = 0


def check(cond, what):
    global passes
    if cond:
        passes += 1
    else:
        failures.append(what)
        print("FAIL:", what)


def formula(k, dtype, shape):
    """Element i of tensor k: b = (7 i + 13 k) mod 251, v = b - 125 (as in the C test)."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    i = np.arange(n, dtype=np.int64)
    b = (7 * i + 13 * k) % 251
    v = b - 125
    if dtype == "F32": a = (v / 8.0).astype("<f4")
    elif dtype == "F64": a = (v / 8.0).astype("<f8")
    elif dtype == "F16": a = (v / 8.0).astype("<f2")
    elif dtype == "BF16": a = ((v / 8.0).astype("<f4").view("<u4") >> 16).astype("<u2")
    elif dtype == "I8": a = v.astype("i1")
    elif dtype == "I16": a = (v * 257).astype("<i2")
    elif dtype == "I32": a = (v * 16843009).astype("<i4")
    elif dtype == "I64": a = v.astype("<i8") * np.int64(0x0101010101010101)
    elif dtype in ("U8", "F8_E4M3", "F8_E5M2"): a = b.astype("u1")
    elif dtype == "U16": a = (b * 257).astype("<u2")
    elif dtype == "U32": a = (b * 0x01010101).astype("<u4")
    elif dtype == "U64": a = b.astype("<u8") * np.uint64(0x0101010101010101)
    elif dtype == "BOOL": a = (b % 3 == 0).astype("u1")
    else: raise ValueError(dtype)
    return a.tobytes()


def no_dups(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def read_st(path):
    """Spec reader: returns (header N, key order, {name: (dtype, shape, bytes, begin, end)}, metadata, raw)."""
    raw = open(path, "rb").read()
    (N,) = struct.unpack("<Q", raw[:8])
    hdr_bytes = raw[8:8 + N]
    hdr = json.loads(hdr_bytes.decode("utf-8"), object_pairs_hook=no_dups)
    keys = list(hdr.keys())  # json keeps the file's key order
    data = raw[8 + N:]
    out, meta = {}, hdr.get("__metadata__")
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        n = int(np.prod(e["shape"], dtype=np.int64)) if e["shape"] else 1
        assert en - b == n * DT[e["dtype"]][1] and en <= len(data), name
        out[name] = (e["dtype"], list(e["shape"]), data[b:en], b, en)
    return N, keys, out, meta, raw


def check_layout(path, names_in_order, meta_want):
    N, keys, t, meta, raw = read_st(path)
    check(N % 8 == 0, f"{path}: header length {N} is a multiple of 8")
    hdr = raw[8:8 + N]
    check(hdr[:1] == b"{", f"{path}: header starts with '{{'")
    body = hdr.rstrip(b" ")
    check(body.endswith(b"}") and len(hdr) - len(body) < 8, f"{path}: padding is < 8 spaces after the object")
    check(keys[0] == "__metadata__" and meta == meta_want, f"{path}: __metadata__ first and equal to {meta_want}")
    order = [k for k in keys if k != "__metadata__"]
    check(order == names_in_order, f"{path}: tensors in the given order")
    off = 0
    for name in order:
        _, _, _, b, e = t[name]
        check(b == off, f"{path}: '{name}' starts right after the previous tensor ({b} vs {off})")
        off = e
    check(len(raw) == 8 + N + off, f"{path}: file ends at the last tensor")
    return t


def check_values(t, names):
    for name in names:
        k = [s[0] for s in SET].index(name)
        _, dtype, shape = SET[k]
        dt, sh, data, _, _ = t[name]
        check(dt == dtype and sh == shape, f"'{name}': dtype/shape {dt} {sh} == {dtype} {shape}")
        check(data == formula(k, dtype, shape), f"'{name}': bytes equal the formula")


def c_to_python(binary, work):
    names = [s[0] for s in SET]
    meta = {"format": "pt", "writer": "tunic"}
    d1 = os.path.join(work, "c1")
    check(subprocess.run([binary, "--write", d1, "1"]).returncode == 0, "C writes a single file")
    check(sorted(os.listdir(d1)) == ["model.safetensors"], "single: only model.safetensors")
    t = check_layout(os.path.join(d1, "model.safetensors"), names, meta)
    check_values(t, names)

    d3 = os.path.join(work, "c3")
    check(subprocess.run([binary, "--write", d3, "3"]).returncode == 0, "C writes 3 shards")
    shards = [f"model-{i:05d}-of-00003.safetensors" for i in (1, 2, 3)]
    check(sorted(os.listdir(d3)) == sorted(shards + ["model.safetensors.index.json"]), "shard file names")
    itext = open(os.path.join(d3, "model.safetensors.index.json")).read()
    index = json.loads(itext)
    got_order = []
    for sh in shards:
        _, keys, _, _, _ = read_st(os.path.join(d3, sh))
        got_order += [k for k in keys if k != "__metadata__"]
    # contiguous split in the given order
    check(got_order == names, "shards hold the tensors in the given order")
    got = {}
    for sh in shards:
        in_shard = read_st(os.path.join(d3, sh))[2]
        t = check_layout(os.path.join(d3, sh), [k for k in names if k in in_shard], meta)
        check(len(t) >= 1, f"{sh} is not empty")
        for name in t:
            got[name] = t[name]
            check(index["weight_map"].get(name) == sh, f"index maps '{name}' to {sh}")
    check_values(got, names)
    total = sum(len(v[2]) for v in got.values())
    check(index["metadata"]["total_size"] == total, f"total_size {index['metadata']['total_size']} == {total}")
    check(set(index["weight_map"]) == set(names), "weight_map lists every tensor")
    want_text = json.dumps({"metadata": {"total_size": total}, "weight_map": index["weight_map"]},
                           indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    check(itext == want_text, "index text is json.dumps(indent=2, sort_keys=True) as transformers writes it")


def write_st(path, tensors, metadata=None, pad=True, indent=None, reverse_data=False):
    """Spec writer: tensors = [(name, dtype, shape, bytes)]."""
    order = list(reversed(tensors)) if reverse_data else tensors
    offs, off = {}, 0
    for name, _, _, data in order:
        offs[name] = (off, off + len(data))
        off += len(data)
    hdr = {}
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for name, dtype, shape, _ in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": list(offs[name])}
    h = json.dumps(hdr, indent=indent, ensure_ascii=False).encode("utf-8")
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    elif len(h) % 8 == 0:
        h += b"\n"  # make sure the reader copes with an unaligned data section
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(d for _, _, _, d in order))


def random_tensors(rng, tag):
    out = []
    for dtype in DT:
        shape = [int(x) for x in rng.integers(1, 5, size=int(rng.integers(0, 4)))]
        n = int(np.prod(shape)) if shape else 1
        if dtype in ("F32", "F64", "F16"):
            data = rng.standard_normal(n).astype(DT[dtype][0]).tobytes()
        elif dtype == "BOOL":
            data = rng.integers(0, 2, n).astype("u1").tobytes()
        else:
            data = rng.integers(0, 256, n * DT[dtype][1]).astype("u1").tobytes()
        out.append((f"{tag}.{dtype.lower()}.weight", dtype, shape, data))
    out.append((f"{tag}.empty", "BF16", [3, 0], b""))
    out.append((f"{tag}.модель.ü", "F32", [2], np.array([1.5, -2.25], "<f4").tobytes()))
    return out


def dump(binary, path):
    r = subprocess.run([binary, "--dump", path], capture_output=True, text=True)
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else None), r.stderr


def python_to_c(binary, work):
    rng = np.random.default_rng(7)
    # one file: unpadded, indented header, data in reverse order of the keys
    p1 = os.path.join(work, "p1")
    os.makedirs(p1)
    ts = random_tensors(rng, "single")
    meta = {"format": "pt", "note": 'ü "q" \\'}
    write_st(os.path.join(p1, "model.safetensors"), ts, metadata=meta, pad=False, indent=1, reverse_data=True)
    for path in (p1, os.path.join(p1, "model.safetensors")):
        rc, d, err = dump(binary, path)
        check(rc == 0, f"C reads python's {path} ({err.strip()})")
        if rc != 0:
            continue
        check(d.get("metadata") == meta, "metadata read back")
        check(set(d["tensors"]) == {t[0] for t in ts}, "same tensor names")
        for name, dtype, shape, data in ts:
            g = d["tensors"].get(name, {})
            check(g.get("dtype") == dtype and g.get("shape") == shape and g.get("hex") == data.hex(),
                  f"'{name}' read back exactly")

    # sharded, as transformers lays it out
    p2 = os.path.join(work, "p2")
    os.makedirs(p2)
    shards = [random_tensors(rng, f"layer{i}") for i in range(3)]
    wm, total = {}, 0
    for i, ts in enumerate(shards):
        fn = f"model-{i + 1:05d}-of-00003.safetensors"
        write_st(os.path.join(p2, fn), ts, metadata={"format": "pt"})
        for name, _, _, data in ts:
            wm[name] = fn
            total += len(data)
    with open(os.path.join(p2, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps({"metadata": {"total_size": total}, "weight_map": wm}, indent=2, sort_keys=True) + "\n")
    rc, d, err = dump(binary, p2)
    check(rc == 0 and d["nfiles"] == 3, f"C reads python's sharded dir ({err.strip()})")
    if rc == 0:
        check(set(d["tensors"]) == set(wm), "sharded: same tensor names")
        for ts in shards:
            for name, dtype, shape, data in ts:
                g = d["tensors"].get(name, {})
                check(g.get("dtype") == dtype and g.get("shape") == shape and g.get("hex") == data.hex()
                      and g.get("file", "").endswith("/" + wm[name]), f"sharded '{name}' read back from {wm[name]}")


def python_lies(binary, work):
    """Files whose header lies: C must refuse them, naming the file and the tensor."""
    p = os.path.join(work, "lie.safetensors")
    cases = [
        ({"w.big": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 8, ["w.big", "exceed the data section (8 bytes)"]),
        ({"w.a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "w.b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12, ["w.b", "overlap tensor 'w.a'"]),
        ({"w.s": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 8]}}, 8, ["w.s", "6 bytes"]),
        ({"w.t": {"dtype": "Q4", "shape": [3], "data_offsets": [0, 3]}}, 8, ["w.t", "unknown dtype"]),
    ]
    for hdr, dlen, want in cases:
        h = json.dumps(hdr).encode()
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + bytes(dlen))
        rc, _, err = dump(binary, p)
        check(rc == 2 and p in err and all(w in err for w in want), f"C refuses {hdr}: {err.strip()}")


def main():
    binary, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    c_to_python(binary, work)
    python_to_c(binary, work)
    python_lies(binary, work)
    print(f"{passes} passed, {len(failures)} failed")
    if not failures:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
