/* test_kernels_grad.c - checks of the backward kernels of src/tensor.
 * Two independent checks:
 *  1. (cmocka, this program) central finite differences, computed in double on
 *     the f32 forward kernels, against every backward: attention (GQA, sliding
 *     window, soft-cap, several sequences), RMSNorm (both styles), linear + LoRA,
 *     RoPE, GLU (both activations), soft-cap, cross-entropy.
 *  2. `test_kernels_grad --dump DIR` writes random inputs and our forward and
 *     backward outputs for many configurations; tests/kernels/ref.py recomputes
 *     them with PyTorch autograd in float64 and compares (≤ 1e-4 abs). That test
 *     is registered by tests/kernels.cmake. LoRA dropout is checked there with the
 *     mask taken from tn_lora_keep.
 * Gradient buffers start from random values in the dump, so the accumulate (+=)
 * contract is checked too. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <omp.h>
#include "base/base.h"
#include "tensor/tensor.h"

static tn_rng rng;
static float *randn(size_t n, float sd) {
  float *x = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) x[i] = tn_rng_normal(&rng) * sd;
  return x;
}
static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static float *copyf(const float *x, size_t n) {
  float *y = malloc(sizeof(float) * (n ? n : 1));
  memcpy(y, x, sizeof(float) * n);
  return y;
}
static double dotd(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* ------------------------------------------------------------------------ */
/* finite differences: L(x) a double scalar; compare dL/dx[j] for every j     */
/* ------------------------------------------------------------------------ */
typedef double (*loss_fn)(void *ctx);
#define FD_H 1e-2f
/* |g - fd| <= atol + rtol |fd| for each entry; returns the worst excess */
static void fd_check(const char *what, float *x, size_t n, const float *grad, loss_fn L, void *ctx,
                     double atol, double rtol) {
  double worst = 0;
  size_t wj = 0;
  for (size_t j = 0; j < n; j++) {
    float x0 = x[j];
    x[j] = x0 + FD_H;
    double lp = L(ctx);
    x[j] = x0 - FD_H;
    double lm = L(ctx);
    x[j] = x0;
    double h = ((double)(x0 + FD_H) - (double)(x0 - FD_H)); /* the step actually taken */
    double fd = (lp - lm) / h;
    double ex = fabs(grad[j] - fd) - (atol + rtol * fabs(fd));
    if (ex > worst) worst = ex, wj = j;
  }
  if (worst > 0) {
    fprintf(stderr, "%s: gradient mismatch at %zu (excess %.3g), grad %.6g\n", what, wj, worst,
            grad[wj]);
    fail();
  }
}
#define FD_ATOL 2e-3
#define FD_RTOL 2e-2

/* ---- attention FD ---- */
typedef struct {
  tn_attn_shape s;
  float *q, *k, *v, *out, *att, *R;
  size_t nq, nkv;
} attn_ctx;
static double attn_loss(void *p) {
  attn_ctx *c = p;
  tn_attention_forward(c->out, c->att, c->q, c->k, c->v, &c->s);
  return dotd(c->out, c->R, c->nq);
}
/* long == false: two sequences, seq 0 rows at positions 0..4, seq 1 rows at
 * positions 2..5 (0,1 of seq 1 are a cached prefix: keys with no query row),
 * all on the per-row path. long == true: one run of 20 rows at positions 3..22
 * of one sequence (the blocked sgemm path) plus 2 rows of another sequence. */
