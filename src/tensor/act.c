/* act.c - gated MLP activations: SiLU (Llama, Qwen) and GELU-tanh (Gemma). */
#include <math.h>
#include "tensor/tensor.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

static inline float silu(float x) { return x / (1.0f + expf(-x)); }
static inline float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
}

void tn_glu_forward(float *h, const float *gate, const float *up, size_t n, tn_act act) {
  // h, gate, up (n)
  if (act == TN_ACT_SILU) {
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) h[i] = silu(gate[i]) * up[i];
  } else {
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) h[i] = gelu_tanh(gate[i]) * up[i];
  }
}
