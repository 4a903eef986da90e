/* bench_infer.c - inference speed of tunic's decoder on one checkpoint directory:
 * prefill tokens/s (B prompts of P tokens in one tn_forward call) and greedy
 * KV-cache decode tokens/s (one tn_forward row per sequence per step), at each
 * batch size asked for; median of a few repetitions after one warm-up. In the
 * same run it measures the machine figures the results are judged against:
 * read bandwidth over 1 GiB (DRAM) and over a buffer the size of the weights
 * (where a small model actually streams from), and the cblas_sgemm peak on
 * 2048^3. Peak RSS (getrusage) is taken before those machine measurements.
 * Prompts are a fixed formula of (sequence, position) that bench/torch_infer.py
 * repeats, so both engines run the same computation; the first greedy tokens
 * of every sequence are written out so the driver can check they agree.
 * Not for: correctness testing (tests/), tokenizer or training speed.
 *
 *   bench_infer --model DIR [--prompt-len 128] [--new-tokens 32] [--batches 1,8]
 *               [--reps 3] [--label NAME] [--json FILE] [--dump FILE] [--base-dtype f32|bf16|nf4]
 * --dump appends, per batch size, the prefill logits (B, V) and the last decode
 * step's logits (B, V) as raw little-endian f32 (for the agreement check). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "model/model.h"

#define MAX_B 8
#define MAX_BATCHES 4
#define MAX_REPS 15
#define N_CHECK 16 /* greedy tokens per sequence written out for the agreement check */

/* The shared prompt formula (bench/torch_infer.py has the same). */
static int prompt_tok(int b, int t, int V) {
  return 3 + (int)(((int64_t)b * 1000003 + (int64_t)t * 7919 + 12345) % (V - 3));
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  double t[MAX_REPS];
  memcpy(t, v, sizeof(double) * n);
  qsort(t, n, sizeof(double), cmp_d);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static long rss_now_kb(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}
static long rss_peak_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* Read-only streaming sum, the access pattern of decode's weight reads: 2 threads,
 * 8 independent AVX-512 accumulators so the adds never limit the loads. */
#include <immintrin.h>
__attribute__((target("avx512f"))) static float sum_buf_avx512(const float *x, size_t n) {
  float s = 0.0f;
#pragma omp parallel reduction(+ : s)
  {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    size_t blk = n / 128 / nt * 128, a = id * blk, b = id == nt - 1 ? n : a + blk;
    __m512 acc[8];
    for (int j = 0; j < 8; j++) acc[j] = _mm512_setzero_ps();
    size_t i = a;
    for (; i + 128 <= b; i += 128)
      for (int j = 0; j < 8; j++) acc[j] = _mm512_add_ps(acc[j], _mm512_loadu_ps(x + i + 16 * j));
    for (int j = 1; j < 8; j++) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    s += _mm512_reduce_add_ps(acc[0]);
    for (; i < b; i++) s += x[i];
  }
  return s;
}
static float sum_buf(const float *x, size_t n) {
  if (__builtin_cpu_supports("avx512f")) return sum_buf_avx512(x, n);
  float s = 0.0f;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
  for (size_t i = 0; i < n; i++) s += x[i];
  return s;
}

/* Read bandwidth (GB/s, median) over `bytes`, read `passes` times per rep. */
static double read_bw(size_t bytes, int reps, volatile float *sink) {
  size_t n = bytes / sizeof(float);
  float *x = tn_alloc(n * sizeof(float));
  if (!x) return 0;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) x[i] = (float)(i & 7); /* first touch */
  int passes = bytes >= (512u << 20) ? 1 : (int)((1u << 30) / bytes) + 1;
  double t[MAX_REPS];
  *sink += sum_buf(x, n);
  for (int r = 0; r < reps; r++) {
    double t0 = tn_now();
    for (int p = 0; p < passes; p++) *sink += sum_buf(x, n);
    t[r] = (tn_now() - t0) / passes;
  }
  tn_free(x);
  return bytes / median(t, reps) / 1e9;
}

