/* act.c - gated MLP activations: SiLU (Llama, Qwen) and GELU-tanh (Gemma),
 * forward and backward. exp/tanh go through kern.h's vectorisable expf so the
 * loops run in SIMD (error a few 1e-7 relative to libm).
 * Not for: the gate/up matmuls (linear.c). */
#include <math.h>
#include <omp.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f
#define CHUNK 4096

static inline float sigm(float x) { return 1.0f / (1.0f + tn__expf(-x)); }

TN_MV_INLINE void silu_fwd_body(float *h, const float *g, const float *u, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) h[i] = g[i] * sigm(g[i]) * u[i];
}
TN_MV_VOID(silu_fwd, (float *h, const float *g, const float *u, size_t n), (h, g, u, n))
TN_MV_INLINE void gelu_fwd_body(float *h, const float *g, const float *u, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float x = g[i];
    h[i] = 0.5f * x * (1.0f + tn__tanhf(GELU_K * (x + GELU_C * x * x * x))) * u[i];
  }
}
TN_MV_VOID(gelu_fwd, (float *h, const float *g, const float *u, size_t n), (h, g, u, n))

void tn_glu_forward(float *h, const float *gate, const float *up, size_t n, tn_act act) {
  // h, gate, up (n). Small, or inside a parallel region: on the calling thread
  if (n <= 65536 || omp_in_parallel()) {
    if (act == TN_ACT_SILU) silu_fwd(h, gate, up, n);
    else gelu_fwd(h, gate, up, n);
    return;
  }
#pragma omp parallel for schedule(static)
  for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
    size_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
    if (act == TN_ACT_SILU) silu_fwd(h + i0, gate + i0, up + i0, m);
    else gelu_fwd(h + i0, gate + i0, up + i0, m);
  }
}

/* h = act(g) * u:  dgate += dh * u * act'(g),  dup += dh * act(g).
 *   silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g)
 *   gelu_tanh'(g) = 0.5 (1 + t) + 0.5 g (1 - t^2) K (1 + 3 * 0.044715 g^2),
 *   t = tanh(K (g + 0.044715 g^3)), K = sqrt(2/pi) */
TN_MV_INLINE void silu_bwd_body(float *dg, float *du, const float *dh, const float *g, const float *u,
                               size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float x = g[i], s = sigm(x);
    dg[i] += dh[i] * u[i] * s * (1.0f + x * (1.0f - s));
    du[i] += dh[i] * x * s;
  }
}
TN_MV_VOID(silu_bwd, (float *dg, float *du, const float *dh, const float *g, const float *u, size_t n), (dg, du, dh, g, u, n))
TN_MV_INLINE void gelu_bwd_body(float *dg, float *du, const float *dh, const float *g, const float *u,
                               size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float x = g[i], t = tn__tanhf(GELU_K * (x + GELU_C * x * x * x));
    float d = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    dg[i] += dh[i] * u[i] * d;
    du[i] += dh[i] * 0.5f * x * (1.0f + t);
  }
}
TN_MV_VOID(gelu_bwd, (float *dg, float *du, const float *dh, const float *g, const float *u, size_t n), (dg, du, dh, g, u, n))

void tn_glu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up,
                     size_t n, tn_act act) {
  // dgate, dup, dh, gate, up (n); dgate and dup accumulate
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
    size_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
    if (act == TN_ACT_SILU) silu_bwd(dgate + i0, dup + i0, dh + i0, gate + i0, up + i0, m);
    else gelu_bwd(dgate + i0, dup + i0, dh + i0, gate + i0, up + i0, m);
  }
}
