#!/usr/bin/python3
"""run_gguf.py BUILD - tunic against llama.cpp (node-llama-cpp's prebuilt CPU build) on the same
model in the same run (issue 21): prefill tokens/s and greedy decode tokens/s at batch 1 and 8, with
the weights in f32, bf16, and 4-bit (tunic NF4, bitsandbytes' format, vs llama.cpp q4_0). The model:
`tunic init --arch llama --size small` (dim 512, 8 layers, 8/4 heads, ffn 1408) with the Llama-3
tokenizer (vocab 128256, tied head: the head is 65.7 M of the 89.3 M parameters), bf16 values, so
the f32 and bf16 GGUF files are exact copies; `tunic export --gguf` writes them. Work per engine:
B prompts of 128 tokens (bench_infer's formula), then 32 decode steps of one token per sequence.
Bound: decode tok/s <= B x read bandwidth / bytes of weights per step (tunic: bench_infer's own
count; llama.cpp: the GGUF file's tensor bytes), with the read bandwidth bench_infer measures in
the same run. Prints a markdown table; the machine is shared, so only same-run ratios mean much.
Needs: scripts/test-setup.sh (node-llama-cpp, the tokenizer packages), node, BUILD/bench/bench_infer.
Env: BENCH_REPS (default 3)."""
import json
import os
import subprocess
import sys

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
NPM = os.path.join(SRC, ".cache", "npm")
CACHE = os.path.join(BUILD, "bench-cache", "gguf")
REPS = int(os.environ.get("BENCH_REPS", "3"))
P, NEW = 128, 32


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def main():
    tunic = os.path.join(BUILD, "tunic")
    os.makedirs(CACHE, exist_ok=True)
    model = os.path.join(CACHE, "llama_small_l3")
    if not os.path.isfile(os.path.join(model, "model.safetensors")):
        run([tunic, "init", "--arch", "llama", "--size", "small", "--dtype", "bf16", "--seed", "1", "--tokenizer",
             os.path.join(NPM, "node_modules", "@lenml", "tokenizer-llama3", "models"), "--out", model, "--force"])
    V = json.load(open(os.path.join(model, "config.json")))["vocab_size"]
    files = {}
    for t in ("f32", "bf16", "q4_0"):
        files[t] = os.path.join(CACHE, f"llama_small_l3.{t}.gguf")
        if not os.path.isfile(files[t]):
            run([tunic, "export", "--gguf", files[t], "--model", model, "--type", t])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    rows = []
    for tdt, gt in (("f32", "f32"), ("bf16", "bf16"), ("nf4", "q4_0")):
        up0 = open("/proc/loadavg").read().split()[:3]
        jt = os.path.join(CACHE, f"tunic_{tdt}.json")
        if os.path.exists(jt):
            os.remove(jt)
        env = dict(os.environ, OMP_NUM_THREADS="2")
        run([os.path.join(BUILD, "bench", "bench_infer"), "--model", model, "--base-dtype", tdt, "--batches", "1,8",
             "--prompt-len", str(P), "--new-tokens", str(NEW), "--reps", str(REPS), "--json", jt], env=env)
        tu = json.loads(open(jt).read().splitlines()[-1])
        req = {"model": files[gt], "P": P, "NEW": NEW, "batches": [1, 8], "reps": REPS, "threads": 2, "V": V,
               "out": os.path.join(CACHE, f"llama_{gt}.json")}
        json.dump(req, open(os.path.join(CACHE, "req.json"), "w"))
        run(["node", os.path.join(SRC, "bench", "llama_bench.mjs"), os.path.join(CACHE, "req.json"), NPM])
        ll = json.load(open(req["out"]))
        up1 = open("/proc/loadavg").read().split()[:3]
        gbytes = os.path.getsize(files[gt])
        bw = tu["bw_dram_gbs"] * 1e9
        for a, b in zip(tu["batches"], ll["batches"]):
            B = a["B"]
            rows.append((f"{tdt} / {gt}", B, a["prefill_tok_s"], b["prefill_tok_s"], a["decode_tok_s"], b["decode_tok_s"],
                         B * bw / tu["weight_bytes"], B * bw / gbytes, f"{'/'.join(up0)} -> {'/'.join(up1)}"))
        print(f"# {tdt}/{gt}: read bandwidth {tu['bw_dram_gbs']:.2f} GB/s (1 GiB), tunic weights {tu['weight_bytes'] / 1e6:.0f} MB, "
              f"GGUF {gbytes / 1e6:.0f} MB", flush=True)
    print(f"\nCPU: {cpu}, {os.cpu_count()} cores; 2 threads each; P={P}, {NEW} decode steps, median of {REPS}\n")
    print("| weights tunic / llama.cpp | B | prefill tok/s tunic | llama.cpp | ratio | decode tok/s tunic | llama.cpp | ratio "
          "| decode bound tunic / llama.cpp (tok/s) | load avg before -> after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]:.0f} | {r[2] / r[3]:.2f}x | {r[4]:.1f} | {r[5]:.1f} | {r[4] / r[5]:.2f}x "
              f"| {r[6]:.1f} / {r[7]:.1f} | {r[8]} |")


if __name__ == "__main__":
    main()
