/* bench_gemm.c - GFLOP/s of the training matmuls, per matmul class, on the shapes of
 * bench/run_train.sh's models: forward y = x W^T, input gradient dX = dY W and weight
 * gradient dW = dY^T X, for each of OpenBLAS sgemm (the f32 path), tunic's own AVX-512 f32
 * packed GEMM (tn_linear_cols; forward only) and tn_gemm_bf16 (the bf16 matmul mode, on the
 * path tn_isa_level() selects). bench/torch_gemm.py times the same products in PyTorch
 * (f32 and bf16, the bf16 ones are oneDNN's); bench/run_gemm.sh runs both interleaved.
 * Not for: correctness (tests/test_mm_bf16.c), whole training steps (bench_train).
 * Usage: bench_gemm --model tiny|small|qwen05b [--rows N] [--reps 3] [--json FILE] [--cpu 1]
 * --cpu 1: GFLOP per CPU second of the process instead of per wall second (per core with
 * OMP_NUM_THREADS=1; on a shared machine it is the steadier figure). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/base.h"
#include "tensor/tensor.h"

static bool g_cpu; /* --cpu: time by the process's CPU time (a loaded machine inflates it less) */
static double now(void) {
  struct timespec t;
  clock_gettime(g_cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static float *rnd(size_t n) {
  float *p = malloc(sizeof(float) * n);
  uint64_t s = n * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = (float)((s >> 40) & 0xffff) / 65536.0f - 0.5f;
  }
  return p;
}

/* kind: 0 sgemm, 1 tunic f32 (forward only), 2 bf16; cls: 0 fwd, 1 dX, 2 dW */
static void run(int kind, int cls, int M, int in, int out, const float *x, const float *w, const float *dy, float *y,
                float *dx, float *dw) {
  if (kind == 0) {
    if (cls == 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, out, in, 1, x, in, w, in, 0, y, out);
    else if (cls == 1) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, in, out, 1, dy, out, w, in, 1, dx, in);
    else cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, M, 1, dy, out, x, in, 1, dw, in);
  } else if (kind == 1) {
    tn_mat W = {.out = out, .in = in, .dtype = TN_F32, .w = (float *)w};
#pragma omp parallel
    {
      int o0, o1;
      tn_cols_range(out, omp_get_thread_num(), omp_get_num_threads(), &o0, &o1);
      tn_linear_cols(y, x, &W, NULL, M, o0, o1, NULL, 0);
    }
  } else {
    bool ok;
    if (cls == 0) ok = tn_gemm_bf16(false, true, M, out, in, x, in, w, in, 0, y, out);
    else if (cls == 1) ok = tn_gemm_bf16(false, false, M, in, out, dy, out, w, in, 1, dx, in);
    else ok = tn_gemm_bf16(true, false, out, in, M, dy, out, x, in, 1, dw, in);
    if (!ok) {
      fprintf(stderr, "bench_gemm: no bf16 GEMM at this ISA level\n");
      exit(1);
    }
  }
}

int main(int argc, char **argv) {
  const char *model = "tiny", *json = NULL;
  int rows = 0, reps = 3;
  if (argc == 2 && !strcmp(argv[1], "--path")) { /* the bf16 GEMM path at this ISA level (run_train.sh) */
    printf("%s\n", tn_gemm_bf16_path());
    return 0;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--json")) json = argv[i + 1];
    else if (!strcmp(argv[i], "--cpu")) g_cpu = atoi(argv[i + 1]) != 0;
    else {
      fprintf(stderr, "usage: bench_gemm --model tiny|small|qwen05b [--rows N] [--reps 3] [--json FILE]\n");
      return 2;
    }
  }
  int d, f;
  if (!strcmp(model, "tiny")) d = 288, f = 768;
  else if (!strcmp(model, "small")) d = 512, f = 1408;
  else if (!strcmp(model, "qwen05b")) d = 896, f = 4864;
  else {
    fprintf(stderr, "bench_gemm: unknown model %s\n", model);
    return 2;
  }
  if (rows <= 0) rows = !strcmp(model, "qwen05b") ? 512 : 2048; /* batch x 256 of run_train.sh */
  const int shapes[3][2] = {{d, d}, {d, f}, {f, d}}; /* (in, out): q/o projection, gate/up, down */
  static const char *cls_name[] = {"fwd", "dX", "dW"}, *kind_name[] = {"sgemm", "tunic-f32", "bf16"};
  FILE *js = json ? fopen(json, "a") : NULL;
  printf("# bench_gemm %s, rows %d, threads %d, isa %s, bf16 path %s, GFLOP per %s second\n", model, rows,
         omp_get_max_threads(), tn_isa_name(tn_isa_level()), tn_gemm_bf16_path(), g_cpu ? "CPU" : "wall");
  for (int s = 0; s < 3; s++) {
    const int in = shapes[s][0], out = shapes[s][1], M = rows;
    float *x = rnd((size_t)M * in), *w = rnd((size_t)out * in), *dy = rnd((size_t)M * out);
    float *y = rnd((size_t)M * out), *dx = rnd((size_t)M * in), *dw = rnd((size_t)out * in);
    const double flop = 2.0 * M * in * out;
    for (int cls = 0; cls < 3; cls++) {
      double best[3] = {0, 0, 0};
      for (int r = 0; r < reps + 1; r++) /* interleaved; the first round warms up */
        for (int kind = 0; kind < 3; kind++) {
          if (kind == 1 && cls != 0) continue;
          if (kind == 2 && tn_isa_level() < TN_ISA_AVX512BF16) continue;
          const double t0 = now();
          run(kind, cls, M, in, out, x, w, dy, y, dx, dw);
          const double g = flop / (now() - t0) / 1e9;
          if (r > 0 && g > best[kind]) best[kind] = g;
        }
      printf("%-8s M %5d in %5d out %5d %-3s  sgemm %7.1f  tunic-f32 %7.1f  bf16 %7.1f GFLOP/s\n", model, M, in, out,
             cls_name[cls], best[0], best[1], best[2]);
      if (js)
        for (int kind = 0; kind < 3; kind++)
          if (best[kind] > 0)
            fprintf(js,
                    "{\"engine\":\"tunic\",\"model\":\"%s\",\"M\":%d,\"in\":%d,\"out\":%d,\"class\":\"%s\","
                    "\"kernel\":\"%s\",\"gflops\":%.2f,\"isa\":\"%s\"}\n",
                    model, M, in, out, cls_name[cls], kind_name[kind], best[kind], tn_isa_name(tn_isa_level()));
    }
    free(x); free(w); free(dy); free(y); free(dx); free(dw);
  }
  if (js) fclose(js);
  return 0;
}
