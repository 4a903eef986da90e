/* kern.h - private helpers shared by the kernel files of src/tensor: per-thread
 * reusable scratch buffers (allocated once, grown on demand, so hot paths do not
 * allocate per call) and a vectorisable expf. Not a public interface. */
#ifndef TN_KERN_H
#define TN_KERN_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

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

/* expf to ~2 ulp over the float range, written so `#pragma omp simd` loops
 * vectorise it (glibc's expf does not vectorise without -ffast-math). */
static inline float tn__expf(float x) {
  x = x < -87.33654f ? -87.33654f : x; /* below: result flushes to ~0 (2^-126) */
  x = x > 88.0f ? 88.0f : x;         /* keeps 2^n finite */
  /* round to nearest by adding 1.5*2^23 (no libm call, so the loop vectorises;
   * needs the default rounding mode and no -ffast-math reassociation) */
  float t = x * 1.44269504088896341f + 12582912.0f;
  float n = t - 12582912.0f;
  float r = x - n * 0.693359375f;           /* Cody-Waite ln2 split */
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  /* 2^n from t's low mantissa bits (t = 1.5*2^23 + n), in unsigned arithmetic: a NaN x
   * (which passes the clamps) gives garbage s but p is NaN, so NaN comes out, with no UB */
  uint32_t tb;
  memcpy(&tb, &t, 4);
  uint32_t e = (tb - 0x4B400000u + 127u) << 23;
  float s;
  memcpy(&s, &e, 4);
  return p * s;
}

/* tanh(z) = 2 sigmoid(2z) - 1: absolute error ~1e-7, vectorisable */
static inline float tn__tanhf(float z) { return 2.0f / (1.0f + tn__expf(-2.0f * z)) - 1.0f; }
#endif
