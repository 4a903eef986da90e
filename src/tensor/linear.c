/* linear.c - y = x W^T (+ bias) (+ LoRA), the matmul every projection uses,
 * and its backward. f32 weights go to OpenBLAS (OpenMP build, shared thread pool);
 * bf16 and nf4 weights (frozen) are dispatched to quant.c (issue 7). */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

const char *tn_dtype_name(tn_dtype t) {
  switch (t) {
  case TN_F32: return "f32";
  case TN_BF16: return "bf16";
  case TN_F16: return "f16";
  case TN_NF4: return "nf4";
  }
  return "?";
}
size_t tn_dtype_size(tn_dtype t) { return t == TN_F32 ? 4 : t == TN_NF4 ? 0 : 2; }

#define TN_SMALL_N_LORA 8 /* rows: fewer (decoding) stay in f32 */

/* ---- LoRA dropout (lora.c): the adapter sees mask * x / (1 - p), the mask
 * regenerated from (seed, counter, element index) instead of stored ---- */
static bool lora_drop_on(const tn_lora *l) { return l->train && l->dropout > 0.0f; }

/* acc false: dst = mask * src / (1-p); acc true: dst += mask * src / (1-p). (N, in) */
static void lora_dropout(float *dst, const float *src, const tn_lora *l, int N, int in, bool acc) {
  const float k = 1.0f / (1.0f - l->dropout), p = l->dropout;
  const uint64_t seed = l->seed, ctr = l->counter;
#pragma omp parallel for schedule(static) if ((size_t)N * in > 32768)
  for (int i = 0; i < N; i++) {
    const size_t base = (size_t)i * in;
    for (int j = 0; j < in; j++) {
      const float v = tn_lora_keep(seed, ctr, base + j, p) ? src[base + j] * k : 0.0f;
      if (acc) dst[base + j] += v;
      else dst[base + j] = v;
    }
  }
}

static size_t lora_round(size_t n) { return (n + 15) & ~(size_t)15; }

/* LoRA's products: C = alpha op(A) op(B) + beta C (beta 0 or 1), on AMX in the bf16
 * matmul mode (as PEFT's adapters run under torch's bf16 autocast), else sgemm */
