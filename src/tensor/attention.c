/* attention.c - causal (optionally sliding-window, optionally soft-capped)
 * grouped-query attention over keys/values stored per sequence, forward and
 * backward. One entry point serves training (a batch of whole sequences),
 * prefill and KV-cache decoding (rows whose keys live in a cache slot).
 *
 * Two paths compute the same formulas:
 *  - runs of >= RUN_MIN rows of one sequence at consecutive positions (training,
 *    prefill) are cut in chunks of <= CHUNK rows and done per (chunk, head) with
 *    small sgemm calls (scores, P V, and in backward dP, dS K, P^T dO, dS^T Q),
 *    computing only the key range [lo(first row), last position] of the chunk;
 *  - other rows (decoding, short pieces) go, in inference (no att kept,
 *    s->grouped) on AVX-512, through the decode kernel: rows grouped by the memory their keys
 *    come from (one slot, or the shared prompt prefix of G samples), and per
 *    (group, kv head) the scores and P V of all rows x query heads of the GQA
 *    group at once, so a cached key/value is read once for the whole group; a
 *    row's numbers do not depend on the other rows in its group (each score is
 *    its own fixed-order dot, each output a sequential sum over positions).
 *    Elsewhere (training, no AVX-512) they go one (row, head) at a time with
 *    vector dot/axpy.
 * Shared prefixes (tn_attn_shape.pfx_src/pfx_len): a slot's first positions may
 * live in another slot (forward only).
 * Not for: the q/k/v projections, RoPE or the KV cache layout policy. */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#define TN_KERN_AVX512
#include "tensor/kern.h"
#include "tensor/tensor.h"

#define RUN_MIN 16  /* shorter runs use the per-row path */
#define CHUNK 64    /* query rows per sgemm block */
#define KEY_TILE 64 /* key positions per dk/dv task */

TN_MV_INLINE float dot_body(const float *a, const float *b, int n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}
TN_MV(float, dot, (const float *a, const float *b, int n), (a, b, n))
TN_MV_INLINE void axpy_body(float *y, float a, const float *x, int n) {
#pragma omp simd
  for (int i = 0; i < n; i++) y[i] += a * x[i];
}
TN_MV_VOID(axpy, (float *y, float a, const float *x, int n), (y, a, x, n))

/* C = alpha op(A) op(B) + beta C (beta 0 or 1): in the bf16 matmul mode on AMX tiles
 * by this thread (operands rounded to bf16, as torch's autocast does these products),
 * else OpenBLAS sgemm */