static double sgemm_peak(int n, int reps) {
  float *a = tn_alloc(sizeof(float) * (size_t)n * n * 3), *b = a + (size_t)n * n, *c = b + (size_t)n * n;
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)((i % 13) - 6) * 0.01f;
  double t[MAX_REPS];
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  for (int r = 0; r < reps; r++) {
    double t0 = tn_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    t[r] = tn_now() - t0;
  }
  tn_free(a);
  return 2.0 * n * n * (double)n / median(t, reps) / 1e9;
}

/* first index of the largest logit. Two passes (a vectorised max, then the first index
 * holding it): `if (x[v] > x[best]) best = v` chains every compare through a load
 * addressed by the previous one's result, ~75 us per 32000 logits = 5% of a decode step. */
static int argmax(const float *x, int V) {
  float mx = x[0];
#pragma omp simd reduction(max : mx)
  for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
  int best = 0;
  while (best < V - 1 && !(x[best] == mx)) best++;
  return best;
}

typedef struct {
  int B;
  double prefill_s, decode_s;          /* medians */
  double prefill_best_s, decode_best_s;/* fastest rep (this VM is shared: see the README) */
  double prefill_tok_s, decode_tok_s, ms_per_step;
  double prefill_gflops, decode_gbs;   /* achieved */
  int tokens[MAX_B][N_CHECK];
} batch_res;

static void dump_rows(const char *path, const float *x, size_t n) {
  FILE *f = fopen(path, "ab");
  if (!f || fwrite(x, sizeof(float), n, f) != n) { perror(path); exit(1); }
  fclose(f);
}

static void die(const char *what) {
  fprintf(stderr, "bench_infer: %s: %s\n", what, tn_last_error());
  exit(1);
}

