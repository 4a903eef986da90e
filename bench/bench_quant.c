/* bench_quant.c - frozen low-precision weights (issue 7): memory and speed of the
 * f32 / bf16 / nf4 storage of the projection matrices.
 *
 *   bench_quant --model DIR --dtype f32|bf16|nf4 [--new-tokens 64] [--reps 3]
 *       loads DIR with that base dtype (one dtype per process, so RSS is clean) and
 *       prints one JSON line: bytes per frozen parameter, RSS growth of the load,
 *       load time, batch-1 greedy KV-cache decode tokens/s (median of reps, after a
 *       16-token prefill and a warm-up).
 *   bench_quant --gemm [--n 512] [--k 896] [--out 4864]
 *       GEMM GFLOP/s of y = x W^T for W f32 (OpenBLAS sgemm), bf16 (the default path:
 *       AMX tiles where available; and the vdpbf16ps GEMM), nf4 (f32 tiles), and the
 *       machine's AVX-512 bf16 peak measured by a register-only vdpbf16ps loop on every
 *       thread (64 flops per instruction).
 *   bench_quant --gemv [--n 1] [--k 896] [--out 151936] [--reps 3]
 *       batch-N GEMV of one matrix stored f32, bf16 (AVX-512; plain C), nf4:
 *       weight GB/s against the read bandwidth of a buffer of the same size.
 *   bench_quant --model DIR --dtype f32|bf16|nf4 --train [--batch 2] [--seq 256] [--lora-rank 16]
 *               [--steps 3]
 *       LoRA training (rank r on q,k,v,o, the step `tunic sft` runs: forward, chunked head +
 *       cross-entropy, backward, AdamW) on that base: tokens/s, CPU s/step (medians after
 *       one warm-up step), peak RSS of the process (getrusage), the first loss.
 * bench/run_quant.sh runs all of them on the 15m and qwen05b shapes and prints the table.
 * Not for: correctness (tests/test_quant.c). */
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include "model/model.h"
#include "train/opts.h"
#include "train/train.h"

static long rss_kb(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

#include <time.h>
static double cpu_now(void) { /* process CPU seconds: robust to other jobs on the machine */
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int argmax(const float *x, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[b]) b = i;
  return b;
}

static int run_model(const char *dir, const char *dt, int new_tokens, int reps) {
  tn_load_opts o;
  tn_load_opts_default(&o);
  if (tn_parse_base_dtype(dt, &o.base_dtype) != TN_OK) { fprintf(stderr, "%s\n", tn_last_error()); return 2; }
  const long rss0 = rss_kb();
  double t0 = tn_now();
  tn_model *m;
  if (tn_model_load_opts(&m, dir, &o) != TN_OK) { fprintf(stderr, "load: %s\n", tn_last_error()); return 1; }
  const double load_s = tn_now() - t0;
  const long rss1 = rss_kb();
  size_t qb, qp, wb, wp;
  tn_model_frozen_bytes(m, &qb, &qp);
  tn_model_weight_bytes(m, &wb, &wp);
  const int P = 16, T = P + new_tokens, V = m->cfg.V;
  tn_state *st;
  if (tn_state_create(&st, m, 1, T, P, false) != TN_OK) { fprintf(stderr, "%s\n", tn_last_error()); return 1; }
  int tok[16], pos[16], seq[16] = {0};
  float *lg = malloc(sizeof(float) * V);
  double tps[16], cps[16];
  if (reps > 15) reps = 15;
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    for (int i = 0; i < P; i++) { tok[i] = 3 + (i * 7919 + 12345) % (V - 3); pos[i] = i; }
    st->len[0] = 0;
    int out_row = P - 1;
    tn_forward(m, st, P, tok, pos, seq, lg, &out_row, 1);
    int next = argmax(lg, V);
    const int steps = r < 0 ? 4 : new_tokens;
    double ts = tn_now(), cs = cpu_now();
    for (int s = 0; s < steps; s++) {
      int p = P + s;
      tn_forward(m, st, 1, &next, &p, seq, lg, NULL, 1);
      next = argmax(lg, V);
    }
    if (r >= 0) {
      tps[r] = steps / (tn_now() - ts);
      cps[r] = steps / (cpu_now() - cs);
    }
  }
  qsort(tps, reps, sizeof(double), cmp_d);
  qsort(cps, reps, sizeof(double), cmp_d);
  printf("{\"model\": \"%s\", \"dtype\": \"%s\", \"frozen_params\": %zu, \"bytes_per_frozen_param\": %.4f, "
         "\"weight_mb\": %.1f, \"bytes_per_param\": %.4f, "
         "\"load_rss_mb\": %.1f, \"load_s\": %.2f, \"decode_tok_s\": %.2f, \"decode_tok_per_cpu_s\": %.2f, "
         "\"threads\": %d}\n",
         dir, dt, qp, (double)qb / qp, wb / 1048576.0, (double)wb / wp, (rss1 - rss0) / 1024.0, load_s, tps[reps / 2],
         cps[reps / 2], omp_get_max_threads());
  free(lg);
  tn_state_free(st);
  tn_model_free(m);
  return 0;
}