static void mm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc) {
  if (M >= 16 && tn_matmul_bf16() && tn_gemm_bf16_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}

/* positions of sequence j below this are read from sequence pfx_src[j] */
static inline int pfx_of(const tn_attn_shape *s, int j) { return s->pfx_len ? s->pfx_len[j] : 0; }

static inline int row_lo(const tn_attn_shape *s, int p) {
  int lo = s->window > 0 ? p - s->window + 1 : 0;
  return lo < 0 ? 0 : lo;
}

/* worth a parallel region? (N H D Tmax bounds the multiply-adds) */
static inline bool big(const tn_attn_shape *s) {
  return (double)s->N * s->H * s->D * s->Tmax > 2e5;
}

/* ---- the plan: rows grouped by sequence, runs cut into chunks ---- */
typedef struct {
  int r0, m, seq; /* rows r0 .. r0+m-1, positions pos[r0] + 0 .. m-1 */
} chunk;
typedef struct {
  int S;             /* sequence slots: 1 + max seq */
  int *tend;         /* (S) 1 + max position of a row of the sequence */
  chunk *ch;         /* chunks, grouped by sequence */
  int nch, *choff;   /* (S+1) */
  int *single;       /* per-row-path rows, grouped by sequence, in row order */
  int nsingle, *soff; /* (S+1) */
} plan;

static void make_plan(plan *pl, const tn_attn_shape *s) {
  const int N = s->N;
  int S = 0;
  for (int i = 0; i < N; i++) S = s->seq[i] + 1 > S ? s->seq[i] + 1 : S;
  /* ints: rows N, roff S+1, tend S, chunks 3N, choff S+1, single N, soff S+1 */
  int *b = tn__scratch(TN_SCR_ATT_ROWS, sizeof(int) * (5 * (size_t)N + 4 * (size_t)S + 3));
  if (!b) abort(); /* a few KB; not recoverable */
  int *rows = b, *roff = rows + N;
  pl->S = S;
  pl->tend = roff + S + 1;
  pl->ch = (chunk *)(pl->tend + S);
  pl->choff = (int *)(pl->ch + N);
  pl->single = pl->choff + S + 1;
  pl->soff = pl->single + N;
  for (int j = 0; j <= S; j++) roff[j] = 0;
  for (int j = 0; j < S; j++) pl->tend[j] = 0;
  for (int i = 0; i < N; i++) {
    roff[s->seq[i] + 1]++;
    if (s->pos[i] + 1 > pl->tend[s->seq[i]]) pl->tend[s->seq[i]] = s->pos[i] + 1;
  }
  for (int j = 0; j < S; j++) roff[j + 1] += roff[j];
  /* stable counting sort, using choff as the fill cursor for now */
  memcpy(pl->choff, roff, sizeof(int) * (size_t)(S + 1));
  for (int i = 0; i < N; i++) rows[pl->choff[s->seq[i]]++] = i;
  pl->nch = pl->nsingle = 0;
  for (int j = 0; j < S; j++) {
    pl->choff[j] = pl->nch;
    pl->soff[j] = pl->nsingle;
    for (int a = roff[j]; a < roff[j + 1];) {
      int e = a + 1;
      while (e < roff[j + 1] && rows[e] == rows[e - 1] + 1 && s->pos[rows[e]] == s->pos[rows[e - 1]] + 1) e++;
      if (e - a >= RUN_MIN && pfx_of(s, j) == 0) {
        for (int c = a; c < e; c += CHUNK)
          pl->ch[pl->nch++] = (chunk){rows[c], e - c < CHUNK ? e - c : CHUNK, j};
      } else {
        for (int c = a; c < e; c++) pl->single[pl->nsingle++] = rows[c];
      }
      a = e;
    }
  }
  pl->choff[S] = pl->nch;
  pl->soff[S] = pl->nsingle;
}

/* softmax_row on AVX-512: 16 lanes with a masked last step (the compiler's version runs
 * a row's ragged tail, up to 15 of its 1..T elements, through scalar expf) */
__attribute__((target("avx512f"))) static void z_softmax_row(float *a, const float *sc, int lo, int p, float cap) {
  const int n = p - lo + 1;
  float *ar = a + lo;
  const float *sr = sc + lo;
  if (cap > 0) {
    const __m512 ic = _mm512_set1_ps(-2.0f / cap), vc = _mm512_set1_ps(cap), one = _mm512_set1_ps(1.0f),
                 two = _mm512_set1_ps(2.0f);
    for (int i = 0; i < n; i += 16) { /* cap * tanh(z / cap), tanh(z) = 2 / (1 + e^-2z) - 1 */
      const __mmask16 mk = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
      const __m512 z = _mm512_maskz_loadu_ps(mk, sr + i);
      const __m512 th = _mm512_sub_ps(_mm512_div_ps(two, _mm512_add_ps(one, tn__expf16(_mm512_mul_ps(z, ic)))), one);
      _mm512_mask_storeu_ps(ar + i, mk, _mm512_mul_ps(vc, th));
    }
    sr = ar;
  }
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 mk = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mk, sr + i));
  }
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 mk = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    const __m512 e = _mm512_maskz_mov_ps(mk, tn__expf16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, sr + i), m)));
    _mm512_mask_storeu_ps(ar + i, mk, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int i = 0; i < n; i += 16) {
    const __mmask16 mk = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(ar + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, ar + i), inv));
  }
}

/* Softmax of one row over [lo, p] (scores sc[t] already scaled, soft-cap not yet
 * applied); writes probabilities to a[lo..p]. sc may alias a. */
TN_MV_INLINE void softmax_row_c_body(float *a, const float *sc, int lo, int p, float cap) {
  float mx = -INFINITY;
  if (cap > 0) {
    const float ic = 1.0f / cap;
#pragma omp simd
    for (int t = lo; t <= p; t++) a[t] = cap * tn__tanhf(sc[t] * ic);
    sc = a;
  }
#pragma omp simd reduction(max : mx)
  for (int t = lo; t <= p; t++) mx = sc[t] > mx ? sc[t] : mx;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int t = lo; t <= p; t++) {
    a[t] = tn__expf(sc[t] - mx);
    sum += a[t];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int t = lo; t <= p; t++) a[t] *= inv;
}
TN_MV_VOID(softmax_row_c, (float *a, const float *sc, int lo, int p, float cap), (a, sc, lo, p, cap))

static bool has_avx512(void) { return tn_isa_level() >= TN_ISA_AVX512; }
static void softmax_row(float *a, const float *sc, int lo, int p, float cap) {
  if (has_avx512()) z_softmax_row(a, sc, lo, p, cap);
  else softmax_row_c(a, sc, lo, p, cap);
}

/* ---- forward ---- */
static void fwd_row(float *out, float *att, float *scratch, const float *q, const float *k,
                    const float *v, const tn_attn_shape *s, int i, int h) {
  const int D = s->D, kh = h / (s->H / s->KV);
  const size_t kvrow = (size_t)s->KV * D, ih = (size_t)i * s->H + h;
  const int p = s->pos[i], lo = row_lo(s, p);
  const float *qi = q + ih * D;
  const int pf = pfx_of(s, s->seq[i]), src = pf > 0 ? s->pfx_src[s->seq[i]] : s->seq[i];
  const float *ks = k + (size_t)s->seq[i] * s->seq_stride + (size_t)kh * D;
  const float *vs = v + (size_t)s->seq[i] * s->seq_stride + (size_t)kh * D;
  const float *kp = k + (size_t)src * s->seq_stride + (size_t)kh * D;
  const float *vp = v + (size_t)src * s->seq_stride + (size_t)kh * D;
  float *a = att ? att + ih * s->Tmax : scratch;
  for (int t = lo; t <= p; t++) a[t] = dot(qi, (t < pf ? kp : ks) + t * kvrow, D) * s->scale;
  softmax_row(a, a, lo, p, s->softcap);
  float *o = out + ih * D;
  for (int d = 0; d < D; d++) o[d] = 0.0f;
  for (int t = lo; t <= p; t++) axpy(o, a[t], (t < pf ? vp : vs) + t * kvrow, D);
  if (att) { /* keep the row well-defined outside the attended range */
    for (int t = 0; t < lo; t++) a[t] = 0.0f;
    for (int t = p + 1; t < s->Tmax; t++) a[t] = 0.0f;
  }
}

