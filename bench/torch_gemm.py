"""torch_gemm.py - PyTorch's GFLOP/s on bench_gemm.c's products (same shapes, classes and JSON
lines): f32 (torch's BLAS) and bf16 tensors (oneDNN 2.6.3 inside Debian's torch 1.13, the
matmuls bf16 autocast runs on CPU). Not for: correctness.
Usage: torch_gemm.py --model tiny|small|qwen05b [--rows N] [--reps 3] [--threads 2] [--json FILE]"""
import argparse, json, time
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="tiny")
ap.add_argument("--rows", type=int, default=0)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--json")
ap.add_argument("--cpu", type=int, default=0, help="1: GFLOP per CPU second of the process (as bench_gemm --cpu 1)")
a = ap.parse_args()
torch.set_num_threads(a.threads)
d, f = {"tiny": (288, 768), "small": (512, 1408), "qwen05b": (896, 4864)}[a.model]
M = a.rows or (512 if a.model == "qwen05b" else 2048)
out = open(a.json, "a") if a.json else None
print(f"# torch_gemm {a.model}, rows {M}, threads {a.threads}, torch {torch.__version__}, "
      f"mkldnn (oneDNN) {torch.backends.mkldnn.is_available()}, GFLOP per {'CPU' if a.cpu else 'wall'} second")
for (n_in, n_out) in [(d, d), (d, f), (f, d)]:
    g = torch.Generator().manual_seed(0)
    x, w, dy = (torch.rand(s, generator=g) - 0.5 for s in [(M, n_in), (n_out, n_in), (M, n_out)])
    flop = 2.0 * M * n_in * n_out
    for cls in ["fwd", "dX", "dW"]:
        best = {}
        for dt in [torch.float32, torch.bfloat16]:
            xx, ww, dd = x.to(dt), w.to(dt), dy.to(dt)
            fn = {"fwd": lambda: xx @ ww.t(), "dX": lambda: dd @ ww, "dW": lambda: dd.t() @ xx}[cls]
            b = 0.0
            for r in range(a.reps + 1):
                clock = time.process_time if a.cpu else time.perf_counter
                t0 = clock()
                fn()
                gf = flop / max(clock() - t0, 1e-9) / 1e9
                if r > 0:
                    b = max(b, gf)
            best["f32" if dt == torch.float32 else "bf16"] = b
        print(f"{a.model:8s} M {M:5d} in {n_in:5d} out {n_out:5d} {cls:3s}  torch-f32 {best['f32']:7.1f}  "
              f"torch-bf16 (oneDNN) {best['bf16']:7.1f} GFLOP/s")
        if out:
            for k, v in best.items():
                out.write(json.dumps({"engine": "torch", "model": a.model, "M": M, "in": n_in, "out": n_out,
                                      "class": cls, "kernel": "torch-" + k, "gflops": round(v, 2)}) + "\n")