static double median(double *v, int n) {
  qsort(v, n, sizeof(double), cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int run_train(const char *dir, const char *dt, int B, int T, int rank, int steps) {
  tn_tparams_opts po;
  tn_tparams_opts_default(&po);
  po.lora_rank = rank;
  po.lora_alpha = 2.0f * rank;
  po.lr = 1e-4f;
  po.weight_decay = 0.0f;
  po.seed = 1;
  tn_model *m;
  tn_train_opts to;
  tn_train_opts_default(&to);
  to.model = dir;
  to.base_dtype = dt;
  to.lora_rank = rank;
  if (tn_tparams_load_model(&m, &to) != TN_OK) { fprintf(stderr, "load: %s\n", tn_last_error()); return 1; }
  tn_tparams tp;
  tn_state *st;
  tn_bwd bw;
  tn_head h;
  const int N = B * T, V = m->cfg.V;
  if (tn_tparams_init(&tp, m, &po) != TN_OK || tn_state_create(&st, m, B, T, N, true) != TN_OK ||
      tn_bwd_create(&bw, m, st) != TN_OK || tn_head_create(&h, m, st) != TN_OK) {
    fprintf(stderr, "setup: %s\n", tn_last_error());
    return 1;
  }
  int *tok = malloc(sizeof(int) * N * 4);
  int *pos = tok + N, *seq = pos + N, *tgt = seq + N;
  float *lrow = malloc(sizeof(float) * N * 2), *wrow = lrow + N;
  for (int i = 0; i < N; i++) { /* bench_train's data formula */
    const int b = i / T, t = i % T;
    tok[i] = 3 + (int)(((int64_t)b * 1000003 + (int64_t)t * 7919 + ((int64_t)t * t % 9973) * 31 + 12345) % (V - 3));
    tgt[i] = 3 + (int)(((int64_t)b * 1000003 + (int64_t)(t + 1) * 7919 + ((int64_t)(t + 1) * (t + 1) % 9973) * 31 + 12345) %
                       (V - 3));
    pos[i] = t;
    seq[i] = b;
    wrow[i] = 1.0f / N;
  }
  double wall[16], cpu[16], loss0 = 0;
  if (steps > 15) steps = 15;
  for (int s = -1; s < steps; s++) { /* s = -1: warm-up */
    const double a = tn_now(), c = cpu_now();
    tn_tparams_zero_grad(&tp);
    if (tn_forward(m, st, N, tok, pos, seq, NULL, NULL, 0) != TN_OK ||
        tn_head_xent(m, st, &h, &bw, tn_tparams_grads(&tp), tgt, wrow, N, lrow) != TN_OK ||
        tn_backward_body(m, st, &bw, tn_tparams_grads(&tp), N, tok, pos, seq) != TN_OK) {
      fprintf(stderr, "step: %s\n", tn_last_error());
      return 1;
    }
    tn_adamw_step(&tp.opt, po.lr, 1.0f);
    if (s < 0) {
      for (int i = 0; i < N; i++) loss0 += lrow[i];
      continue;
    }
    wall[s] = tn_now() - a;
    cpu[s] = cpu_now() - c;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const double w = median(wall, steps), cs = median(cpu, steps);
  printf("{\"train\": \"%s\", \"dtype\": \"%s\", \"batch\": %d, \"seq\": %d, \"lora_rank\": %d, \"threads\": %d, "
         "\"train_tok_s\": %.1f, \"cpu_s_per_step\": %.2f, \"peak_rss_mb\": %.0f, \"loss0\": %.5f}\n",
         dir, dt, B, T, rank, omp_get_max_threads(), N / w, cs, ru.ru_maxrss / 1024.0, loss0 / N);
  free(tok);
  free(lrow);
  tn_head_free(&h);
  tn_bwd_free(&bw);
  tn_state_free(st);
  tn_tparams_free(&tp);
  tn_model_free(m);
  return 0;
}

/* register-only vdpbf16ps: 12 independent accumulators per thread, named variables (an
 * array indexed in a loop went through the stack and measured store forwarding) */
__attribute__((target("avx512f,avx512bf16"))) static double bf16_peak(void) {
  const long iters = 20000000;
  double t0 = tn_now();
#pragma omp parallel
  {
    __m512 a0 = _mm512_set1_ps(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0,
           a10 = a0, a11 = a0;
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3c00);
    for (long it = 0; it < iters; it++) {
#define DP(a) a = _mm512_dpbf16_ps(a, x, y)
      DP(a0); DP(a1); DP(a2); DP(a3); DP(a4); DP(a5); DP(a6); DP(a7); DP(a8); DP(a9); DP(a10); DP(a11);
#undef DP
      __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8),
                       "+v"(a9), "+v"(a10), "+v"(a11));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    if (_mm512_reduce_add_ps(s) == 1234.5f) printf(" ");
  }
  const double dt = tn_now() - t0;
  return (double)iters * 12 * 64 * omp_get_max_threads() / dt / 1e9;
}

static double time_gemm(tn_mat *W, const float *x, float *y, int N) {
  double best = 1e30;
  for (int r = 0; r < 5; r++) {
    double t0 = tn_now();
    tn_linear_forward(y, x, W, NULL, N);
    double dt = tn_now() - t0;
    if (r > 0 && dt < best) best = dt; /* r = 0: warm-up (scratch, packing buffers) */
  }
  return 2.0 * N * W->in * (double)W->out / best / 1e9;
}

static int run_gemm(int N, int K, int O) {
  tn_rng rng;
  tn_rng_seed(&rng, 1);
  float *w = malloc(sizeof(float) * (size_t)O * K), *x = malloc(sizeof(float) * (size_t)N * K);
  float *y = malloc(sizeof(float) * (size_t)N * O);
  for (size_t i = 0; i < (size_t)O * K; i++) w[i] = tn_rng_normal(&rng) * 0.02f;
  for (size_t i = 0; i < (size_t)N * K; i++) x[i] = tn_rng_normal(&rng);
  tn_mat F = {.out = O, .in = K, .dtype = TN_F32, .w = w};
  uint16_t *b = malloc(sizeof(uint16_t) * (size_t)O * K);
  tn_bf16_from_f32(b, w, (size_t)O * K);
  tn_mat B = {.out = O, .in = K, .dtype = TN_BF16, .q = b};
  tn_nf4 q;
  tn_nf4_alloc(&q, (int64_t)O * K, 64, true);
  tn_nf4_quantize(&q, w);
  tn_mat Q = {.out = O, .in = K, .dtype = TN_NF4, .q = &q};
  const tn_isa isa0 = tn_isa_level();
  const double gf = time_gemm(&F, x, y, N), gb = time_gemm(&B, x, y, N), gq = time_gemm(&Q, x, y, N);
  double gdp = 0, peak = 0;
  if (isa0 >= TN_ISA_AVX512BF16) { /* the vdpbf16ps GEMM (the path without AMX) and its peak */
    tn_isa_set(TN_ISA_AVX512BF16);
    gdp = time_gemm(&B, x, y, N);
    tn_isa_set(isa0);
    peak = bf16_peak();
  }
  printf("{\"gemm\": [%d, %d, %d], \"threads\": %d, \"isa\": %d, \"f32_gflops\": %.1f, \"bf16_gflops\": %.1f, "
         "\"bf16_vdpbf16ps_gflops\": %.1f, \"nf4_gflops\": %.1f, \"bf16_peak_gflops\": %.1f, \"bf16_of_peak\": %.3f, "
         "\"vdpbf16ps_of_peak\": %.3f}\n",
         N, K, O, omp_get_max_threads(), (int)isa0, gf, gb, gdp, gq, peak, peak > 0 ? gb / peak : 0,
         peak > 0 ? gdp / peak : 0);
  tn_nf4_free(&q);
  free(w); free(x); free(y); free(b);
  return 0;
}

/* Read bandwidth (GB/s, best of reps) over `bytes`: AVX-512 sums on every thread. */
__attribute__((target("avx512f,avx512dq"))) static double read_bw(const float *buf, size_t bytes, int reps) {
  const size_t n = bytes / 4;
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = cpu_now();
    float tot = 0;
#pragma omp parallel reduction(+ : tot)
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      const size_t per = (n / nt) & ~(size_t)63, i0 = t * per, i1 = t == nt - 1 ? n & ~(size_t)63 : i0 + per;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t i = i0; i < i1; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(buf + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(buf + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(buf + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(buf + i + 48));
      }
      tot += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
    sink = tot;
    const double dt = (cpu_now() - t0) / omp_get_max_threads();
    if (bytes / dt / 1e9 > best) best = bytes / dt / 1e9;
  }
  (void)sink;
  return best;
}

/* Batch-N GEMV of an (out, in) matrix stored f32 / bf16 (AVX-512 and plain C) / nf4:
 * weight bytes read per second (best of reps), against the read bandwidth of a buffer of
 * each size in the same process. Both timed in process CPU seconds per thread (memory
 * stalls count, being descheduled by other jobs does not: robust on a loaded machine). */
static int run_gemv(int N, int K, int O, int reps) {
  tn_rng rng;
  tn_rng_seed(&rng, 1);
  const size_t n = (size_t)O * K;
  float *w = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * (size_t)N * K);
  float *y = malloc(sizeof(float) * (size_t)N * O);
  for (size_t i = 0; i < n; i++) w[i] = tn_rng_normal(&rng) * 0.02f;
  for (size_t i = 0; i < (size_t)N * K; i++) x[i] = tn_rng_normal(&rng);
  uint16_t *b = malloc(sizeof(uint16_t) * n);
  tn_bf16_from_f32(b, w, n);
  tn_nf4 q;
  tn_nf4_alloc(&q, (int64_t)n, 64, true);
  tn_nf4_quantize(&q, w);
  tn_mat M[4] = {{.out = O, .in = K, .dtype = TN_F32, .w = w}, {.out = O, .in = K, .dtype = TN_BF16, .q = b},
                 {.out = O, .in = K, .dtype = TN_BF16, .q = b}, {.out = O, .in = K, .dtype = TN_NF4, .q = &q}};
  /* bf16: the AVX-512 kernel; bf16_portable: the plain C path (CPUs without AVX-512) */
  static const char *names[4] = {"f32", "bf16", "bf16_portable", "nf4"};
  const tn_isa isa0 = tn_isa_level();
  printf("{\"gemv\": [%d, %d, %d], \"threads\": %d", N, K, O, omp_get_max_threads());
  for (int d = 0; d < 4; d++) {
    tn_isa_set(d == 2 ? TN_ISA_PORTABLE : isa0);
    const double bytes = (double)tn_mat_bytes(&M[d]);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
      double t0 = cpu_now();
      tn_linear_forward(y, x, &M[d], NULL, N);
      double dt = (cpu_now() - t0) / omp_get_max_threads();
      if (r > 0 && dt < best) best = dt;
    }
    const double bw = read_bw(d == 0 ? w : d == 3 ? (const float *)q.mem : (const float *)b, (size_t)bytes, reps);
    printf(", \"%s_GBps\": %.2f, \"%s_read_GBps\": %.2f, \"%s_of_read\": %.2f", names[d], bytes / best / 1e9, names[d], bw,
           names[d], bytes / best / 1e9 / bw);
  }
  tn_isa_set(isa0);
  printf("}\n");
  tn_nf4_free(&q);
  free(w); free(x); free(y); free(b);
  return 0;
}