static void fwd_chunk(float *out, float *att, float *scratch, const float *q, const float *k,
                      const float *v, const tn_attn_shape *s, const chunk *c, int h) {
  const int H = s->H, D = s->D, KV = s->KV, kh = h / (H / KV), Tm = s->Tmax;
  const int p0 = s->pos[c->r0], klo = row_lo(s, p0), L = p0 + c->m - klo;
  const float *ks = k + (size_t)c->seq * s->seq_stride + (size_t)klo * KV * D + (size_t)kh * D;
  const float *vs = v + (size_t)c->seq * s->seq_stride + (size_t)klo * KV * D + (size_t)kh * D;
  /* scores (m, L) at column klo of att rows, or in the scratch (m, Tmax) */
  float *sc = att ? att + ((size_t)c->r0 * H + h) * Tm : scratch;
  const int ld = att ? H * Tm : Tm;
  /* inference on AVX-512: linear.c's packed micro-kernel on K^T (scores) and V (P V),
   * padded to 48 columns (OpenBLAS re-packs both operands of these small products) */
  const bool z = !att && s->grouped && has_avx512(); /* inference only: training (also a recomputing forward) keeps one path */
  const int Lp = (L + 47) / 48 * 48, Dp = (D + 47) / 48 * 48;
  float *kt = NULL, *vp = NULL; // (D, Lp), (L, Dp)
  if (z) {
    kt = tn__scratch(TN_SCR_ATT_KV, sizeof(float) * ((size_t)D * Lp + (size_t)L * Dp));
    if (!kt) abort(); /* a few KB per head: not recoverable */
    vp = kt + (size_t)D * Lp;
    tn__transpose(kt, Lp, ks, (size_t)KV * D, L, D);
    for (int d = 0; d < D; d++) memset(kt + (size_t)d * Lp + L, 0, sizeof(float) * (Lp - L));
    const float *qc = q + ((size_t)c->r0 * H + h) * D;
    for (int t0 = 0; t0 < L; t0 += 48)
      tn__gemm_panel(sc + klo + t0, ld, qc, (size_t)H * D, c->m, D, kt + t0, Lp, L - t0 < 48 ? L - t0 : 48, s->scale);
  } else {
    mm(false, true, c->m, L, D, s->scale, q + ((size_t)c->r0 * H + h) * D, H * D, ks, KV * D, 0.0f, sc + klo, ld);
  }
  for (int r = 0; r < c->m; r++) {
    float *a = sc + (size_t)r * ld;
    const int p = p0 + r, lo = row_lo(s, p);
    for (int t = klo; t < lo; t++) a[t] = 0.0f;
    softmax_row(a, a, lo, p, s->softcap);
    for (int t = p + 1; t < klo + L; t++) a[t] = 0.0f;
    if (att) {
      for (int t = 0; t < klo; t++) a[t] = 0.0f;
      for (int t = klo + L; t < Tm; t++) a[t] = 0.0f;
    }
  }
  if (z) {
    for (int t = 0; t < L; t++) {
      memcpy(vp + (size_t)t * Dp, vs + (size_t)t * KV * D, sizeof(float) * D);
      memset(vp + (size_t)t * Dp + D, 0, sizeof(float) * (Dp - D));
    }
    for (int d0 = 0; d0 < D; d0 += 48)
      tn__gemm_panel(out + ((size_t)c->r0 * H + h) * D + d0, (size_t)H * D, sc + klo, ld, c->m, L, vp + d0, Dp,
                     D - d0 < 48 ? D - d0 : 48, 1.0f);
    return;
  }
  mm(false, false, c->m, D, L, 1.0f, sc + klo, ld, vs, KV * D,
              0.0f, out + ((size_t)c->r0 * H + h) * D, H * D);
}

/* ---- decode kernel (inference, AVX-512) ----
 * Rows of the per-row path, grouped: a group is <= DG_MAX rows whose keys at
 * positions [lo, P) come from one sequence `src` (the shared prompt prefix of
 * slots sharing it, or the rows' own slot, P = 1 + the smallest position of the
 * group's rows); a row's positions [P, p] come from its own slot. Per (group, kv
 * head): scores of every (row, query head of the GQA group) against each cached
 * key of the shared range, then of each row's own range; softmax per row; then
 * out = sum_t P_t v_t over the shared range and continued over the own range.
 * Numbers per row: a score is a 16-lane FMA chain over D followed by the same
 * halving tree whatever its tile neighbours; an output element is a sequential
 * FMA sum over t in increasing order (positions of other rows' windows enter as
 * exact zeros). So a row gives the same result alone or in any group. */