static void attn_fd_case(int H, int KV, int D, int window, float softcap, bool lng) {
  static const int pos_s[] = {0, 1, 2, 2, 3, 4, 3, 4, 5};
  static const int seq_s[] = {0, 0, 0, 1, 0, 0, 1, 1, 1};
  int pos_l[22], seq_l[22];
  for (int i = 0; i < 20; i++) pos_l[i] = 3 + i, seq_l[i] = 1;
  pos_l[20] = 0, pos_l[21] = 1, seq_l[20] = seq_l[21] = 0;
  const int *pos = lng ? pos_l : pos_s, *seq = lng ? seq_l : seq_s;
  const int N = lng ? 22 : 9, Tmax = lng ? 24 : 7;
  attn_ctx c = {0};
  c.s = (tn_attn_shape){.N = N, .H = H, .KV = KV, .D = D, .Tmax = Tmax,
                        .seq_stride = (size_t)Tmax * KV * D + 3, .pos = pos, .seq = seq,
                        .window = window, .scale = 1.0f / sqrtf((float)D), .softcap = softcap};
  c.nq = (size_t)N * H * D;
  c.nkv = 2 * c.s.seq_stride;
  c.q = randn(c.nq, 1.0f);
  c.k = randn(c.nkv, 1.0f);
  c.v = randn(c.nkv, 1.0f);
  c.R = randn(c.nq, 1.0f);
  c.out = zeros(c.nq);
  c.att = zeros((size_t)N * H * Tmax);
  float *dq = zeros(c.nq), *dk = zeros(c.nkv), *dv = zeros(c.nkv);
  attn_loss(&c);
  tn_attention_backward(dq, dk, dv, c.R, c.att, c.q, c.k, c.v, &c.s);
  char what[96];
  snprintf(what, sizeof what, "attention H%d KV%d D%d w%d cap%g%s", H, KV, D, window, softcap,
           lng ? " long run" : "");
  fd_check(what, c.q, c.nq, dq, attn_loss, &c, FD_ATOL, FD_RTOL);
  fd_check(what, c.k, c.nkv, dk, attn_loss, &c, FD_ATOL, FD_RTOL);
  fd_check(what, c.v, c.nkv, dv, attn_loss, &c, FD_ATOL, FD_RTOL);
  /* the 3 padding floats between sequences get no gradient */
  for (int j = 0; j < 3; j++) assert_true(dk[(size_t)Tmax * KV * D + j] == 0.0f);
  free(c.q), free(c.k), free(c.v), free(c.R), free(c.out), free(c.att), free(dq), free(dk), free(dv);
}
static void test_attention_fd(void **st) {
  (void)st;
  attn_fd_case(4, 2, 6, 0, 0.0f, false);  /* GQA, full causal */
  attn_fd_case(4, 1, 5, 3, 0.0f, false);  /* MQA, sliding window 3 */
  attn_fd_case(2, 2, 4, 2, 1.5f, false);  /* MHA, window 2, soft-cap biting (cap 1.5) */
  attn_fd_case(4, 2, 8, 0, 2.0f, false);  /* GQA + soft-cap */
  attn_fd_case(4, 2, 4, 0, 0.0f, true);   /* blocked path, full causal */
  attn_fd_case(2, 1, 4, 6, 2.0f, true);   /* blocked path, window 6, soft-cap */
}

/* Inference mode (att NULL) gives the outputs of training mode, and the backward
 * does not depend on the thread count (bitwise), on both paths. */
static void test_attention_modes(void **st) {
  (void)st;
  enum { N = 60, H = 4, KV = 2, D = 16, Tm = 48, S = 3 }; /* big enough for threads */
  int pos[N], seq[N];
  for (int i = 0; i < 40; i++) pos[i] = i + 2, seq[i] = 0;     /* blocked path */
  for (int i = 40; i < 50; i++) pos[i] = i - 40, seq[i] = 1;   /* per-row path */
  for (int i = 50; i < N; i++) pos[i] = 30 + i, seq[i] = 2 - (i & 1) * 2; /* scattered */
  for (int cap = 0; cap < 2; cap++) {
    tn_attn_shape s = {.N = N, .H = H, .KV = KV, .D = D, .Tmax = Tm + 50,
                       .seq_stride = (size_t)(Tm + 50) * KV * D, .pos = pos, .seq = seq,
                       .window = cap ? 9 : 0, .scale = 0.3f, .softcap = cap ? 2.0f : 0.0f};
    size_t nq = (size_t)N * H * D, nkv = S * s.seq_stride, na = (size_t)N * H * s.Tmax;
    float *q = randn(nq, 1), *k = randn(nkv, 1), *v = randn(nkv, 1), *dout = randn(nq, 1);
    float *o1 = zeros(nq), *o2 = zeros(nq), *att = zeros(na);
    tn_attention_forward(o1, att, q, k, v, &s);
    tn_attention_forward(o2, NULL, q, k, v, &s);
    for (size_t j = 0; j < nq; j++) assert_true(fabsf(o1[j] - o2[j]) <= 1e-6f);
    float *g[2][3];
    for (int th = 0; th < 2; th++) {
      omp_set_num_threads(th + 1);
      for (int b = 0; b < 3; b++) g[th][b] = zeros(b ? nkv : nq);
      tn_attention_backward(g[th][0], g[th][1], g[th][2], dout, att, q, k, v, &s);
    }
    assert_memory_equal(g[0][0], g[1][0], nq * 4);
    assert_memory_equal(g[0][1], g[1][1], nkv * 4);
    assert_memory_equal(g[0][2], g[1][2], nkv * 4);
    for (int th = 0; th < 2; th++)
      for (int b = 0; b < 3; b++) free(g[th][b]);
    free(q), free(k), free(v), free(dout), free(o1), free(o2), free(att);
  }
  omp_set_num_threads(2);
}

