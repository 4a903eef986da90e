/* linear.c - y = x W^T (+ bias) (+ LoRA), the matmul every projection uses,
 * and its backward. f32 weights go to OpenBLAS (OpenMP build, shared thread pool);
 * bf16 and nf4 weights (frozen) are dispatched to quant.c (issue 7). */
#include <cblas.h>
#include <immintrin.h>
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

void tn_linear_lora(float *y, const float *x, const tn_mat *W, int N) { lora_forward(y, x, W, N); }

/* y (N, out) = x W^T for a few rows (decoding). Register-blocked micro-kernel: OB
 * weight rows x NN input rows (NN <= 8), one 16-lane accumulator per (output, row)
 * over the 16-float steps of `in` (a zero-padded last step for a ragged tail), then
 * the same fixed halving tree per accumulator. The summation order of y[n][o] is
 * therefore the same whatever N, OB or the thread split (batched decoding gives the
 * same numbers as one sequence alone), and the OB x NN independent accumulators
 * hide the FMA latency while each loaded weight vector feeds NN FMAs. Threads only
 * when the matrix is big enough to pay for them. */
#define TN_SMALL_N 8
#define TN_DECODE_N 32 /* f32 rows up to here use it too: faster than sgemm (which packs W) */
typedef float tn_v16 __attribute__((vector_size(64)));
typedef float tn_v8 __attribute__((vector_size(32)));
typedef float tn_v4 __attribute__((vector_size(16)));

static inline __attribute__((always_inline)) tn_v16 v16_load(const float *p) {
  tn_v16 v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* fixed halving tree: 16 -> 8 -> 4 -> 2 -> 1 */
static inline __attribute__((always_inline)) float v16_sum(tn_v16 a) {
  tn_v8 lo, hi;
  memcpy(&lo, &a, 32);
  memcpy(&hi, (const char *)&a + 32, 32);
  const tn_v8 s8 = lo + hi;
  tn_v4 l4, h4;
  memcpy(&l4, &s8, 16);
  memcpy(&h4, (const char *)&s8 + 16, 16);
  const tn_v4 s4 = l4 + h4;
  const float s2a = s4[0] + s4[2], s2b = s4[1] + s4[3];
  return s2a + s2b;
}

/* outputs [o, o+OB) x rows [0, NN): y[n*ldy + o+j] */
static inline __attribute__((always_inline)) void block_nn(float *y, size_t ldy, const float *x, const float *w,
                                                           int in, int o, const int OB, const int NN) {
  const int k16 = in & ~15;
  tn_v16 acc[4][TN_SMALL_N];
#pragma GCC unroll 4
  for (int j = 0; j < OB; j++)
#pragma GCC unroll 8
    for (int n = 0; n < NN; n++) acc[j][n] = (tn_v16){0};
  const float *wr = w + (size_t)o * in;
  for (int k = 0; k < k16; k += 16) {
    tn_v16 wv[4];
#pragma GCC unroll 4
    for (int j = 0; j < OB; j++) wv[j] = v16_load(wr + (size_t)j * in + k);
#pragma GCC unroll 8
    for (int n = 0; n < NN; n++) {
      const tn_v16 xv = v16_load(x + (size_t)n * in + k);
#pragma GCC unroll 4
      for (int j = 0; j < OB; j++) acc[j][n] += wv[j] * xv;
    }
  }
  if (k16 < in) { /* ragged tail: one more step on zero-padded copies */
    const int r = in - k16;
    tn_v16 wv[4];
#pragma GCC unroll 4
    for (int j = 0; j < OB; j++) {
      wv[j] = (tn_v16){0};
      memcpy(&wv[j], wr + (size_t)j * in + k16, sizeof(float) * r);
    }
#pragma GCC unroll 8
    for (int n = 0; n < NN; n++) {
      tn_v16 xv = (tn_v16){0};
      memcpy(&xv, x + (size_t)n * in + k16, sizeof(float) * r);
#pragma GCC unroll 4
      for (int j = 0; j < OB; j++) acc[j][n] += wv[j] * xv;
    }
  }
#pragma GCC unroll 8
  for (int n = 0; n < NN; n++)
#pragma GCC unroll 4
    for (int j = 0; j < OB; j++) y[(size_t)n * ldy + o + j] = v16_sum(acc[j][n]);
}

/* rows [o0, o1) for NN inputs: blocks of OB outputs, then single outputs */
static inline __attribute__((always_inline)) void rows_nn(float *y, const float *x, const float *w, int in, int out,
                                                          int o0, int o1, const int OB, const int NN) {
  int o = o0;
  for (; o + OB <= o1; o += OB) block_nn(y, out, x, w, in, o, OB, NN);
  for (; o < o1; o++) block_nn(y, out, x, w, in, o, 1, NN);
}

/* The AVX-512 build of the same blocks, with each x vector loaded once per step and
 * kept in a register (the compiler would otherwise fold a reload of it into every
 * FMA and run out of load slots). Same summation order as block_nn. */
__attribute__((target("avx512f"))) static inline float z_sum(__m512 a) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4)); /* [0]+[2], [1]+[3] */
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