static void lmm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc) {
  if (M > TN_SMALL_N_LORA && tn_matmul_bf16() && tn_gemm_bf16_ex(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
    return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}

static void lora_forward(float *y, const float *x, const tn_mat *W, int N) {
  const tn_lora *l = W->lora;
  const bool drop = lora_drop_on(l);
  const size_t nt = lora_round((size_t)N * l->r), nx = drop ? (size_t)N * W->in : 0;
  float *t = tn__scratch(TN_SCR_LORA, sizeof(float) * (nt + nx)); // t (N, r), xd (N, in)
  if (!t) abort();  /* a few KB: out of memory here is not recoverable */
  if (drop) {
    float *xd = t + nt;
    lora_dropout(xd, x, l, N, W->in, false);
    x = xd;
  }
  lmm(false, true, N, l->r, W->in, 1.0f, x, W->in, l->A, W->in,
              0.0f, t, l->r);
  lmm(false, true, N, W->out, l->r, l->scale, t, l->r, l->B, l->r,
              1.0f, y, W->out);
}

/* y (N, out) = x W^T for a few rows (decoding): each weight row is read once and
 * dotted with the N inputs while it is in cache. Threads only when the matrix is
 * big enough to pay for them: OpenBLAS threads even tiny GEMVs, and waking a
 * thread per projection costs more than the product on small models. */
#define TN_SMALL_N 8
typedef float tn_v16 __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) tn_v16 v16_load(const float *p) {
  tn_v16 v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Rows [o0, o1) for exactly NN inputs: per (row, input) two 16-lane accumulators over
 * 32-float steps, then a scalar tail, so the summation order of y[n][o] is the same
 * whatever NN is (batched decoding gives the same numbers as one sequence alone) and
 * independent accumulators hide the FMA latency. */
static inline __attribute__((always_inline)) void rows_nn(float *y, const float *x, const float *w, int in, int out,
                                                          int o0, int o1, const int NN) {
  const int k32 = in & ~31;
  for (int o = o0; o < o1; o++) {
    const float *wr = w + (size_t)o * in;
    tn_v16 a0[TN_SMALL_N], a1[TN_SMALL_N];
    for (int n = 0; n < NN; n++) a0[n] = a1[n] = (tn_v16){0};
    for (int k = 0; k < k32; k += 32) {
      const tn_v16 w0 = v16_load(wr + k), w1 = v16_load(wr + k + 16);
      for (int n = 0; n < NN; n++) {
        const float *xn = x + (size_t)n * in + k;
        a0[n] += w0 * v16_load(xn);
        a1[n] += w1 * v16_load(xn + 16);
      }
    }
    for (int n = 0; n < NN; n++) {
      const tn_v16 a = a0[n] + a1[n];
      float s = 0.0f;
      for (int i = 0; i < 16; i++) s += a[i];
      const float *xn = x + (size_t)n * in;
      for (int k = k32; k < in; k++) s += wr[k] * xn[k];
      y[(size_t)n * out + o] = s;
    }
  }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void small_gemm_rows(float *y, const float *x, const float *w, int N, int in, int out, int o0, int o1) {
  switch (N) { /* a constant NN per case keeps the accumulators in registers */
  case 1: rows_nn(y, x, w, in, out, o0, o1, 1); break;
  case 2: rows_nn(y, x, w, in, out, o0, o1, 2); break;
  case 3: rows_nn(y, x, w, in, out, o0, o1, 3); break;
  case 4: rows_nn(y, x, w, in, out, o0, o1, 4); break;
  case 5: rows_nn(y, x, w, in, out, o0, o1, 5); break;
  case 6: rows_nn(y, x, w, in, out, o0, o1, 6); break;
  case 7: rows_nn(y, x, w, in, out, o0, o1, 7); break;
  default: rows_nn(y, x, w, in, out, o0, o1, 8); break;
  }
}

static void small_gemm(float *y, const float *x, const tn_mat *W, int N) {
  const int in = W->in, out = W->out;
  if ((size_t)in * out < (1u << 16)) {
    small_gemm_rows(y, x, W->w, N, in, out, 0, out);
    return;
  }
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int chunk = (out + nt - 1) / nt, o0 = id * chunk, o1 = o0 + chunk < out ? o0 + chunk : out;
    if (o0 < o1) small_gemm_rows(y, x, W->w, N, in, out, o0, o1);
  }
}

void tn_linear_forward(float *y, const float *x, const tn_mat *W, const float *bias, int N) {
  // y (N, out), x (N, in), W (out, in)
  if (W->dtype != TN_F32) /* bf16 / nf4 frozen weights (quant.c) */
    tn_qlinear_forward(y, x, W, N);
  else if (N <= TN_SMALL_N)
    small_gemm(y, x, W, N);
  else if (tn_matmul_bf16() && tn_gemm_bf16(false, true, N, W->out, W->in, x, W->in, W->w, W->in, 0.0f, y, W->out))
    ; /* bf16 matmul mode (mm_bf16.c) */
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, W->out, W->in, 1.0f, x, W->in, W->w, W->in,
                0.0f, y, W->out);
  if (bias) {
#pragma omp parallel for if (N > 4)
    for (int i = 0; i < N; i++) {
      float *yi = y + (size_t)i * W->out;
      for (int o = 0; o < W->out; o++) yi[o] += bias[o];
    }
  }
  if (W->lora && W->lora->enabled) lora_forward(y, x, W, N);
}

/* LoRA backward. With xd = dropout(x) (= x without dropout), t = xd A^T (N, r)
 * and u = dy B (N, r), y += s * t B^T gives
 * dB += s * dy^T t,  dA += s * u^T xd,  dx += mask/(1-p) * (s * u A). */
static void lora_backward(float *dx, const float *dy, const float *x, const tn_mat *W, int N) {
  const tn_lora *l = W->lora;
  const int r = l->r, in = W->in, out = W->out;
  if (!dx && !l->dA && !l->dB) return;
  const bool drop = lora_drop_on(l);
  const size_t nt = lora_round((size_t)N * r), nx = drop ? (size_t)N * in : 0;
  float *t = tn__scratch(TN_SCR_LORA, sizeof(float) * (2 * nt + nx)); // t, u (N, r); xd (N, in)
  if (!t) abort();
  float *u = t + nt, *xd = u + nt;
  if (drop && (l->dA || l->dB)) {
    lora_dropout(xd, x, l, N, in, false);
    x = xd;
  }
  if (l->dB) {
    lmm(false, true, N, r, in, 1.0f, x, in, l->A, in, 0.0f, t, r);
    lmm(true, false, out, r, N, l->scale, dy, out, t, r, 1.0f,
                l->dB, r);
  }
  lmm(false, false, N, r, out, 1.0f, dy, out, l->B, r, 0.0f, u, r);
  if (l->dA)
    lmm(true, false, r, in, N, l->scale, u, r, x, in, 1.0f, l->dA,
                in);
  if (dx && !drop)
    lmm(false, false, N, in, r, l->scale, u, r, l->A, in, 1.0f, dx,
                in);
  if (dx && drop) { /* g = s u A into xd (done with it), then dx += mask/(1-p) * g */
    lmm(false, false, N, in, r, l->scale, u, r, l->A, in, 0.0f, xd,
                in);
    lora_dropout(dx, xd, l, N, in, true);
  }
}

void tn_linear_backward(float *dx, float *dW, float *dbias, const float *dy, const float *x,
                        const tn_mat *W, int N) {
  // dx, x (N, in); dy (N, out); W, dW (out, in); dbias (out)
  const int in = W->in, out = W->out;
  if (dx && W->dtype != TN_F32) /* dx += dy W for bf16 / nf4 weights (quant.c) */
    tn_qlinear_backward_dx(dx, dy, W, N);
  else if (dx && !(N > TN_SMALL_N && tn_matmul_bf16() &&
                   tn_gemm_bf16(false, false, N, in, out, dy, out, W->w, in, 1.0f, dx, in))) /* dx += dy W */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, W->w, in, 1.0f,
                dx, in);
  if (dW && W->dtype == TN_F32 && /* dW += dy^T x (bf16 / nf4 weights are frozen: no dW) */
      !(N > TN_SMALL_N && tn_matmul_bf16() && tn_gemm_bf16(true, false, out, in, N, dy, out, x, in, 1.0f, dW, in)))
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
  if (dbias) {
    /* column sums, split over columns so each thread owns its slice (no races,
     * same summation order whatever the thread count) */
#pragma omp parallel for schedule(static) if ((size_t)N * out > 32768)
    for (int o0 = 0; o0 < out; o0 += 256) {
      const int o1 = o0 + 256 < out ? o0 + 256 : out;
      for (int i = 0; i < N; i++) {
        const float *dyi = dy + (size_t)i * out;
#pragma omp simd
        for (int o = o0; o < o1; o++) dbias[o] += dyi[o];
      }
    }
  }
  if (W->lora && W->lora->enabled) lora_backward(dx, dy, x, W, N);
}