/* ---- RMSNorm FD ---- */
typedef struct {
  int N, C;
  bool plus_one;
  float *x, *w, *y, *rstd, *R;
} norm_ctx;
static double norm_loss(void *p) {
  norm_ctx *c = p;
  tn_rmsnorm_forward(c->y, c->rstd, c->x, c->w, c->N, c->C, 1e-6f, c->plus_one);
  return dotd(c->y, c->R, (size_t)c->N * c->C);
}
static void test_rmsnorm_fd(void **st) {
  (void)st;
  for (int po = 0; po < 2; po++)
    for (int hasw = 0; hasw < 2; hasw++) {
      norm_ctx c = {.N = 5, .C = 12, .plus_one = po};
      size_t n = (size_t)c.N * c.C;
      c.x = randn(n, 1.0f);
      c.w = hasw ? randn(c.C, 0.5f) : NULL;
      c.R = randn(n, 1.0f);
      c.y = zeros(n);
      c.rstd = zeros(c.N);
      float *dx = zeros(n), *dw = zeros(c.C);
      norm_loss(&c);
      tn_rmsnorm_backward(dx, hasw ? dw : NULL, c.R, c.x, c.w, c.rstd, c.N, c.C, c.plus_one);
      fd_check("rmsnorm dx", c.x, n, dx, norm_loss, &c, FD_ATOL, FD_RTOL);
      if (hasw) fd_check("rmsnorm dw", c.w, c.C, dw, norm_loss, &c, FD_ATOL, FD_RTOL);
      free(c.x), free(c.w), free(c.R), free(c.y), free(c.rstd), free(dx), free(dw);
    }
}

/* ---- linear + LoRA FD ---- */
typedef struct {
  int N;
  tn_mat W;
  float *x, *b, *y, *R;
} lin_ctx;
static double lin_loss(void *p) {
  lin_ctx *c = p;
  tn_linear_forward(c->y, c->x, &c->W, c->b, c->N);
  return dotd(c->y, c->R, (size_t)c->N * c->W.out);
}
static void test_linear_lora_fd(void **st) {
  (void)st;
  const int N = 6, in = 10, out = 7, r = 3;
  tn_lora lo = {.r = r, .scale = 0.7f, .enabled = true};
  lo.A = randn((size_t)r * in, 0.5f);
  lo.B = randn((size_t)out * r, 0.5f);
  lo.dA = zeros((size_t)r * in);
  lo.dB = zeros((size_t)out * r);
  lin_ctx c = {.N = N, .W = {.out = out, .in = in, .dtype = TN_F32, .lora = &lo}};
  c.W.w = randn((size_t)out * in, 0.5f);
  c.x = randn((size_t)N * in, 1.0f);
  c.b = randn(out, 1.0f);
  c.R = randn((size_t)N * out, 1.0f);
  c.y = zeros((size_t)N * out);
  float *dx = zeros((size_t)N * in), *dW = zeros((size_t)out * in), *db = zeros(out);
  tn_linear_backward(dx, dW, db, c.R, c.x, &c.W, N);
  fd_check("linear dx", c.x, (size_t)N * in, dx, lin_loss, &c, FD_ATOL, FD_RTOL);
  fd_check("linear dW", c.W.w, (size_t)out * in, dW, lin_loss, &c, FD_ATOL, FD_RTOL);
  fd_check("linear db", c.b, out, db, lin_loss, &c, FD_ATOL, FD_RTOL);
  fd_check("lora dA", lo.A, (size_t)r * in, lo.dA, lin_loss, &c, FD_ATOL, FD_RTOL);
  fd_check("lora dB", lo.B, (size_t)out * r, lo.dB, lin_loss, &c, FD_ATOL, FD_RTOL);
  free(lo.A), free(lo.B), free(lo.dA), free(lo.dB), free(c.W.w), free(c.x), free(c.b), free(c.R);
  free(c.y), free(dx), free(dW), free(db);
}