#define DG_MAX 16

/* 16 accumulators -> one vector of their sums (each by the halving tree
 * 16 -> 8 -> 4 -> 2 -> 1), lane i = sum of a[i] */
__attribute__((target("avx512f"))) static inline __m512 tr16(const __m512 *a) {
  __m512 b[8], c[4], d[2];
  for (int i = 0; i < 8; i++)
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; i++)
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; i++)
    d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xDD));
  /* a[i] ended in lane 4 (i % 4) + i / 4 */
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(idx, r);
}

/* sc[m][t] = scale * q_m . k_t for t in [t0, t1), m < M; k_t = kb + t * kvrow */
__attribute__((target("avx512f"))) static void z_scores(float *sc, int ld, const float *const *qm, int M,
                                                        const float *kb, size_t kvrow, int t0, int t1, int D,
                                                        float scale) {
  const int dk = D & ~15;
  const __mmask16 dm = (__mmask16)((1u << (D - dk)) - 1);
  const __m512 vs = _mm512_set1_ps(scale);
  for (int t = t0; t < t1; t += 16) {
    const int nt = t1 - t < 16 ? t1 - t : 16;
    const float *kt = kb + (size_t)t * kvrow;
    for (int m = 0; m < M; m++) {
      __m512 acc[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; j++) acc[j] = _mm512_setzero_ps();
      for (int d = 0; d < dk; d += 16) {
        const __m512 qv = _mm512_loadu_ps(qm[m] + d);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
          if (j < nt) acc[j] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kt + (size_t)j * kvrow + d), acc[j]);
      }
      if (dm) { /* ragged head size: one more step on zero-filled lanes */
        const __m512 qv = _mm512_maskz_loadu_ps(dm, qm[m] + dk);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
          if (j < nt) acc[j] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(dm, kt + (size_t)j * kvrow + dk), acc[j]);
      }
      _mm512_mask_storeu_ps(sc + (size_t)m * ld + t, (__mmask16)((1u << nt) - 1), _mm512_mul_ps(tr16(acc), vs));
    }
  }
}

/* om[m][0..D) (= 0 or its current value when init) += sum_{t0 <= t < t1} P[m][t] v_t,
 * t in increasing order; v_t = vb + t * kvrow. Columns in chunks of NV vectors,
 * MB outputs at a time (NV x MB accumulators in registers). */
#define Z_PV(NV, MB)                                                                                   \
  __attribute__((target("avx512f"))) static void z_pv_##NV(float *const *om, int M, const float *P, int ld, \
                                                           const float *vb, size_t kvrow, int t0, int t1,     \
                                                           int d0, int D, bool init) {                        \
    __mmask16 mk[NV];                                                                                  \
    for (int c = 0; c < NV; c++) {                                                                     \
      const int r = D - d0 - 16 * c;                                                                   \
      mk[c] = r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1);                                \
    }                                                                                                  \
    for (int m0 = 0; m0 < M; m0 += MB) {                                                               \
      const int mn = M - m0 < MB ? M - m0 : MB;                                                        \
      __m512 acc[MB][NV];                                                                              \
      _Pragma("GCC unroll 8") for (int m = 0; m < MB; m++)                                             \
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)                                           \
          acc[m][c] = init && m < mn ? _mm512_maskz_loadu_ps(mk[c], om[m0 + m] + d0 + 16 * c) : _mm512_setzero_ps(); \
      for (int t = t0; t < t1; t++) {                                                                  \
        const float *vt = vb + (size_t)t * kvrow + d0;                                                 \
        __m512 vv[NV];                                                                                 \
        _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) vv[c] = _mm512_maskz_loadu_ps(mk[c], vt + 16 * c); \
        _Pragma("GCC unroll 8") for (int m = 0; m < MB; m++) {                                         \
          if (m < mn) {                                                                                \
            const __m512 pb = _mm512_set1_ps(P[(size_t)(m0 + m) * ld + t]);                            \
            _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++) acc[m][c] = _mm512_fmadd_ps(pb, vv[c], acc[m][c]); \
          }                                                                                            \
        }                                                                                              \
      }                                                                                                \
      _Pragma("GCC unroll 8") for (int m = 0; m < MB; m++)                                             \
        if (m < mn)                                                                                    \
          _Pragma("GCC unroll 4") for (int c = 0; c < NV; c++)                                         \
            _mm512_mask_storeu_ps(om[m0 + m] + d0 + 16 * c, mk[c], acc[m][c]);                         \
    }                                                                                                  \
  }
Z_PV(1, 8) Z_PV(2, 8) Z_PV(3, 8) Z_PV(4, 6)
#undef Z_PV

