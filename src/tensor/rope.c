/* rope.c - rotary position embeddings in the Hugging Face "rotate_half" layout
 * (element i pairs with i + D/2), with tables computed in f32 exactly as the HF
 * code does, so logits match to the last digits at long positions. */
#include <math.h>
#include <omp.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

void tn_rope_tables(float *cos_t, float *sin_t, const float *inv_freq, int maxT, int D) {
  // cos_t, sin_t (maxT, D/2); inv_freq (D/2)
  int h = D / 2;
  for (int t = 0; t < maxT; t++)
    for (int i = 0; i < h; i++) {
      float a = (float)t * inv_freq[i];  // f32 product, as torch does
      cos_t[(size_t)t * h + i] = cosf(a);
      sin_t[(size_t)t * h + i] = sinf(a);
    }
}

TN_MV_INLINE void rope_row_body(float *x, const float *c, const float *s, int nh, int D) {
  const int h = D / 2;
  for (int hh = 0; hh < nh; hh++) {
    float *v = x + (size_t)hh * D;
#pragma omp simd
    for (int j = 0; j < h; j++) {
      float a = v[j], b = v[j + h];
      v[j] = a * c[j] - b * s[j];
      v[j + h] = b * c[j] + a * s[j];
    }
  }
}
TN_MV_VOID(rope_row, (float *x, const float *c, const float *s, int nh, int D), (x, c, s, nh, D))

void tn_rope_forward(float *x, const int *pos, const float *cos_t, const float *sin_t, int N, int nh, int D) {
  // x (N, nh, D). Few rows or inside a parallel region: on the calling thread
  const size_t h = (size_t)(D / 2);
  if (N > 8 && !omp_in_parallel()) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) rope_row(x + (size_t)i * nh * D, cos_t + pos[i] * h, sin_t + pos[i] * h, nh, D);
    return;
  }
  for (int i = 0; i < N; i++) rope_row(x + (size_t)i * nh * D, cos_t + pos[i] * h, sin_t + pos[i] * h, nh, D);
}

/* The forward is an orthogonal rotation per pair (j, j + D/2); its transpose is
 * the rotation by -angle: da' = da c + db s, db' = db c - da s. */
void tn_rope_backward(float *dx, const int *pos, const float *cos_t, const float *sin_t, int N, int nh, int D) {
  // dx (N, nh, D), in place
  int h = D / 2;
#pragma omp parallel for if (N > 8)
  for (int i = 0; i < N; i++) {
    const float *c = cos_t + (size_t)pos[i] * h, *s = sin_t + (size_t)pos[i] * h;
    for (int hh = 0; hh < nh; hh++) {
      float *v = dx + ((size_t)i * nh + hh) * D;
#pragma omp simd
      for (int j = 0; j < h; j++) {
        float a = v[j], b = v[j + h];
        v[j] = a * c[j] + b * s[j];
        v[j + h] = b * c[j] - a * s[j];
      }
    }
  }
}