/* ---- RoPE, GLU, soft-cap, cross-entropy FD ---- */
typedef struct {
  int N, nh, D;
  const int *pos;
  float *cs, *sn, *x, *y, *R;
} rope_ctx;
static double rope_loss(void *p) {
  rope_ctx *c = p;
  size_t n = (size_t)c->N * c->nh * c->D;
  memcpy(c->y, c->x, sizeof(float) * n);
  tn_rope_forward(c->y, c->pos, c->cs, c->sn, c->N, c->nh, c->D);
  return dotd(c->y, c->R, n);
}
typedef struct {
  size_t n;
  tn_act act;
  float *g, *u, *h, *R;
} glu_ctx;
static double glu_loss(void *p) {
  glu_ctx *c = p;
  tn_glu_forward(c->h, c->g, c->u, c->n, c->act);
  return dotd(c->h, c->R, c->n);
}
typedef struct {
  size_t n;
  float cap, *x, *y, *R;
} cap_ctx;
static double cap_loss(void *p) {
  cap_ctx *c = p;
  memcpy(c->y, c->x, sizeof(float) * c->n);
  tn_softcap_forward(c->y, c->n, c->cap);
  return dotd(c->y, c->R, c->n);
}
typedef struct {
  int N, V;
  const int *tg;
  const float *w;
  float *x, *loss;
} xent_ctx;
static double xent_loss(void *p) {
  xent_ctx *c = p;
  tn_xent_forward(c->loss, c->x, c->tg, c->N, c->V);
  double s = 0;
  for (int i = 0; i < c->N; i++) s += (double)c->loss[i] * c->w[i];
  return s;
}
static void test_elementwise_fd(void **st) {
  (void)st;
  { /* RoPE */
    static const int pos[] = {0, 3, 17, 5};
    rope_ctx c = {.N = 4, .nh = 2, .D = 8, .pos = pos};
    float inv[4];
    for (int i = 0; i < 4; i++) inv[i] = 1.0f / powf(10000.0f, (float)(2 * i) / 8);
    c.cs = zeros(20 * 4), c.sn = zeros(20 * 4);
    tn_rope_tables(c.cs, c.sn, inv, 20, 8);
    size_t n = 4 * 2 * 8;
    c.x = randn(n, 1.0f), c.y = zeros(n), c.R = randn(n, 1.0f);
    float *dx = copyf(c.R, n);
    tn_rope_backward(dx, pos, c.cs, c.sn, 4, 2, 8);
    fd_check("rope", c.x, n, dx, rope_loss, &c, FD_ATOL, FD_RTOL);
    free(c.cs), free(c.sn), free(c.x), free(c.y), free(c.R), free(dx);
  }
  for (int a = 0; a < 2; a++) { /* GLU */
    glu_ctx c = {.n = 64, .act = a ? TN_ACT_GELU_TANH : TN_ACT_SILU};
    c.g = randn(c.n, 2.5f), c.u = randn(c.n, 1.0f), c.h = zeros(c.n), c.R = randn(c.n, 1.0f);
    float *dg = zeros(c.n), *du = zeros(c.n);
    tn_glu_backward(dg, du, c.R, c.g, c.u, c.n, c.act);
    fd_check("glu dgate", c.g, c.n, dg, glu_loss, &c, FD_ATOL, FD_RTOL);
    fd_check("glu dup", c.u, c.n, du, glu_loss, &c, FD_ATOL, FD_RTOL);
    free(c.g), free(c.u), free(c.h), free(c.R), free(dg), free(du);
  }
  { /* soft-cap */
    cap_ctx c = {.n = 40, .cap = 3.0f};
    c.x = randn(c.n, 4.0f), c.y = zeros(c.n), c.R = randn(c.n, 1.0f);
    cap_loss(&c);
    float *dx = copyf(c.R, c.n);
    tn_softcap_backward(dx, c.y, c.n, c.cap);
    fd_check("softcap", c.x, c.n, dx, cap_loss, &c, FD_ATOL, FD_RTOL);
    free(c.x), free(c.y), free(c.R), free(dx);
  }
  { /* cross-entropy with an ignored row and weights */
    static const int tg[] = {3, -1, 0, 10};
    static const float w[] = {0.5f, 1.0f, 2.0f, 0.25f};
    xent_ctx c = {.N = 4, .V = 11, .tg = tg, .w = w};
    size_t n = 44;
    c.x = randn(n, 3.0f), c.loss = zeros(4);
    float *d = zeros(n);
    tn_xent_backward(d, c.x, tg, w, 4, 11);
    fd_check("xent", c.x, n, d, xent_loss, &c, FD_ATOL, FD_RTOL);
    for (int j = 0; j < 11; j++) assert_true(d[11 + j] == 0.0f);
    /* in place (dlogits aliasing logits) gives the same numbers */
    float *y = copyf(c.x, n);
    tn_xent_backward(y, y, tg, w, 4, 11);
    for (size_t j = 0; j < n; j++) assert_true(y[j] == d[j]);
    /* the fused call gives the same loss and gradient as the two calls */
    float lf[4], *df2 = zeros(n);
    tn_xent_forward(c.loss, c.x, tg, 4, 11);
    tn_xent_forward_backward(lf, df2, c.x, tg, w, 4, 11);
    assert_memory_equal(lf, c.loss, sizeof lf);
    assert_memory_equal(df2, d, n * sizeof(float));
    free(df2);
    free(c.x), free(c.loss), free(d), free(y);
  }
  { /* cross-entropy over several 2048-wide blocks (the gradient rescales each block's exps by
     * exp(block max - row max)): against a double softmax, the row max in a late block, in the
     * first block, and a weight-0 row that still has a loss */
    enum { N = 4, V = 5000 };
    static const int tg[N] = {7, 4999, 2100, 3};
    static const float w[N] = {0.5f, 1.0f, 2.0f, 0.0f};
    float *x = randn((size_t)N * V, 3.0f), *d = zeros((size_t)N * V), loss[N], lf[N];
    x[0 * V + 4500] = 25.0f; /* max in the last block */
    x[1 * V + 10] = 22.0f;   /* max in the first block */
    x[2 * V + 2100] = 18.0f; /* the target is the max */
    tn_xent_forward_backward(loss, d, x, tg, w, N, V);
    tn_xent_forward(lf, x, tg, N, V);
    for (int i = 0; i < N; i++) {
      const float *xi = x + (size_t)i * V;
      double m = -INFINITY, s = 0;
      for (int j = 0; j < V; j++) m = xi[j] > m ? xi[j] : m;
      for (int j = 0; j < V; j++) s += exp((double)xi[j] - m);
      const double lref = m + log(s) - xi[tg[i]];
      /* the block sums are float (as torch's): terms below 2^-24 of the row max's 1 are lost in its
       * lane, up to ~1e-5 of the sum here; a wrong block scale is off by exp(block max - max) */
      if (!(fabs(loss[i] - lref) <= 1e-4 * fabs(lref) + 3e-5)) fail_msg("xent loss row %d: %g vs %g", i, loss[i], lref);
      assert_true(lf[i] == loss[i]);
      for (int j = 0; j < V; j++) {
        const double ref = w[i] * (exp((double)xi[j] - m) / s - (j == tg[i]));
        const double got = d[(size_t)i * V + j];
        if (!(fabs(got - ref) <= 1e-4 * fabs(ref) + 3e-5 * w[i] * (j == tg[i]) + 1e-12)) fail_msg("xent row %d col %d: %g vs %g", i, j, got, ref);
      }
    }
    float *y = copyf(x, (size_t)N * V); /* in place */
    tn_xent_forward_backward(lf, y, y, tg, w, N, V);
    assert_memory_equal(y, d, sizeof(float) * N * V);
    assert_memory_equal(lf, loss, sizeof loss);
    free(x), free(d), free(y);
  }
}