#define Z_BLOCK(OB, NN)                                                                          \
  __attribute__((target("avx512f"))) static void z_rows_##OB##_##NN(                  \
      float *y, size_t ldy, const float *x, const float *w, int in, int o0, int o1) {            \
    const int k16 = in & ~15;                                                                   \
    const __mmask16 tm = (__mmask16)((1u << (in - k16)) - 1);                                  \
    for (int o = o0; o < o1; o += OB) {                                                         \
      const float *wr = w + (size_t)o * in;                                                     \
      __m512 acc[OB][NN];                                                                       \
      _Pragma("GCC unroll 4") for (int j = 0; j < OB; j++)                                      \
        _Pragma("GCC unroll 8") for (int n = 0; n < NN; n++) acc[j][n] = _mm512_setzero_ps();   \
      for (int k = 0; k < k16; k += 16) { /* unmasked loads: a masked one costs an ALU slot */  \
        __m512 wv[OB];                                                                          \
        _Pragma("GCC unroll 4") for (int j = 0; j < OB; j++) {                                  \
          wv[j] = _mm512_loadu_ps(wr + (size_t)j * in + k);                                     \
          _mm_prefetch((const char *)(wr + (size_t)(j + 2 * OB) * in + k), _MM_HINT_T0);        \
        }                                                                                       \
        _Pragma("GCC unroll 8") for (int n = 0; n < NN; n++) {                                  \
          __m512 xv = _mm512_loadu_ps(x + (size_t)n * in + k);                                  \
          __asm__("" : "+v"(xv));                                                               \
          _Pragma("GCC unroll 4") for (int j = 0; j < OB; j++)                                  \
            acc[j][n] = _mm512_fmadd_ps(wv[j], xv, acc[j][n]);                                  \
        }                                                                                       \
      }                                                                                         \
      if (tm) { /* ragged tail: the same step on zero-filled lanes */                          \
        __m512 wv[OB];                                                                          \
        _Pragma("GCC unroll 4") for (int j = 0; j < OB; j++)                                    \
          wv[j] = _mm512_maskz_loadu_ps(tm, wr + (size_t)j * in + k16);                         \
        _Pragma("GCC unroll 8") for (int n = 0; n < NN; n++) {                                  \
          const __m512 xv = _mm512_maskz_loadu_ps(tm, x + (size_t)n * in + k16);                \
          _Pragma("GCC unroll 4") for (int j = 0; j < OB; j++)                                  \
            acc[j][n] = _mm512_fmadd_ps(wv[j], xv, acc[j][n]);                                  \
        }                                                                                       \
      }                                                                                         \
      _Pragma("GCC unroll 8") for (int n = 0; n < NN; n++)                                      \
        _Pragma("GCC unroll 4") for (int j = 0; j < OB; j++) y[(size_t)n * ldy + o + j] = z_sum(acc[j][n]); \
    }                                                                                           \
  }
Z_BLOCK(1, 1) Z_BLOCK(1, 2) Z_BLOCK(1, 3) Z_BLOCK(1, 4) Z_BLOCK(1, 5) Z_BLOCK(1, 6) Z_BLOCK(1, 7) Z_BLOCK(1, 8)
Z_BLOCK(4, 1) Z_BLOCK(4, 2) Z_BLOCK(4, 3) Z_BLOCK(4, 4) Z_BLOCK(3, 5) Z_BLOCK(3, 6) Z_BLOCK(3, 7) Z_BLOCK(3, 8)
#undef Z_BLOCK
typedef void (*z_rows_fn)(float *, size_t, const float *, const float *, int, int, int);
static const z_rows_fn z_big[8] = {z_rows_4_1, z_rows_4_2, z_rows_4_3, z_rows_4_4,
                                   z_rows_3_5, z_rows_3_6, z_rows_3_7, z_rows_3_8};