static void z_pv(float *const *om, int M, const float *P, int ld, const float *vb, size_t kvrow, int t0, int t1,
                 int D, bool init) {
  for (int d0 = 0; d0 < D; d0 += 64) {
    const int nv = (D - d0 >= 64 ? 64 : D - d0 + 15) / 16;
    if (nv == 4) z_pv_4(om, M, P, ld, vb, kvrow, t0, t1, d0, D, init);
    else if (nv == 3) z_pv_3(om, M, P, ld, vb, kvrow, t0, t1, d0, D, init);
    else if (nv == 2) z_pv_2(om, M, P, ld, vb, kvrow, t0, t1, d0, D, init);
    else z_pv_1(om, M, P, ld, vb, kvrow, t0, t1, d0, D, init);
  }
}

typedef struct {
  int src, P, r0, nr; /* rows dr[r0 .. r0 + nr): keys [.., P) from sequence src */
} dgroup;

/* one (group, kv head): sc (DG_MAX * G, Tmax) scratch */
static void dec_task(float *out, const float *q, const float *k, const float *v, const tn_attn_shape *s,
                     const int *rows, const dgroup *g, int kh, float *sc) {
  const int H = s->H, D = s->D, G = H / s->KV, M = g->nr * G, ld = s->Tmax, P = g->P;
  const size_t kvrow = (size_t)s->KV * D, kho = (size_t)kh * D;
  const float *qm[DG_MAX * 16];
  float *om[DG_MAX * 16];
  int lo_min = P;
  for (int m = 0; m < M; m++) {
    const size_t ih = (size_t)rows[g->r0 + m / G] * H + (size_t)kh * G + m % G;
    qm[m] = q + ih * D;
    om[m] = out + ih * D;
  }
  for (int r = 0; r < g->nr; r++) {
    const int lo = row_lo(s, s->pos[rows[g->r0 + r]]);
    lo_min = lo < lo_min ? lo : lo_min;
  }
  const float *ksrc = k + (size_t)g->src * s->seq_stride + kho, *vsrc = v + (size_t)g->src * s->seq_stride + kho;
  if (lo_min < P) z_scores(sc, ld, qm, M, ksrc, kvrow, lo_min, P, D, s->scale);
  for (int r = 0; r < g->nr; r++) {
    const int i = rows[g->r0 + r], p = s->pos[i], lo = row_lo(s, p), a = lo > P ? lo : P;
    if (a <= p)
      z_scores(sc + (size_t)r * G * ld, ld, qm + r * G, G, k + (size_t)s->seq[i] * s->seq_stride + kho, kvrow, a,
               p + 1, D, s->scale);
    for (int m = r * G; m < (r + 1) * G; m++) {
      float *pm = sc + (size_t)m * ld;
      softmax_row(pm, pm, lo, p, s->softcap);
      for (int t = lo_min; t < lo && t < P; t++) pm[t] = 0.0f; /* the group's range outside this row's */
      for (int t = p + 1; t < P; t++) pm[t] = 0.0f;
    }
  }
  if (lo_min < P) z_pv(om, M, sc, ld, vsrc, kvrow, lo_min, P, D, false);
  else
    for (int m = 0; m < M; m++) memset(om[m], 0, sizeof(float) * D);
  for (int r = 0; r < g->nr; r++) {
    const int i = rows[g->r0 + r], p = s->pos[i], lo = row_lo(s, p), a = lo > P ? lo : P;
    if (a <= p)
      z_pv(om + r * G, G, sc + (size_t)r * G * ld, ld, v + (size_t)s->seq[i] * s->seq_stride + kho, kvrow, a, p + 1,
           D, true);
  }
}

/* group the per-row-path rows: sorted by (key source, prefix length), runs cut
 * at DG_MAX rows; returns the number of groups */
/* key of row i: (source sequence, prefix length); 0 = own slot from position 0. A
 * row of a slot that is itself the source of a prefix (past its end) joins the
 * sharers' group: its own positions from there on are in its slot anyway. */
static void row_key(const tn_attn_shape *s, int i, int *src, int *pf) {
  const int j = s->seq[i], p = pfx_of(s, j);
  *src = p > 0 ? s->pfx_src[j] : j;
  *pf = p;
  if (p == 0 && s->pfx_len)
    for (int d = 0; d < s->N; d++) {
      const int sd = s->seq[d], l = s->pfx_len[sd];
      if (l > *pf && l <= s->pos[i] && s->pfx_src[sd] == j) *pf = l;
    }
}