/* ------------------------------------------------------------------------ */
/* dump mode for tests/kernels/ref.py                                       */
/* ------------------------------------------------------------------------ */
/* File format, one file per case, a sequence of records:
 *   u8 kind ('f' f32 array, 'i' i32 array, 'd' f64 scalar, 's' bytes), u32 name length, name,
 *   u32 ndim, u32 dims[ndim], little-endian data. */
static FILE *df;
static void rec(char kind, const char *name, const void *data, size_t esz, int ndim, const int *dims) {
  uint32_t nl = (uint32_t)strlen(name), nd = (uint32_t)ndim;
  size_t n = 1;
  fputc(kind, df);
  fwrite(&nl, 4, 1, df);
  fwrite(name, 1, nl, df);
  fwrite(&nd, 4, 1, df);
  for (int i = 0; i < ndim; i++) {
    uint32_t d = (uint32_t)dims[i];
    fwrite(&d, 4, 1, df);
    n *= dims[i];
  }
  fwrite(data, esz, n, df);
}
static void put_f(const char *name, const float *x, int ndim, ...) {
  int dims[8];
  va_list ap;
  va_start(ap, ndim);
  for (int i = 0; i < ndim; i++) dims[i] = va_arg(ap, int);
  va_end(ap);
  rec('f', name, x, 4, ndim, dims);
}
static void put_i(const char *name, const int *x, int n) { rec('i', name, x, 4, 1, &n); }
static void put_d(const char *name, double v) { rec('d', name, &v, 8, 0, NULL); }
static int open_case(const char *dir, const char *name, const char *kernel) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.bin", dir, name);
  df = fopen(path, "wb");
  if (!df) return -1;
  rec('s', "kernel", kernel, 1, 1, (int[]){(int)strlen(kernel)});
  return 0;
}
static void close_case(void) { fclose(df); }

static void dump_linear_drop(const char *dir, const char *name, int N, int in, int out, int r,
                             bool bias, bool with_dW, bool lora_on, float dropout) {
  tn_lora lo = {.r = r, .scale = 2.0f / (r > 0 ? r : 1), .enabled = lora_on, .dropout = dropout,
                .train = dropout > 0, .seed = 77, .counter = 5};
  tn_mat W = {.out = out, .in = in, .dtype = TN_F32, .w = randn((size_t)out * in, 0.3f)};
  if (r > 0) {
    lo.A = randn((size_t)r * in, 0.3f), lo.B = randn((size_t)out * r, 0.3f);
    lo.dA = randn((size_t)r * in, 1.0f), lo.dB = randn((size_t)out * r, 1.0f);
    W.lora = &lo;
  }
  float *x = randn((size_t)N * in, 1.0f), *b = bias ? randn(out, 1.0f) : NULL;
  float *y = zeros((size_t)N * out), *dy = randn((size_t)N * out, 1.0f);
  float *dx = randn((size_t)N * in, 1.0f), *dW = randn((size_t)out * in, 1.0f), *db = randn(out, 1.0f);
  open_case(dir, name, "linear");
  put_f("x", x, 2, N, in), put_f("W", W.w, 2, out, in), put_f("dy", dy, 2, N, out);
  if (b) put_f("b", b, 1, out);
  if (r > 0) put_f("A", lo.A, 2, r, in), put_f("B", lo.B, 2, out, r), put_d("scale", lo.scale);
  put_d("lora_on", lora_on), put_d("with_dW", with_dW);
  if (dropout > 0) { /* the adapter's input mask, from the documented hash */
    float *mask = zeros((size_t)N * in);
    for (size_t j = 0; j < (size_t)N * in; j++) mask[j] = tn_lora_keep(77, 5, j, dropout) ? 1.0f : 0.0f;
    put_f("mask", mask, 2, N, in), put_d("dropout", dropout);
    free(mask);
  }
  put_f("dx0", dx, 2, N, in), put_f("dW0", dW, 2, out, in), put_f("db0", db, 1, out);
  if (r > 0) put_f("dA0", lo.dA, 2, r, in), put_f("dB0", lo.dB, 2, out, r);
  tn_linear_forward(y, x, &W, b, N);
  tn_linear_backward(dx, with_dW ? dW : NULL, b ? db : NULL, dy, x, &W, N);
  put_f("y", y, 2, N, out), put_f("dx", dx, 2, N, in), put_f("dW", dW, 2, out, in);
  put_f("db", db, 1, out);
  if (r > 0) put_f("dA", lo.dA, 2, r, in), put_f("dB", lo.dB, 2, out, r);
  close_case();
  free(W.w), free(lo.A), free(lo.B), free(lo.dA), free(lo.dB), free(x), free(b), free(y), free(dy);
  free(dx), free(dW), free(db);
}