static const z_rows_fn z_one[8] = {z_rows_1_1, z_rows_1_2, z_rows_1_3, z_rows_1_4,
                                   z_rows_1_5, z_rows_1_6, z_rows_1_7, z_rows_1_8};
static const int z_ob[8] = {4, 4, 4, 4, 3, 3, 3, 3};

TN_MV_INLINE void small_gemm_rows_generic_body(float *y, const float *x, const float *w, int N, int in, int out, int o0, int o1) {
  for (int n0 = 0; n0 < N; n0 += TN_SMALL_N) {
    const int nn = N - n0 < TN_SMALL_N ? N - n0 : TN_SMALL_N;
    float *yb = y + (size_t)n0 * out;
    const float *xb = x + (size_t)n0 * in;
    switch (nn) { /* constant block sizes keep the accumulators in registers */
    case 1: rows_nn(yb, xb, w, in, out, o0, o1, 4, 1); break;
    case 2: rows_nn(yb, xb, w, in, out, o0, o1, 4, 2); break;
    case 3: rows_nn(yb, xb, w, in, out, o0, o1, 4, 3); break;
    case 4: rows_nn(yb, xb, w, in, out, o0, o1, 4, 4); break;
    case 5: rows_nn(yb, xb, w, in, out, o0, o1, 3, 5); break;
    case 6: rows_nn(yb, xb, w, in, out, o0, o1, 3, 6); break;
    case 7: rows_nn(yb, xb, w, in, out, o0, o1, 3, 7); break;
    default: rows_nn(yb, xb, w, in, out, o0, o1, 3, 8); break;
    }
  }
}
TN_MV_VOID(small_gemm_rows_generic, (float *y, const float *x, const float *w, int N, int in, int out, int o0, int o1), (y, x, w, N, in, out, o0, o1))

