/* kern.h - private helpers shared by the kernel files of src/tensor: per-thread
 * reusable scratch buffers (allocated once, grown on demand, so hot paths do not
 * allocate per call) and a vectorisable expf. Not a public interface. */
#ifndef TN_KERN_H
#define TN_KERN_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef TN_CLONES /* the fuzz build defines it empty: clang 14 drops the ifunc of a clone set */
#define TN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

/* Scratch slots of the calling thread (contents undefined, 64-byte aligned).
 * Call only outside OpenMP parallel regions; the pointer stays valid until the
 * next call with the same slot from the same thread. NULL on out-of-memory. */
enum { TN_SCR_LORA = 0, TN_SCR_ATT_DS, TN_SCR_ATT_ROWS, TN_SCR_ATT_TMP, TN_SCR_ATT_DEC, TN_SCR_PACK, TN_SCR_ATT_KV, TN_SCR_N };
void *tn__scratch(int slot, size_t bytes);

/* AVX-512 only (linear.c). y[r][0 .. nc) = alpha sum_k x[r][k] P[k][0 .. nc) for r < M, nc <= 48;
 * 48 floats must be readable from every P row (pad it). And dst[c][r] = src[r][c]. */
void tn__gemm_panel(float *y, size_t ldy, const float *x, size_t ldx, int M, int K, const float *P, size_t ldp, int nc,
                    float alpha);
void tn__transpose(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols);

/* expf to ~2 ulp over the float range: clamp, n = round(x / ln2) by adding 1.5*2^23,
 * Cody-Waite reduction r = x - n ln2, degree-6 polynomial, times 2^n built from t's
 * low mantissa bits. One set of constants for the scalar form (written so `#pragma omp
 * simd` loops vectorise it; glibc's expf does not without -ffast-math) and the 16-lane
 * AVX-512 form below: the same steps, so the same values. */
#define TN__EXP_LO -87.33654f /* below: result flushes to ~0 (2^-126) */
#define TN__EXP_HI 88.0f      /* keeps 2^n finite */
#define TN__EXP_LOG2E 1.44269504088896341f
#define TN__EXP_RND 12582912.0f /* 1.5 * 2^23 */
#define TN__EXP_LN2HI 0.693359375f
#define TN__EXP_LN2LO -2.12194440e-4f
#define TN__EXP_P0 1.9875691500e-4f
#define TN__EXP_P1 1.3981999507e-3f
#define TN__EXP_P2 8.3334519073e-3f
#define TN__EXP_P3 4.1665795894e-2f
#define TN__EXP_P4 1.6666665459e-1f
#define TN__EXP_P5 5.0000001201e-1f
#define TN__EXP_BIAS 0x4B400000u /* bit pattern of TN__EXP_RND */

static inline float tn__expf(float x) {
  x = x < TN__EXP_LO ? TN__EXP_LO : x;
  x = x > TN__EXP_HI ? TN__EXP_HI : x;
  /* needs the default rounding mode and no -ffast-math reassociation */
  float t = x * TN__EXP_LOG2E + TN__EXP_RND;
  float n = t - TN__EXP_RND;
  float r = x - n * TN__EXP_LN2HI;
  r = r - n * TN__EXP_LN2LO;
  float p = TN__EXP_P0;
  p = p * r + TN__EXP_P1;
  p = p * r + TN__EXP_P2;
  p = p * r + TN__EXP_P3;
  p = p * r + TN__EXP_P4;
  p = p * r + TN__EXP_P5;
  p = p * r * r + r + 1.0f;
  /* 2^n in unsigned arithmetic: a NaN x (which passes the clamps) gives garbage s but
   * p is NaN, so NaN comes out, with no UB */
  uint32_t tb;
  memcpy(&tb, &t, 4);
  uint32_t e = (tb - TN__EXP_BIAS + 127u) << 23;
  float s;
  memcpy(&s, &e, 4);
  return p * s;
}

#ifdef TN_KERN_AVX512
/* tn__expf on 16 lanes (include <immintrin.h> and define TN_KERN_AVX512 first) */
__attribute__((target("avx512f"))) static inline __m512 tn__expf16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(TN__EXP_LO)), _mm512_set1_ps(TN__EXP_HI));
  const __m512 t = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(TN__EXP_LOG2E)), _mm512_set1_ps(TN__EXP_RND));
  const __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(TN__EXP_RND));
  __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(TN__EXP_LN2HI)));
  r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(TN__EXP_LN2LO)));
  __m512 q = _mm512_set1_ps(TN__EXP_P0);
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(TN__EXP_P1));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(TN__EXP_P2));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(TN__EXP_P3));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(TN__EXP_P4));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(TN__EXP_P5));
  q = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(q, r), r, r), _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(
      _mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32((int)TN__EXP_BIAS)),
                       _mm512_set1_epi32(127)),
      23);
  return _mm512_mul_ps(q, _mm512_castsi512_ps(e));
}
#endif

/* tanh(z) = 2 sigmoid(2z) - 1: absolute error ~1e-7, vectorisable */
static inline float tn__tanhf(float z) { return 2.0f / (1.0f + tn__expf(-2.0f * z)) - 1.0f; }
#endif