int main(int argc, char **argv) {
  const char *dir = NULL, *dt = "f32";
  int new_tokens = 64, reps = 3, gemm = 0, N = 512, K = 896, O = 4864, train = 0, B = 2, T = 256, rank = 16, steps = 3;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dt = argv[++i];
    else if (!strcmp(argv[i], "--new-tokens") && i + 1 < argc) new_tokens = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--gemm")) gemm = 1;
    else if (!strcmp(argv[i], "--gemv")) gemm = 2;
    else if (!strcmp(argv[i], "--train")) train = 1;
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seq") && i + 1 < argc) T = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--lora-rank") && i + 1 < argc) rank = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--n") && i + 1 < argc) N = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--k") && i + 1 < argc) K = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) O = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_quant --model DIR --dtype f32|bf16|nf4 [--new-tokens N] [--reps R]\n"
                      "       bench_quant --gemm [--n N] [--k K] [--out O]\n"
                      "       bench_quant --gemv [--n N] [--k K] [--out O] [--reps R]\n"
                      "       bench_quant --model DIR --dtype D --train [--batch B] [--seq T] [--lora-rank R] [--steps S]\n");
      return 2;
    }
  }
  if (gemm == 2) return run_gemv(N, K, O, reps);
  if (gemm) return run_gemm(N, K, O);
  if (!dir) { fprintf(stderr, "bench_quant: --model DIR or --gemm\n"); return 2; }
  if (train) return B > 0 && T > 1 && rank > 0 && steps > 0 ? run_train(dir, dt, B, T, rank, steps) : 2;
  if (new_tokens < 1 || reps < 1) return 2;
  return run_model(dir, dt, new_tokens, reps);
}