static void small_gemm_rows(float *y, const float *x, const float *w, int N, int in, int out, int o0, int o1) {
  if (tn_isa_level() < TN_ISA_AVX512) { /* a load and a test: no cached flag to race on */
    small_gemm_rows_generic(y, x, w, N, in, out, o0, o1);
    return;
  }
  /* more than 8 rows: blocks of 8 rows over slices of outputs small enough to stay
   * in L1, so the weights stream once for all the rows */
  const int oc = N <= TN_SMALL_N ? o1 - o0 : in < 512 ? 24 : 12;
  for (int c0 = o0; c0 < o1; c0 += oc) {
    const int c1 = c0 + oc < o1 ? c0 + oc : o1;
    for (int n0 = 0; n0 < N; n0 += TN_SMALL_N) {
      const int nn = N - n0 < TN_SMALL_N ? N - n0 : TN_SMALL_N, ob = z_ob[nn - 1];
      float *yb = y + (size_t)n0 * out;
      const float *xb = x + (size_t)n0 * in;
      const int ob1 = c0 + (c1 - c0) / ob * ob;
      if (ob1 > c0) z_big[nn - 1](yb, out, xb, w, in, c0, ob1);
      if (ob1 < c1) z_one[nn - 1](yb, out, xb, w, in, ob1, c1);
    }
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
  else if (N <= TN_DECODE_N) /* also in the bf16 mode: packing W to bf16 per call costs more than the
                                product of so few rows (GRPO's batched decode steps) */
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

/* ---- fused decoding (decoder.c runs one parallel region per forward) ---- */
bool tn_linear_part_ok(const tn_mat *W, int N) {
  if (W->lora && W->lora->enabled) return false;
  return W->dtype == TN_F32 ? N <= TN_DECODE_N : tn_qlinear_part_ok(W, N); /* bf16 / nf4: the GEMV of quant.c */
}

void tn_part_range(int out, int part, int nparts, int *o0, int *o1) {
  tn_split_range(out, 12, part, nparts, o0, o1); /* whole 3- and 4-row register blocks */
}

void tn_linear_part(float *y, const float *x, const tn_mat *W, const float *bias, int N, int part, int nparts) {
  // y (N, out), x (N, in), W (out, in): outputs [o0, o1) of this part
  int o0, o1;
  tn_part_range(W->out, part, nparts, &o0, &o1);
  tn_linear_rows(y, x, W, bias, N, o0, o1);
}

/* ---- prefill GEMM (tn_linear_cols): many rows, outputs [o0, o1) on the calling thread ----
 * Packed, register-blocked: a panel of 48 outputs of W^T is packed k-major (48 floats per
 * k, by 16x16 in-register transposes), then 8 rows of x at a time run over it, each x
 * element broadcast against the panel's three 16-lane vectors (8 x 3 accumulators). Each
 * y[m][o] is one FMA chain over k in increasing order, so its value does not depend on M,
 * on the row's place in a block or on the column split between threads. */
#define GK_NR 48  /* outputs per packed panel */
#define GK_MR 8   /* rows per micro-tile */
#define GK_MB 256 /* rows per pass over a panel (x block stays in L2) */

/* 16x16 transpose in registers: r[i] = row i in, column i out */
__attribute__((target("avx512f"), always_inline)) static inline void gk_tr16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  /* r[4i + c], 128-bit lane L: rows 4i .. 4i+3 at column 4L + c */
  for (int i = 0; i < 2; i++)
    for (int c = 0; c < 4; c++) {
      const __m512 a = r[8 * i + c], b = r[8 * i + 4 + c];
      t[8 * i + c] = _mm512_shuffle_f32x4(a, b, 0x88);     /* columns c, 8 + c */
      t[8 * i + 4 + c] = _mm512_shuffle_f32x4(a, b, 0xDD); /* columns 4 + c, 12 + c */
    }
  for (int c = 0; c < 4; c++)
    for (int h = 0; h < 2; h++) {
      const __m512 a = t[c + 4 * h], b = t[8 + c + 4 * h];
      r[c + 4 * h] = _mm512_shuffle_f32x4(a, b, 0x88);
      r[8 + c + 4 * h] = _mm512_shuffle_f32x4(a, b, 0xDD);
    }
}

/* P (K, 48) = outputs n0 .. n0+nc of W (out, K) transposed, zero beyond nc */
__attribute__((target("avx512f"))) static void gk_pack(float *P, const float *W, int K, int n0, int nc) {
  for (int g = 0; g < 3; g++) {
    const int nr = nc - 16 * g;
    for (int k0 = 0; k0 < K; k0 += 16) {
      const int kc = K - k0 < 16 ? K - k0 : 16;
      const __mmask16 km = (__mmask16)((1u << kc) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; i++) {
        const float *src = W + (size_t)(n0 + 16 * g + i) * K + k0;
        r[i] = i >= nr ? _mm512_setzero_ps() : kc == 16 ? _mm512_loadu_ps(src) : _mm512_maskz_loadu_ps(km, src);
      }
      gk_tr16(r);
      for (int t = 0; t < kc; t++) _mm512_storeu_ps(P + (size_t)(k0 + t) * GK_NR + 16 * g, r[t]);
    }
  }
}

/* y[r][0 .. 48) (masks mk) = alpha (x[r] . P) (+ bias) for r < MR; P (K, ldp >= 48) */
#define GK_MICRO(MR)                                                                                              \
  __attribute__((target("avx512f"))) static void gk_micro_##MR(float *y, size_t ldy, const float *x, size_t ldx,  \
                                                               const float *P, size_t ldp, int K,                  \
                                                               const __mmask16 *mk, const float *bias, float alpha, \
                                                               const char *pf, int pfm) {                          \
    __m512 acc[MR][3];                                                                                            \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = acc[r][2] = _mm512_setzero_ps();  \
    for (int k = 0; k < K; k++) {                                                                                 \
      const float *pk = P + (size_t)k * ldp;                                                                      \
      if (!(k & pfm)) { /* a line of the next panel's weights every pfm + 1 steps */                              \
        _mm_prefetch(pf, _MM_HINT_T1);                                                                            \
        pf += 64;                                                                                                 \
      }                                                                                                           \
      const __m512 b0 = _mm512_loadu_ps(pk), b1 = _mm512_loadu_ps(pk + 16), b2 = _mm512_loadu_ps(pk + 32);       \
      _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                                                      \
        const __m512 a = _mm512_set1_ps(x[(size_t)r * ldx + k]);                                                  \
        acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);                                                            \
        acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);                                                            \
        acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);                                                            \
      }                                                                                                           \
    }                                                                                                             \
    __m512 bv[3] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};                               \
    if (bias)                                                                                                     \
      for (int v = 0; v < 3; v++) bv[v] = _mm512_maskz_loadu_ps(mk[v], bias + 16 * v);                            \
    if (alpha != 1.0f)                                                                                            \
      _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                                        \
        for (int v = 0; v < 3; v++) acc[r][v] = _mm512_mul_ps(acc[r][v], _mm512_set1_ps(alpha));                 \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                                                        \
      float *yr = y + (size_t)r * ldy;                                                                            \
      _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++)                                                         \
        _mm512_mask_storeu_ps(yr + 16 * v, mk[v], bias ? _mm512_add_ps(acc[r][v], bv[v]) : acc[r][v]);           \
    }                                                                                                             \
  }
