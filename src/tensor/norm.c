/* norm.c - RMSNorm (Llama/Qwen: x*w; Gemma: x*(1+w)), forward and backward.
 * Statistics in f32 per row, as the HF implementations compute them. */
#include <math.h>
#include "tensor/tensor.h"

void tn_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int C,
                        float eps, bool plus_one) {
  // y, x (N, C); w (C); rstd (N)
#pragma omp parallel for if (N > 8)
  for (int i = 0; i < N; i++) {
    const float *xi = x + (size_t)i * C;
    float *yi = y + (size_t)i * C;
    float ss = 0.0f;
    for (int c = 0; c < C; c++) ss += xi[c] * xi[c];
    float r = 1.0f / sqrtf(ss / C + eps);
    if (rstd) rstd[i] = r;
    if (!w)
      for (int c = 0; c < C; c++) yi[c] = xi[c] * r;
    else if (plus_one)
      for (int c = 0; c < C; c++) yi[c] = (xi[c] * r) * (1.0f + w[c]);
    else
      for (int c = 0; c < C; c++) yi[c] = (xi[c] * r) * w[c];
  }
}