static void dump_linear(const char *dir, const char *name, int N, int in, int out, int r, bool bias,
                        bool with_dW, bool lora_on) {
  dump_linear_drop(dir, name, N, in, out, r, bias, with_dW, lora_on, 0.0f);
}

static void dump_rmsnorm(const char *dir, const char *name, int N, int C, bool plus_one, bool hasw) {
  size_t n = (size_t)N * C;
  float *x = randn(n, 2.0f), *w = hasw ? randn(C, 0.5f) : NULL, *y = zeros(n), *rstd = zeros(N);
  float *dy = randn(n, 1.0f), *dx = randn(n, 1.0f), *dw = randn(C, 1.0f);
  open_case(dir, name, "rmsnorm");
  put_f("x", x, 2, N, C), put_f("dy", dy, 2, N, C), put_f("dx0", dx, 2, N, C);
  if (w) put_f("w", w, 1, C), put_f("dw0", dw, 1, C);
  put_d("eps", 1e-6f), put_d("plus_one", plus_one);
  tn_rmsnorm_forward(y, rstd, x, w, N, C, 1e-6f, plus_one);
  tn_rmsnorm_backward(dx, w ? dw : NULL, dy, x, w, rstd, N, C, plus_one);
  put_f("y", y, 2, N, C), put_f("rstd", rstd, 1, N), put_f("dx", dx, 2, N, C);
  if (w) put_f("dw", dw, 1, C);
  close_case();
  free(x), free(w), free(y), free(rstd), free(dy), free(dx), free(dw);
}

static void dump_rope(const char *dir, const char *name) {
  const int N = 6, nh = 3, D = 16, maxT = 4100, h = D / 2;
  static const int pos[] = {0, 1, 7, 100, 2047, 4095};
  float inv[8];
  for (int i = 0; i < h; i++) inv[i] = 1.0f / powf(500000.0f, (float)(2 * i) / D);
  float *cs = zeros((size_t)maxT * h), *sn = zeros((size_t)maxT * h);
  tn_rope_tables(cs, sn, inv, maxT, D);
  size_t n = (size_t)N * nh * D;
  float *x = randn(n, 1.0f), *y = copyf(x, n), *dy = randn(n, 1.0f), *dx = copyf(dy, n);
  tn_rope_forward(y, pos, cs, sn, N, nh, D);
  tn_rope_backward(dx, pos, cs, sn, N, nh, D);
  open_case(dir, name, "rope");
  put_f("x", x, 3, N, nh, D), put_i("pos", pos, N), put_f("inv_freq", inv, 1, h);
  put_d("base", 500000.0), put_f("dy", dy, 3, N, nh, D);
  put_f("y", y, 3, N, nh, D), put_f("dx", dx, 3, N, nh, D);
  close_case();
  free(cs), free(sn), free(x), free(y), free(dy), free(dx);
}

static void dump_glu(const char *dir, const char *name, tn_act act) {
  const int n = 300;
  float *g = randn(n, 3.0f), *u = randn(n, 1.0f), *h = zeros(n), *dh = randn(n, 1.0f);
  float *dg = randn(n, 1.0f), *du = randn(n, 1.0f);
  g[0] = 0.0f, g[1] = 20.0f, g[2] = -20.0f, g[3] = 95.0f, g[4] = -95.0f; /* tails */
  open_case(dir, name, "glu");
  put_f("g", g, 1, n), put_f("u", u, 1, n), put_f("dh", dh, 1, n), put_f("dg0", dg, 1, n);
  put_f("du0", du, 1, n), put_d("gelu", act == TN_ACT_GELU_TANH);
  tn_glu_forward(h, g, u, n, act);
  tn_glu_backward(dg, du, dh, g, u, n, act);
  put_f("h", h, 1, n), put_f("dg", dg, 1, n), put_f("du", du, 1, n);
  close_case();
  free(g), free(u), free(h), free(dh), free(dg), free(du);
}