GK_MICRO(1) GK_MICRO(2) GK_MICRO(3) GK_MICRO(4) GK_MICRO(5) GK_MICRO(6) GK_MICRO(7) GK_MICRO(8)
#undef GK_MICRO
typedef void (*gk_fn)(float *, size_t, const float *, size_t, const float *, size_t, int, const __mmask16 *,
                      const float *, float, const char *, int);
static const gk_fn gk_tab[GK_MR + 1] = {NULL,       gk_micro_1, gk_micro_2, gk_micro_3, gk_micro_4,
                                        gk_micro_5, gk_micro_6, gk_micro_7, gk_micro_8};

__attribute__((target("avx512f"))) static void gk_cols(float *y, const float *x, const float *W, const float *bias,
                                                       int M, int K, int out, int o0, int o1, float *P,
                                                       const float *nxt, size_t nxt_bytes) {
  for (int mb = 0; mb < M; mb += GK_MB) {
    const int me = mb + GK_MB < M ? mb + GK_MB : M;
    for (int n0 = o0; n0 < o1; n0 += GK_NR) {
      const int nc = o1 - n0 < GK_NR ? o1 - n0 : GK_NR;
      __mmask16 mk[3];
      for (int v = 0; v < 3; v++) {
        const int r = nc - 16 * v;
        mk[v] = r >= 16 ? (__mmask16)0xFFFF : r <= 0 ? (__mmask16)0 : (__mmask16)((1u << r) - 1);
      }
      gk_pack(P, W, K, n0, nc);
      const float *bn = bias ? bias + n0 : NULL;
      /* the next panel's weight rows (one contiguous block) into L2 while this one computes,
       * spread over the micro-tiles' k loops (the weights of a small model's prefill come
       * from L3: the pack would wait for them) */
      const int nn = o1 - n0 - nc < GK_NR ? o1 - n0 - nc : GK_NR;
      const char *pf = (const char *)(W + (size_t)(n0 + nc) * K);
      long pf_lines = nn > 0 ? ((long)nn * K * (long)sizeof(float) + 63) / 64 : 0;
      if (nn <= 0 && nxt && me == M) { /* last panel: the next matrix's first panel instead */
        pf = (const char *)nxt;
        pf_lines = (long)(nxt_bytes + 63) / 64;
      }
      const long tiles = (me - mb + GK_MR - 1) / GK_MR, per = (pf_lines + tiles - 1) / tiles;
      int pfm = 7; /* a prefetch every pfm + 1 k steps, enough for `per` lines per tile */
      while (pfm > 0 && (long)(K + pfm) / (pfm + 1) < per) pfm >>= 1;
      if (!pf_lines) pf = (const char *)P, pfm = 7; /* nothing to fetch: touch the panel itself */
      int m = mb;
      for (; m + GK_MR <= me; m += GK_MR, pf += pf_lines ? 64 * per : 0)
        gk_micro_8(y + (size_t)m * out + n0, out, x + (size_t)m * K, K, P, GK_NR, K, mk, bn, 1.0f, pf, pfm);
      if (m < me)
        gk_tab[me - m](y + (size_t)m * out + n0, out, x + (size_t)m * K, K, P, GK_NR, K, mk, bn, 1.0f, pf, pfm);
    }
  }
}