int main(int argc, char **argv) {
  const char *model_dir = NULL, *label = "", *json = NULL, *dump = NULL, *base_dtype = "f32";
  int P = 128, NEW = 32, reps = 3, batches[MAX_BATCHES] = {1, 8}, nb = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "bench_infer: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--model")) model_dir = v;
    else if (!strcmp(a, "--prompt-len")) P = atoi(v);
    else if (!strcmp(a, "--new-tokens")) NEW = atoi(v);
    else if (!strcmp(a, "--reps")) reps = atoi(v);
    else if (!strcmp(a, "--label")) label = v;
    else if (!strcmp(a, "--json")) json = v;
    else if (!strcmp(a, "--dump")) dump = v;
    else if (!strcmp(a, "--base-dtype")) base_dtype = v;
    else if (!strcmp(a, "--batches")) {
      nb = 0;
      for (const char *p = v; *p && nb < MAX_BATCHES; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
        batches[nb++] = atoi(p);
    } else { fprintf(stderr, "bench_infer: unknown flag %s\n", a); return 2; }
    i++;
  }
  if (!model_dir || P < 1 || NEW < N_CHECK || reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "usage: bench_infer --model DIR [--prompt-len P] [--new-tokens N>=%d] [--batches 1,8] "
                    "[--reps R<=%d] [--label NAME] [--json FILE]\n", N_CHECK, MAX_REPS);
    return 2;
  }
  for (int k = 0; k < nb; k++)
    if (batches[k] < 1 || batches[k] > MAX_B) { fprintf(stderr, "bench_infer: batch must be 1..%d\n", MAX_B); return 2; }

  double t0 = tn_now();
  tn_model *m;
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  if (tn_parse_base_dtype(base_dtype, &lo.base_dtype) != TN_OK) die("--base-dtype");
  if (tn_model_load_opts(&m, model_dir, &lo) != TN_OK) die("load");
  double load_s = tn_now() - t0;
  long rss_loaded = rss_now_kb();
  const tn_config *c = &m->cfg;
  const int V = c->V, C = c->C, L = c->L, HD = c->H * c->D, KD = c->KV * c->D, F = c->F;
  /* matmul parameters per token through the layers, and the head */
  const double n_layer_mm = (double)L * ((double)C * HD * 2 + 2.0 * C * KD + 3.0 * C * F);
  const double n_head = (double)V * C;
  /* bytes of weights read per decode step: every layer matrix, the head, norms, biases */
  double small = (double)L * (2 * C + (c->qkv_bias ? HD + 2 * KD : 0)) + C;
  double wbytes = 4.0 * (n_layer_mm + n_head + small);
  if (m->base_dtype != TN_F32) { /* bf16 / nf4 projections (--base-dtype): the bytes as stored */
    size_t nbytes, nparams;
    tn_model_weight_bytes(m, &nbytes, &nparams);
    wbytes = (double)nbytes;
  }
  printf("# model %s: %s V=%d C=%d L=%d H=%d KV=%d D=%d F=%d params=%.1fM, f32 weights %.1f MB, load %.2f s\n",
         model_dir, c->model_type, V, C, L, c->H, c->KV, c->D, F, m->n_floats / 1e6, m->n_floats * 4 / 1e6, load_s);
  printf("# threads=%d openblas=%s\n", omp_get_max_threads(), openblas_get_config());

  batch_res res[MAX_BATCHES];
  memset(res, 0, sizeof res);
  for (int k = 0; k < nb; k++) {
    const int B = batches[k], Tcap = P + NEW + 1;
    batch_res *r = &res[k];
    r->B = B;
    tn_state *st;
    if (tn_state_create(&st, m, B, Tcap, B * P, false) != TN_OK) die("state");
    int *tok = malloc(sizeof(int) * B * P), *pos = malloc(sizeof(int) * B * P), *seq = malloc(sizeof(int) * B * P);
    int orow[MAX_B], cur[MAX_B];
    float *logits = malloc(sizeof(float) * (size_t)B * V);
    double tp[MAX_REPS], td[MAX_REPS];
    for (int rep = -1; rep < reps; rep++) { /* rep -1: warm-up (first touch of every buffer) */
      for (int b = 0; b < B; b++) {
        for (int t = 0; t < P; t++) {
          tok[b * P + t] = prompt_tok(b, t, V);
          pos[b * P + t] = t;
          seq[b * P + t] = b;
        }
        orow[b] = b * P + P - 1;
        st->len[b] = 0;
      }
      double a = tn_now();
      if (tn_forward(m, st, B * P, tok, pos, seq, logits, orow, B) != TN_OK) die("prefill");
      if (rep == -1 && dump) dump_rows(dump, logits, (size_t)B * V);
      for (int b = 0; b < B; b++) cur[b] = argmax(logits + (size_t)b * V, V);
      double bt = tn_now();
      for (int step = 0; step < NEW; step++) {
        for (int b = 0; b < B; b++) {
          if (rep <= 0 && step < N_CHECK) r->tokens[b][step] = cur[b];
          tok[b] = cur[b];
          pos[b] = P + step;
          seq[b] = b;
        }
        if (tn_forward(m, st, B, tok, pos, seq, logits, NULL, B) != TN_OK) die("decode");
        for (int b = 0; b < B; b++) cur[b] = argmax(logits + (size_t)b * V, V);
      }
      double ct = tn_now();
      if (rep == -1 && dump) dump_rows(dump, logits, (size_t)B * V);
      if (rep >= 0) {
        tp[rep] = bt - a;
        td[rep] = ct - bt;
      }
    }
    r->prefill_s = median(tp, reps);
    r->decode_s = median(td, reps);
    r->prefill_best_s = tp[0];
    r->decode_best_s = td[0];
    for (int i = 1; i < reps; i++) {
      r->prefill_best_s = tp[i] < r->prefill_best_s ? tp[i] : r->prefill_best_s;
      r->decode_best_s = td[i] < r->decode_best_s ? td[i] : r->decode_best_s;
    }
    r->prefill_tok_s = B * P / r->prefill_s;
    r->decode_tok_s = B * NEW / r->decode_s;
    r->ms_per_step = r->decode_s / NEW * 1e3;
    /* prefill FLOPs: layer matmuls for every token, the head for the B output rows,
     * attention QK^T and PV over the causal triangle (sum_{t=1..P} t keys per head) */
    double att = 4.0 * L * HD * (double)P * (P + 1) / 2;
    double flops = 2.0 * n_layer_mm * B * P + 2.0 * n_head * B + att * B;
    r->prefill_gflops = flops / r->prefill_s / 1e9;
    /* decode bytes per step: the weights once, plus each sequence's K and V cache (mean context) */
    double kvbytes = 4.0 * 2 * L * (double)KD * (P + NEW / 2.0) * B;
    r->decode_gbs = (wbytes + kvbytes) / (r->ms_per_step / 1e3) / 1e9;
    printf("B=%d prefill %d tok: %.1f ms -> %.0f tok/s, %.1f GFLOP/s | decode %d steps: %.2f ms/step -> %.1f tok/s, "
           "%.2f GB/s of weights+KV\n", B, B * P, r->prefill_s * 1e3, r->prefill_tok_s, r->prefill_gflops, NEW,
           r->ms_per_step, r->decode_tok_s, r->decode_gbs);
    printf("B=%d greedy tokens of sequence 0:", B);
    for (int j = 0; j < N_CHECK; j++) printf(" %d", r->tokens[0][j]);
    printf("\n");
    free(tok); free(pos); free(seq); free(logits);
    tn_state_free(st);
    fflush(stdout);
  }
  long rss_peak = rss_peak_kb();

  /* machine figures, after the peak RSS was read (their buffers would dominate it) */
  volatile float sink = 0;
  double bw_dram = read_bw((size_t)1 << 30, 5, &sink);
  double bw_ws = read_bw((size_t)wbytes, 5, &sink);
  double peak = sgemm_peak(2048, 5);
  printf("# machine: read bandwidth %.2f GB/s (1 GiB), %.2f GB/s (%.0f MB = weight size); sgemm 2048^3 %.1f GFLOP/s\n",
         bw_dram, bw_ws, wbytes / 1e6, peak);
  printf("# peak RSS %.1f MB (after load %.1f MB)\n", rss_peak / 1024.0, rss_loaded / 1024.0);

  if (json) {
    FILE *f = fopen(json, "a");
    if (!f) { perror(json); return 1; }
    fprintf(f, "{\"engine\":\"tunic\",\"label\":\"%s\",\"model\":\"%s\",\"P\":%d,\"new\":%d,\"reps\":%d,"
               "\"threads\":%d,\"weight_bytes\":%.0f,\"bw_dram_gbs\":%.3f,\"bw_ws_gbs\":%.3f,"
               "\"sgemm_gflops\":%.2f,\"rss_peak_mb\":%.1f,\"rss_loaded_mb\":%.1f,\"load_s\":%.3f,\"batches\":[",
            label, model_dir, P, NEW, reps, omp_get_max_threads(), wbytes, bw_dram, bw_ws, peak,
            rss_peak / 1024.0, rss_loaded / 1024.0, load_s);
    for (int k = 0; k < nb; k++) {
      batch_res *r = &res[k];
      fprintf(f, "%s{\"B\":%d,\"prefill_s\":%.6f,\"prefill_tok_s\":%.2f,\"prefill_gflops\":%.3f,\"decode_s\":%.6f,"
                 "\"decode_tok_s\":%.3f,\"ms_per_step\":%.4f,\"decode_gbs\":%.3f,\"prefill_best_s\":%.6f,"
                 "\"decode_best_s\":%.6f,\"tokens\":[",
              k ? "," : "", r->B, r->prefill_s, r->prefill_tok_s, r->prefill_gflops, r->decode_s, r->decode_tok_s,
              r->ms_per_step, r->decode_gbs, r->prefill_best_s, r->decode_best_s);
      for (int b = 0; b < r->B; b++) {
        fprintf(f, "%s[", b ? "," : "");
        for (int j = 0; j < N_CHECK; j++) fprintf(f, "%s%d", j ? "," : "", r->tokens[b][j]);
        fprintf(f, "]");
      }
      fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
    fclose(f);
  }
  tn_model_free(m);
  return sink == 12345.0f ? 3 : 0; /* keep the sums observable */
}
