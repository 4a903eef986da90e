/* norm.c - RMSNorm (Llama/Qwen: x*w; Gemma: x*(1+w)), forward and backward.
 * Statistics in f32 per row, as the HF implementations compute them.
 * Not for: LayerNorm with a mean (no supported family uses it). */
#include <math.h>
#include <omp.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

/* sum of squares in 16 interleaved partial sums and a fixed halving tree: the same
 * order whatever the vector width (one chain of C adds was ~4 cycles per element) */
static inline float sumsq(const float *x, int C) {
  float a[16] = {0};
  int c = 0;
  for (; c + 16 <= C; c += 16)
    for (int j = 0; j < 16; j++) a[j] += x[c + j] * x[c + j];
  for (int j = 0; c + j < C; j++) a[j] += x[c + j] * x[c + j];
  for (int h = 8; h >= 1; h >>= 1)
    for (int j = 0; j < h; j++) a[j] += a[j + h];
  return a[0];
}

TN_MV_INLINE void rms_row_body(float *yi, float *rstd, const float *xi, const float *w, int C, float eps, bool plus_one) {
  const float ss = sumsq(xi, C);
  float r = 1.0f / sqrtf(ss / C + eps);
  if (rstd) *rstd = r;
  /* elementwise (yi may be xi: in place) */
  if (!w) {
#pragma omp simd
    for (int c = 0; c < C; c++) yi[c] = xi[c] * r;
  } else if (plus_one) {
#pragma omp simd
    for (int c = 0; c < C; c++) yi[c] = (xi[c] * r) * (1.0f + w[c]);
  } else {
#pragma omp simd
    for (int c = 0; c < C; c++) yi[c] = (xi[c] * r) * w[c];
  }
}
TN_MV_VOID(rms_row, (float *yi, float *rstd, const float *xi, const float *w, int C, float eps, bool plus_one), (yi, rstd, xi, w, C, eps, plus_one))

void tn_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int C,
                        float eps, bool plus_one) {
  // y, x (N, C); w (C); rstd (N). Few rows, or called from a parallel region (the fused
  // decode and prefill): on the calling thread, without a (nested) region
  if (N > 8 && !omp_in_parallel()) {
#pragma omp parallel for
    for (int i = 0; i < N; i++)
      rms_row(y + (size_t)i * C, rstd ? rstd + i : NULL, x + (size_t)i * C, w, C, eps, plus_one);
    return;
  }
  for (int i = 0; i < N; i++)
    rms_row(y + (size_t)i * C, rstd ? rstd + i : NULL, x + (size_t)i * C, w, C, eps, plus_one);
}

/* With n = x * r, r = (mean(x^2) + eps)^-1/2, y = n * w' (w' = w, 1 + w, or 1):
 *   g = dy * w',  dx = r * g - x * r^3 * sum(g * x) / C,  dw += sum_rows dy * n. */
void tn_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         const float *rstd, int N, int C, bool plus_one) {
  // dx, dy, x (N, C); w, dw (C); rstd (N) from the forward
  const float off = plus_one ? 1.0f : 0.0f;
#pragma omp parallel if ((size_t)N * C > 16384)
  {
#pragma omp for schedule(static) nowait
    for (int i = 0; i < N; i++) {
      const float *xi = x + (size_t)i * C, *dyi = dy + (size_t)i * C;
      float *dxi = dx + (size_t)i * C;
      const float r = rstd[i];
      float dot = 0.0f;
      if (w) {
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < C; c++) dot += dyi[c] * (w[c] + off) * xi[c];
      } else {
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < C; c++) dot += dyi[c] * xi[c];
      }
      const float k = r * r * r * dot / (float)C;
      if (w) {
#pragma omp simd
        for (int c = 0; c < C; c++) dxi[c] += r * dyi[c] * (w[c] + off) - k * xi[c];
      } else {
#pragma omp simd
        for (int c = 0; c < C; c++) dxi[c] += r * dyi[c] - k * xi[c];
      }
    }
    if (dw && w) {
      /* each thread owns a slice of columns: no races, a fixed summation order */
#pragma omp for schedule(static)
      for (int c0 = 0; c0 < C; c0 += 64) {
        const int c1 = c0 + 64 < C ? c0 + 64 : C;
        for (int i = 0; i < N; i++) {
          const float *xi = x + (size_t)i * C, *dyi = dy + (size_t)i * C;
          const float r = rstd[i];
#pragma omp simd
          for (int c = c0; c < c1; c++) dw[c] += dyi[c] * xi[c] * r;
        }
      }
    }
  }
}