/* kern.h: the micro-kernel on a caller's panel, and a transpose (prefill attention) */
__attribute__((target("avx512f"))) void tn__gemm_panel(float *y, size_t ldy, const float *x, size_t ldx, int M, int K,
                                                       const float *P, size_t ldp, int nc, float alpha) {
  __mmask16 mk[3];
  for (int v = 0; v < 3; v++) {
    const int r = nc - 16 * v;
    mk[v] = r >= 16 ? (__mmask16)0xFFFF : r <= 0 ? (__mmask16)0 : (__mmask16)((1u << r) - 1);
  }
  int m = 0;
  for (; m + GK_MR <= M; m += GK_MR)
    gk_micro_8(y + (size_t)m * ldy, ldy, x + (size_t)m * ldx, ldx, P, ldp, K, mk, NULL, alpha, (const char *)P, 7);
  if (m < M) gk_tab[M - m](y + (size_t)m * ldy, ldy, x + (size_t)m * ldx, ldx, P, ldp, K, mk, NULL, alpha, (const char *)P, 7);
}

__attribute__((target("avx512f"))) void tn__transpose(float *dst, size_t ldd, const float *src, size_t lds, int rows,
                                                      int cols) {
  for (int r0 = 0; r0 < rows; r0 += 16)
    for (int c0 = 0; c0 < cols; c0 += 16) {
      const int nr = rows - r0 < 16 ? rows - r0 : 16, nc = cols - c0 < 16 ? cols - c0 : 16;
      const __mmask16 cm = (__mmask16)((1u << nc) - 1), rm = (__mmask16)((1u << nr) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; i++)
        r[i] = i < nr ? _mm512_maskz_loadu_ps(cm, src + (size_t)(r0 + i) * lds + c0) : _mm512_setzero_ps();
      gk_tr16(r);
      for (int j = 0; j < nc; j++) _mm512_mask_storeu_ps(dst + (size_t)(c0 + j) * ldd + r0, rm, r[j]);
    }
}

bool tn_linear_cols_ok(const tn_mat *W) { return W->dtype == TN_F32 && !(W->lora && W->lora->enabled); }

void tn_cols_range(int out, int part, int nparts, int *o0, int *o1) {
  tn_split_range(out, 16, part, nparts, o0, o1); /* whole vectors of the packed panels */
}

void tn_linear_cols(float *y, const float *x, const tn_mat *W, const float *bias, int N, int o0, int o1,
                    const tn_mat *next, int next_o0) {
  // y (N, out), x (N, in), W (out, in): outputs [o0, o1)
  if (o0 >= o1) return;
  if (tn_isa_level() < TN_ISA_AVX512) {
    small_gemm_rows(y, x, W->w, N, W->in, W->out, o0, o1);
    if (bias)
      for (int i = 0; i < N; i++)
        for (int o = o0; o < o1; o++) y[(size_t)i * W->out + o] += bias[o];
    return;
  }
  float *P = tn__scratch(TN_SCR_PACK, sizeof(float) * GK_NR * (size_t)W->in); // (in, 48), this thread's
  if (!P) abort(); /* a panel of 48 weight rows: not recoverable */
  const float *nxt = next && next->dtype == TN_F32 && next_o0 < next->out ? next->w + (size_t)next_o0 * next->in : NULL;
  const size_t nxt_bytes = nxt ? sizeof(float) * next->in * (size_t)(next->out - next_o0 < GK_NR ? next->out - next_o0 : GK_NR) : 0;
  gk_cols(y, x, W->w, bias, N, W->in, W->out, o0, o1, P, nxt, nxt_bytes);
}

void tn_linear_rows(float *y, const float *x, const tn_mat *W, const float *bias, int N, int o0, int o1) {
  // y (N, out), x (N, in), W (out, in): outputs [o0, o1), the numbers of tn_linear_part
  if (o0 >= o1) return;
  if (W->dtype != TN_F32)
    tn_qlinear_rows(y, x, W, N, o0, o1);
  else
    small_gemm_rows(y, x, W->w, N, W->in, W->out, o0, o1);
  if (bias)
    for (int i = 0; i < N; i++) {
      float *yi = y + (size_t)i * W->out;
      for (int o = o0; o < o1; o++) yi[o] += bias[o];
    }
}

void tn_linear_prefetch(const tn_mat *W, int o0, int o1, size_t bytes) {
  if (W->dtype != TN_F32 || o0 >= o1) return; /* f32 rows are one contiguous block */
  const size_t all = (size_t)(o1 - o0) * W->in * sizeof(float), n = bytes < all ? bytes : all;
  const char *p = (const char *)(W->w + (size_t)o0 * W->in);
  for (size_t b = 0; b < n; b += 64) _mm_prefetch(p + b, _MM_HINT_T1);
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