static int make_groups(const tn_attn_shape *s, const int *single, int ns, int *rows, dgroup *gr) {
  /* (N) keys in scratch after rows and groups: src, pf per row index */
  int *ks = (int *)(gr + ns), *kp = ks + s->N;
  for (int a = 0; a < ns; a++) row_key(s, single[a], &ks[single[a]], &kp[single[a]]);
  memcpy(rows, single, sizeof(int) * (size_t)ns);
  for (int a = 1; a < ns; a++) { /* insertion sort by key, stable: few rows */
    const int x = rows[a];
    int b = a - 1;
    for (; b >= 0; b--) {
      const int y = rows[b];
      if (ks[y] < ks[x] || (ks[y] == ks[x] && kp[y] <= kp[x])) break;
      rows[b + 1] = y;
    }
    rows[b + 1] = x;
  }
  int ng = 0;
  for (int a = 0; a < ns;) {
    const int ka = ks[rows[a]], pa = kp[rows[a]];
    int e = a + 1;
    while (e < ns && e - a < DG_MAX && ks[rows[e]] == ka && kp[rows[e]] == pa) e++;
    int P = pa;
    if (pa == 0) { /* own slot: shared up to the first row's position */
      P = s->Tmax;
      for (int r = a; r < e; r++) P = s->pos[rows[r]] + 1 < P ? s->pos[rows[r]] + 1 : P;
    }
    gr[ng++] = (dgroup){ka, P, a, e - a};
    a = e;
  }
  return ng;
}

/* The forward's work list, shared by tn_attention_forward and its per-thread part:
 * chunks x heads first (nct tasks), then either decode groups x kv heads (dec) or
 * single rows x heads. */
typedef struct {
  plan pl;
  bool dec;
  size_t rows_t; /* score rows of one thread's scratch */
  int *drows;
  dgroup *gr;
  long nct, ntask;
} fwd_tasks;

static void make_fwd_tasks(fwd_tasks *t, const tn_attn_shape *s, bool keep_att) {
  make_plan(&t->pl, s);
  const int G = s->H / s->KV;
  t->dec = !keep_att && s->grouped && t->pl.nsingle > 0 && has_avx512() && G <= 16;
  t->rows_t = t->dec && DG_MAX * G > CHUNK ? (size_t)DG_MAX * G : CHUNK;
  int ng = 0;
  t->drows = NULL;
  t->gr = NULL;
  if (t->dec) {
    t->drows = tn__scratch(TN_SCR_ATT_DEC, sizeof(int) * (size_t)t->pl.nsingle + sizeof(dgroup) * (size_t)t->pl.nsingle +
                                               sizeof(int) * 2 * (size_t)s->N);
    if (!t->drows) abort();
    t->gr = (dgroup *)(t->drows + t->pl.nsingle);
    ng = make_groups(s, t->pl.single, t->pl.nsingle, t->drows, t->gr);
  }
  t->nct = (long)t->pl.nch * s->H;
  t->ntask = t->nct + (t->dec ? (long)ng * s->KV : (long)t->pl.nsingle * s->H);
}

void tn_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const tn_attn_shape *s) {
  // out, q (N, H, D); k, v: sequence s at k + s*seq_stride, (Tmax, KV, D); att (N, H, Tmax)
  fwd_tasks ft;
  make_fwd_tasks(&ft, s, att != NULL);
  const plan pl = ft.pl;
  const int H = s->H, nth = omp_get_max_threads();
  const bool dec = ft.dec;
  const size_t rows_t = ft.rows_t;
  float *tmp = att ? NULL : tn__scratch(TN_SCR_ATT_TMP, sizeof(float) * (size_t)nth * rows_t * s->Tmax);
  if (!att && !tmp) abort();
  const int *drows = ft.drows;
  const dgroup *gr = ft.gr;
  const long nct = ft.nct, ntask = ft.ntask;
#pragma omp parallel for schedule(dynamic, 1) if (big(s))
  for (long task = 0; task < ntask; task++) {
    float *scr = tmp ? tmp + (size_t)omp_get_thread_num() * rows_t * s->Tmax : NULL;
    if (task < nct) fwd_chunk(out, att, scr, q, k, v, s, &pl.ch[task / H], (int)(task % H));
    else if (dec) dec_task(out, q, k, v, s, drows, &gr[(task - nct) / s->KV], (int)((task - nct) % s->KV), scr);
    else fwd_row(out, att, scr, q, k, v, s, pl.single[(task - nct) / H], (int)((task - nct) % H));
  }
}

void tn_attention_forward_part(float *out, const float *q, const float *k, const float *v, const tn_attn_shape *s,
                               int part, int nparts) {
  fwd_tasks ft;
  make_fwd_tasks(&ft, s, false); /* every thread plans (a few rows): no sharing, no barrier */
  const plan pl = ft.pl;
  const int H = s->H, G = H / s->KV;
  const bool dec = ft.dec;
  float *scr = tn__scratch(TN_SCR_ATT_TMP, sizeof(float) * ft.rows_t * s->Tmax); /* this thread's */
  if (!scr) abort();
  const int *drows = ft.drows;
  const dgroup *gr = ft.gr;
  const long nct = ft.nct, ntask = ft.ntask;
  int kh0, kh1;
  tn_kv_range(s->KV, part, nparts, &kh0, &kh1);
  for (long task = 0; task < ntask; task++) { /* the tasks of kv heads [kh0, kh1) are this part's */
    const int h = task < nct ? (int)(task % H) : dec ? -1 : (int)((task - nct) % H);
    const int kh = h >= 0 ? h / G : (int)((task - nct) % s->KV);
    if (kh < kh0 || kh >= kh1) continue;
    if (task < nct) fwd_chunk(out, NULL, scr, q, k, v, s, &pl.ch[task / H], h);
    else if (dec) dec_task(out, q, k, v, s, drows, &gr[(task - nct) / s->KV], kh, scr);
    else fwd_row(out, NULL, scr, q, k, v, s, pl.single[(task - nct) / H], h);
  }
}