static void dump_softcap(const char *dir, const char *name) {
  const int n = 200;
  const float cap = 30.0f;
  float *x = randn(n, 40.0f), *y = copyf(x, n), *dy = randn(n, 1.0f), *dx = copyf(dy, n);
  tn_softcap_forward(y, n, cap);
  tn_softcap_backward(dx, y, n, cap);
  open_case(dir, name, "softcap");
  put_f("x", x, 1, n), put_d("cap", cap), put_f("dy", dy, 1, n), put_f("y", y, 1, n);
  put_f("dx", dx, 1, n);
  close_case();
  free(x), free(y), free(dy), free(dx);
}

static void dump_xent(const char *dir, const char *name, int N, int V, bool weights) {
  size_t n = (size_t)N * V;
  float *x = randn(n, 4.0f), *loss = zeros(N), *d = randn(n, 1.0f), *w = weights ? randn(N, 1.0f) : NULL;
  int *tg = malloc(sizeof(int) * N);
  for (int i = 0; i < N; i++) tg[i] = (int)(tn_rng_u64(&rng) % V);
  tg[1] = -100, tg[N - 1] = -1;           /* ignored rows */
  x[(size_t)2 * V + tg[2]] += 60.0f;      /* a confident row: p_t near 1 */
  for (int j = 0; j < V; j++) x[(size_t)3 * V + j] += 1000.0f; /* large offset: stability */
  tn_xent_forward(loss, x, tg, N, V);
  tn_xent_backward(d, x, tg, w, N, V);
  open_case(dir, name, "xent");
  put_f("logits", x, 2, N, V), put_i("targets", tg, N);
  if (w) put_f("w", w, 1, N);
  put_f("loss", loss, 1, N), put_f("dlogits", d, 2, N, V);
  close_case();
  free(x), free(loss), free(d), free(w), free(tg);
}

/* rows of several sequences; seq/pos given; k/v hold Tmax positions per sequence */
static void dump_attention(const char *dir, const char *name, int H, int KV, int D, int window,
                           float softcap, int N, const int *pos, const int *seq, int S, int Tmax,
                           int pad) {
  tn_attn_shape s = {.N = N, .H = H, .KV = KV, .D = D, .Tmax = Tmax,
                     .seq_stride = (size_t)Tmax * KV * D + pad, .pos = pos, .seq = seq,
                     .window = window, .scale = 1.0f / sqrtf((float)D), .softcap = softcap};
  size_t nq = (size_t)N * H * D, nkv = (size_t)S * s.seq_stride, na = (size_t)N * H * Tmax;
  float *q = randn(nq, 1.5f), *k = randn(nkv, 1.5f), *v = randn(nkv, 1.0f), *out = zeros(nq);
  float *att = zeros(na), *dout = randn(nq, 1.0f);
  float *dq = randn(nq, 1.0f), *dk = randn(nkv, 1.0f), *dv = randn(nkv, 1.0f);
  open_case(dir, name, "attention");
  put_f("q", q, 3, N, H, D), put_f("k", k, 1, (int)nkv), put_f("v", v, 1, (int)nkv);
  put_i("pos", pos, N), put_i("seq", seq, N);
  put_d("H", H), put_d("KV", KV), put_d("D", D), put_d("Tmax", Tmax), put_d("S", S);
  put_d("seq_stride", (double)s.seq_stride), put_d("window", window), put_d("scale", s.scale);
  put_d("softcap", softcap);
  put_f("dout", dout, 3, N, H, D), put_f("dq0", dq, 3, N, H, D), put_f("dk0", dk, 1, (int)nkv);
  put_f("dv0", dv, 1, (int)nkv);
  tn_attention_forward(out, att, q, k, v, &s);
  tn_attention_backward(dq, dk, dv, dout, att, q, k, v, &s);
  put_f("out", out, 3, N, H, D), put_f("att", att, 3, N, H, Tmax);
  put_f("dq", dq, 3, N, H, D), put_f("dk", dk, 1, (int)nkv), put_f("dv", dv, 1, (int)nkv);
  close_case();
  free(q), free(k), free(v), free(out), free(att), free(dout), free(dq), free(dk), free(dv);
}

