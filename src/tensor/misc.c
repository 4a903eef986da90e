/* misc.c - small elementwise kernels: soft-capping, adds, scales, logsumexp;
 * and the per-thread scratch buffers the other kernel files reuse (kern.h). */
#include <math.h>
#include <stdlib.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

static _Thread_local struct { void *p; size_t cap; } scr[TN_SCR_N];

void *tn__scratch(int slot, size_t bytes) {
  if (bytes <= scr[slot].cap) return scr[slot].p;
  size_t cap = bytes + bytes / 4 + 64;  /* grow with headroom: few reallocations */
  void *p = NULL;
  if (posix_memalign(&p, 64, cap) != 0) return NULL;
  free(scr[slot].p);
  scr[slot].p = p;
  scr[slot].cap = cap;
  return p;
}

void tn_tensor_scratch_release(void) {
  for (int i = 0; i < TN_SCR_N; i++) {
    free(scr[i].p);
    scr[i].p = NULL;
    scr[i].cap = 0;
  }
}

void tn_softcap_forward(float *x, size_t n, float cap) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

void tn_softcap_backward(float *dx, const float *y, size_t n, float cap) {
  // dx, y (n): d/dx cap*tanh(x/cap) = 1 - tanh^2 = 1 - (y/cap)^2
  const float ic = 1.0f / cap;
#pragma omp parallel for simd if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float t = y[i] * ic;
    dx[i] *= 1.0f - t * t;
  }
}

void tn_add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void tn_scale_inplace(float *y, float a, size_t n) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) y[i] *= a;
}

float tn_logsumexp(const float *x, int V) {
  float m = -INFINITY;
  for (int i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
  if (m == -INFINITY) return m;
  double s = 0;
  for (int i = 0; i < V; i++) s += expf(x[i] - m);
  return m + (float)log(s);
}

TN_MV_INLINE float tn_exp_shifted_mv_body(float *e, float *bsum, const float *x, int V, double *sum) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
#pragma omp simd
  for (int i = 0; i < V; i++) e[i] = tn__expf(x[i] - m);
  double s = 0;
  for (int b = 0; b < V; b += 16) {
    const int n = V - b < 16 ? V - b : 16;
    float t = 0.0f;
    for (int i = 0; i < n; i++) t += e[b + i];
    if (bsum) bsum[b / 16] = t;
    s += t;
  }
  *sum = s;
  return m;
}
TN_MV(float, tn_exp_shifted_mv, (float *e, float *bsum, const float *x, int V, double *sum), (e, bsum, x, V, sum))
float tn_exp_shifted(float *e, float *bsum, const float *x, int V, double *sum) { return tn_exp_shifted_mv(e, bsum, x, V, sum); }