/* ---- backward ----
 * Pass A, per (row or chunk, head):  dP_t = dout . v_t,  delta = sum_t P_t dP_t,
 *   dS_t = P_t (dP_t - delta) [* (1 - (c_t/cap)^2) with soft-cap, c_t the capped
 *   score recomputed from q, k],  dq += scale * sum_t dS_t k_t.
 *   dS is kept in a per-thread scratch laid out like att (N, H, Tmax).
 * Pass B, per (sequence, kv head, tile of key positions): over every row of the
 *   sequence and the G query heads sharing the kv head,
 *   dv_t += P_t dout,  dk_t += scale * dS_t q.
 * No two threads write the same memory, and each sum runs in a fixed order, so
 * the result does not depend on the thread count. */

/* dS from dP (in ds[lo..p]), P and (soft-cap only) the raw scaled scores of one
 * row; zeroes the rest of [zlo, zhi) */
TN_MV_INLINE void ds_row_body(float *ds, const float *P, const float *raw, int lo, int p,
                             int zlo, int zhi, float cap) {
  float delta = 0.0f;
#pragma omp simd reduction(+ : delta)
  for (int t = lo; t <= p; t++) delta += P[t] * ds[t];
  if (cap > 0) {
    const float ic = 1.0f / cap;
#pragma omp simd
    for (int t = lo; t <= p; t++) {
      float th = tn__tanhf(raw[t] * ic);
      ds[t] = P[t] * (ds[t] - delta) * (1.0f - th * th);
    }
  } else {
#pragma omp simd
    for (int t = lo; t <= p; t++) ds[t] = P[t] * (ds[t] - delta);
  }
  for (int t = zlo; t < lo; t++) ds[t] = 0.0f;
  for (int t = p + 1; t < zhi; t++) ds[t] = 0.0f;
}
TN_MV_VOID(ds_row, (float *ds, const float *P, const float *raw, int lo, int p, int zlo, int zhi, float cap), (ds, P, raw, lo, p, zlo, zhi, cap))

static void bwd_row(float *dq, float *ds, float *scratch, const float *dout, const float *att,
                    const float *q, const float *k, const float *v, const tn_attn_shape *s, int i, int h) {
  const int D = s->D, kh = h / (s->H / s->KV);
  const size_t kvrow = (size_t)s->KV * D, ih = (size_t)i * s->H + h;
  const int p = s->pos[i], lo = row_lo(s, p);
  const float *qi = q + ih * D, *doi = dout + ih * D, *P = att + ih * s->Tmax;
  const float *ks = k + (size_t)s->seq[i] * s->seq_stride + (size_t)kh * D;
  const float *vs = v + (size_t)s->seq[i] * s->seq_stride + (size_t)kh * D;
  float *dsi = ds + ih * s->Tmax;
  for (int t = lo; t <= p; t++) dsi[t] = dot(doi, vs + t * kvrow, D);
  if (s->softcap > 0)
    for (int t = lo; t <= p; t++) scratch[t] = dot(qi, ks + t * kvrow, D) * s->scale;
  ds_row(dsi, P, scratch, lo, p, lo, p + 1, s->softcap);
  float *dqi = dq + ih * D;
  for (int t = lo; t <= p; t++) axpy(dqi, dsi[t] * s->scale, ks + t * kvrow, D);
}

static void bwd_chunk(float *dq, float *ds, float *scratch, const float *dout, const float *att,
                      const float *q, const float *k, const float *v, const tn_attn_shape *s,
                      const chunk *c, int h) {
  const int H = s->H, D = s->D, KV = s->KV, kh = h / (H / KV), Tm = s->Tmax;
  const int p0 = s->pos[c->r0], klo = row_lo(s, p0), L = p0 + c->m - klo;
  const float *ks = k + (size_t)c->seq * s->seq_stride + (size_t)klo * KV * D + (size_t)kh * D;
  const float *vs = v + (size_t)c->seq * s->seq_stride + (size_t)klo * KV * D + (size_t)kh * D;
  const size_t rh = (size_t)c->r0 * H + h;
  float *dsc = ds + rh * Tm;
  const float *Pc = att + rh * Tm;
  /* dP (m, L) = dout V^T */
  mm(false, true, c->m, L, D, 1.0f, dout + rh * D, H * D, vs,
              KV * D, 0.0f, dsc + klo, H * Tm);
  if (s->softcap > 0) /* raw scores (m, L) into the scratch, column klo */
    mm(false, true, c->m, L, D, s->scale, q + rh * D, H * D, ks,
                KV * D, 0.0f, scratch + klo, Tm);
  for (int r = 0; r < c->m; r++) {
    const int p = p0 + r;
    ds_row(dsc + (size_t)r * H * Tm, Pc + (size_t)r * H * Tm, s->softcap > 0 ? scratch + (size_t)r * Tm : NULL,
           row_lo(s, p), p, klo, klo + L, s->softcap); /* no scratch without soft-capping (NULL + 0 is UB) */
  }
  /* dq (m, D) += scale * dS K */
  mm(false, false, c->m, D, L, s->scale, dsc + klo, H * Tm, ks,
              KV * D, 1.0f, dq + rh * D, H * D);
}

