/* attention.c - causal (optionally sliding-window, optionally soft-capped)
 * grouped-query attention over keys/values stored per sequence, forward and
 * backward. One code path serves training (a batch of whole sequences), prefill
 * and KV-cache decoding (rows whose keys live in a cache slot). */
#include <math.h>
#include <stdlib.h>
#include "tensor/tensor.h"

#define TN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

TN_CLONES static float dot(const float *a, const float *b, int n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}
TN_CLONES static void axpy(float *y, float a, const float *x, int n) {
#pragma omp simd
  for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static inline int row_lo(const tn_attn_shape *s, int p) {
  int lo = s->window > 0 ? p - s->window + 1 : 0;
  return lo < 0 ? 0 : lo;
}

void tn_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const tn_attn_shape *s) {
  // out, q (N, H, D); k, v: sequence s at k + s*seq_stride, (Tmax, KV, D); att (N, H, Tmax)
  const int H = s->H, D = s->D, KV = s->KV, G = H / KV;
  const size_t kvrow = (size_t)KV * D;
#pragma omp parallel
  {
    float *scratch = att ? NULL : malloc(sizeof(float) * (size_t)s->Tmax);
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int i = 0; i < s->N; i++) {
      for (int h = 0; h < H; h++) {
        const int p = s->pos[i], lo = row_lo(s, p), kh = h / G;
        const float *qi = q + ((size_t)i * H + h) * D;
        const float *ks = k + (size_t)s->seq[i] * s->seq_stride + (size_t)kh * D;
        const float *vs = v + (size_t)s->seq[i] * s->seq_stride + (size_t)kh * D;
        float *a = att ? att + ((size_t)i * H + h) * s->Tmax : scratch;
        float mx = -INFINITY;
        for (int t = lo; t <= p; t++) {
          float sc = dot(qi, ks + t * kvrow, D) * s->scale;
          if (s->softcap > 0) sc = s->softcap * tanhf(sc / s->softcap);
          a[t] = sc;
          mx = sc > mx ? sc : mx;
        }
        float sum = 0.0f;
        for (int t = lo; t <= p; t++) {
          a[t] = expf(a[t] - mx);
          sum += a[t];
        }
        float inv = 1.0f / sum;
        float *o = out + ((size_t)i * H + h) * D;
        for (int d = 0; d < D; d++) o[d] = 0.0f;
        for (int t = lo; t <= p; t++) {
          a[t] *= inv;
          axpy(o, a[t], vs + t * kvrow, D);
        }
        if (att) { /* keep the row well-defined outside the attended range */
          for (int t = 0; t < lo; t++) a[t] = 0.0f;
          for (int t = p + 1; t < s->Tmax; t++) a[t] = 0.0f;
        }
      }
    }
    free(scratch);
  }
}