static int dump_all(const char *dir) {
  if (tn_mkdirs(dir) != TN_OK) return 1;
  dump_linear(dir, "linear_bias", 7, 13, 9, 0, true, true, false);
  dump_linear(dir, "linear_nobias", 5, 33, 20, 0, false, true, false);
  dump_linear(dir, "linear_lora_frozen", 7, 13, 9, 4, false, false, true);
  dump_linear(dir, "linear_lora_full_bias", 6, 17, 11, 2, true, true, true);
  dump_linear(dir, "linear_lora_disabled", 6, 17, 11, 3, true, true, false);
  dump_linear(dir, "linear_single_row_lora", 1, 40, 24, 8, true, false, true);
  dump_linear_drop(dir, "linear_lora_dropout", 9, 40, 12, 4, true, false, true, 0.3f);
  dump_linear_drop(dir, "linear_lora_dropout_full", 8, 24, 12, 2, false, true, true, 0.5f);
  dump_rmsnorm(dir, "rmsnorm_plain", 9, 48, false, true);
  dump_rmsnorm(dir, "rmsnorm_plus_one", 9, 48, true, true);
  dump_rmsnorm(dir, "rmsnorm_noweight", 4, 130, false, false);
  dump_rmsnorm(dir, "rmsnorm_wide", 3, 1000, true, true);
  dump_rope(dir, "rope");
  dump_glu(dir, "glu_silu", TN_ACT_SILU);
  dump_glu(dir, "glu_gelu_tanh", TN_ACT_GELU_TANH);
  dump_softcap(dir, "softcap");
  dump_xent(dir, "xent_weighted", 7, 300, true);
  dump_xent(dir, "xent_unweighted", 5, 1000, false);
  {
    /* three packed sequences of lengths 5, 9, 3, full causal, GQA 4/2, D 12 */
    int pos[17], seq[17], n = 0;
    const int len[3] = {5, 9, 3};
    for (int j = 0; j < 3; j++)
      for (int t = 0; t < len[j]; t++) pos[n] = t, seq[n] = j, n++;
    dump_attention(dir, "attn_gqa_packed", 4, 2, 12, 0, 0.0f, n, pos, seq, 3, 10, 0);
    dump_attention(dir, "attn_mqa_window", 4, 1, 12, 3, 0.0f, n, pos, seq, 3, 10, 5);
    dump_attention(dir, "attn_gqa_window_softcap", 4, 2, 12, 4, 2.0f, n, pos, seq, 3, 9, 0);
    dump_attention(dir, "attn_mha_softcap", 2, 2, 7, 0, 1.0f, n, pos, seq, 3, 12, 1);
  }
  {
    /* rows in a scattered order, sequences with cached prefixes (first row at
     * pos > 0), a sequence index with no rows (seq 1), head_dim 16 with H 4 */
    static const int pos[] = {3, 0, 4, 7, 1, 5, 8, 2, 6, 9, 0, 10};
    static const int seq[] = {0, 2, 0, 3, 2, 0, 3, 2, 0, 3, 3, 3};
    dump_attention(dir, "attn_scattered_prefix", 4, 2, 16, 0, 0.0f, 12, pos, seq, 4, 11, 3);
    dump_attention(dir, "attn_scattered_window_cap", 4, 1, 16, 2, 3.0f, 12, pos, seq, 4, 11, 3);
  }
  {
    /* one longer sequence: several key tiles in the dk/dv pass, window < T */
    static int pos[70], seq[70];
    for (int t = 0; t < 70; t++) pos[t] = t, seq[t] = 0;
    dump_attention(dir, "attn_long_window", 4, 2, 8, 20, 0.0f, 70, pos, seq, 1, 70, 0);
    dump_attention(dir, "attn_long_full_cap", 4, 2, 8, 0, 5.0f, 70, pos, seq, 1, 72, 0);
  }
  {
    /* the blocked path (runs >= 16 rows) mixed with the per-row path: seq 0 a run
     * of 40 from 0; seq 1 a run of 20 from position 5 (cached prefix); seq 2 a run
     * of 18 then, after rows of other sequences, 3 more rows (per-row path);
     * seq 3 one decoding row at position 30 */
    static int pos[82], seq[82];
    int n = 0;
    for (int t = 0; t < 40; t++) pos[n] = t, seq[n] = 0, n++;
    for (int t = 0; t < 18; t++) pos[n] = t, seq[n] = 2, n++;
    for (int t = 5; t < 25; t++) pos[n] = t, seq[n] = 1, n++;
    pos[n] = 30, seq[n] = 3, n++;
    for (int t = 18; t < 21; t++) pos[n] = t, seq[n] = 2, n++;
    dump_attention(dir, "attn_runs_mixed", 4, 2, 8, 0, 0.0f, n, pos, seq, 4, 45, 2);
    dump_attention(dir, "attn_runs_mixed_window_cap", 4, 2, 8, 7, 2.0f, n, pos, seq, 4, 45, 2);
    dump_attention(dir, "attn_runs_mixed_mqa_window", 6, 1, 8, 25, 0.0f, n, pos, seq, 4, 45, 0);
  }
  {
    /* one run of 150 rows: three sgemm chunks, window 40 reaching back across a chunk */
    static int pos[150], seq[150];
    for (int t = 0; t < 150; t++) pos[t] = t, seq[t] = 0;
    dump_attention(dir, "attn_run150_window40_cap", 2, 1, 8, 40, 4.0f, 150, pos, seq, 1, 150, 0);
  }
  tn_tensor_scratch_release();
  return 0;
}

int main(int argc, char **argv) {
  tn_rng_seed(&rng, 1234);
  if (argc == 3 && strcmp(argv[1], "--dump") == 0) return dump_all(argv[2]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_attention_fd),
      cmocka_unit_test(test_attention_modes),
      cmocka_unit_test(test_rmsnorm_fd),
      cmocka_unit_test(test_linear_lora_fd),
      cmocka_unit_test(test_elementwise_fd),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  tn_tensor_scratch_release();
  return rc;
}