void tn_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                           const float *q, const float *k, const float *v, const tn_attn_shape *s) {
  // dq, dout, q (N, H, D); dk, dv, k, v: per sequence (Tmax, KV, D); att (N, H, Tmax)
  const int H = s->H, D = s->D, KV = s->KV, G = H / KV, Tm = s->Tmax, nth = omp_get_max_threads();
  const size_t kvrow = (size_t)KV * D;
  plan pl;
  make_plan(&pl, s);
  float *ds = tn__scratch(TN_SCR_ATT_DS, sizeof(float) * (size_t)s->N * H * Tm); // (N, H, Tmax)
  float *tmp = s->softcap > 0 ? tn__scratch(TN_SCR_ATT_TMP, sizeof(float) * (size_t)nth * CHUNK * Tm) : NULL;
  if (!ds || (s->softcap > 0 && !tmp)) abort();

  const long ntask = (long)(pl.nch + pl.nsingle) * H;
#pragma omp parallel for schedule(dynamic, 1) if (big(s))
  for (long task = 0; task < ntask; task++) {
    float *scr = tmp ? tmp + (size_t)omp_get_thread_num() * CHUNK * Tm : NULL;
    const int h = (int)(task % H);
    const long u = task / H;
    if (u < pl.nch) bwd_chunk(dq, ds, scr, dout, att, q, k, v, s, &pl.ch[u], h);
    else bwd_row(dq, ds, scr, dout, att, q, k, v, s, pl.single[u - pl.nch], h);
  }

  /* pass B: tasks (sequence, kv head, key tile) by a flat index */
  long nkt = 0;
  for (int j = 0; j < pl.S; j++) nkt += (long)KV * ((pl.tend[j] + KEY_TILE - 1) / KEY_TILE);
#pragma omp parallel for schedule(dynamic, 1) if (big(s))
  for (long task = 0; task < nkt; task++) {
    int j = 0;
    long rem = task;
    for (;; j++) { /* few sequences: a linear scan is fine */
      long nt = (long)KV * ((pl.tend[j] + KEY_TILE - 1) / KEY_TILE);
      if (rem < nt) break;
      rem -= nt;
    }
    const int ntile = (pl.tend[j] + KEY_TILE - 1) / KEY_TILE;
    const int kh = (int)(rem / ntile), t0 = (int)(rem % ntile) * KEY_TILE;
    const int t1 = t0 + KEY_TILE < pl.tend[j] ? t0 + KEY_TILE : pl.tend[j];
    float *dks = dk + (size_t)j * s->seq_stride + (size_t)kh * D;
    float *dvs = dv + (size_t)j * s->seq_stride + (size_t)kh * D;
    for (int u = pl.choff[j]; u < pl.choff[j + 1]; u++) {
      const chunk *c = &pl.ch[u];
      const int p0 = s->pos[c->r0], klo = row_lo(s, p0);
      const int a = klo > t0 ? klo : t0, b = p0 + c->m < t1 ? p0 + c->m : t1;
      if (a >= b) continue;
      /* rows that see a key in [a, b): p >= a, and with a window lo <= b - 1 */
      int r0 = a > p0 ? a - p0 : 0, r1 = c->m;
      if (s->window > 0 && b - 1 + s->window - p0 < r1) r1 = b - 1 + s->window - p0;
      if (r0 >= r1) continue;
      for (int h = kh * G; h < (kh + 1) * G; h++) {
        const size_t rh = ((size_t)c->r0 + r0) * H + h;
        mm(true, false, b - a, D, r1 - r0, 1.0f, att + rh * Tm + a,
                    H * Tm, dout + rh * D, H * D, 1.0f, dvs + (size_t)a * kvrow, KV * D);
        mm(true, false, b - a, D, r1 - r0, s->scale, ds + rh * Tm + a,
                    H * Tm, q + rh * D, H * D, 1.0f, dks + (size_t)a * kvrow, KV * D);
      }
    }
    for (int u = pl.soff[j]; u < pl.soff[j + 1]; u++) {
      const int i = pl.single[u], p = s->pos[i], lo = row_lo(s, p);
      const int a = lo > t0 ? lo : t0, b = p + 1 < t1 ? p + 1 : t1;
      if (a >= b) continue;
      for (int h = kh * G; h < (kh + 1) * G; h++) {
        const size_t ih = (size_t)i * H + h;
        const float *qi = q + ih * D, *doi = dout + ih * D, *P = att + ih * Tm, *dsi = ds + ih * Tm;
        for (int t = a; t < b; t++) {
          axpy(dvs + t * kvrow, P[t], doi, D);
          axpy(dks + t * kvrow, dsi[t] * s->scale, qi, D);
        }
      }
    }
  }
}
