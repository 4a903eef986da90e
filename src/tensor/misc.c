/* misc.c - small elementwise kernels: soft-capping, adds, scales, logsumexp. */
#include <math.h>
#include "tensor/tensor.h"

void tn_softcap_forward(float *x, size_t n, float cap) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
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
