/* xent.c - cross-entropy over the vocabulary, one row per token: the loss per
 * row and dlogits = (softmax - onehot) * row weight. Numerically stable (max
 * subtracted), sums in double, exp vectorised (kern.h).
 * Not for: masking or averaging policy (the caller's row_weight carries both,
 * e.g. 1/num_tokens on completion tokens, 0 elsewhere) nor DPO/KD losses. */
#include <math.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

TN_CLONES static float row_max(const float *x, int V) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
  return m;
}

/* sum_j exp(x_j - m), in blocks of float sums added in double */
TN_CLONES static double row_sumexp(const float *x, int V, float m) {
  double tot = 0.0;
  for (int j0 = 0; j0 < V; j0 += 1024) {
    const int j1 = j0 + 1024 < V ? j0 + 1024 : V;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = j0; j < j1; j++) s += tn__expf(x[j] - m);
    tot += s;
  }
  return tot;
}

TN_CLONES static void row_grad(float *d, const float *x, int V, float m, float a) {
  // d_j = exp(x_j - m) * a   (a = weight / sum)
#pragma omp simd
  for (int j = 0; j < V; j++) d[j] = tn__expf(x[j] - m) * a;
}

void tn_xent_forward(float *loss_rows, const float *logits, const int *targets, int N, int V) {
  // loss_rows (N); logits (N, V); targets (N)
#pragma omp parallel for schedule(static) if ((size_t)N * V > 65536)
  for (int i = 0; i < N; i++) {
    const float *x = logits + (size_t)i * V;
    if (targets[i] < 0) {
      loss_rows[i] = 0.0f;
      continue;
    }
    float m = row_max(x, V);
    double lse = m + log(row_sumexp(x, V, m));
    loss_rows[i] = (float)(lse - x[targets[i]]);
  }
}

void tn_xent_backward(float *dlogits, const float *logits, const int *targets,
                      const float *row_weight, int N, int V) {
  // dlogits, logits (N, V) (may alias); targets, row_weight (N); dlogits is overwritten
#pragma omp parallel for schedule(static) if ((size_t)N * V > 65536)
  for (int i = 0; i < N; i++) {
    const float *x = logits + (size_t)i * V;
    float *d = dlogits + (size_t)i * V;
    const float w = row_weight ? row_weight[i] : 1.0f;
    if (targets[i] < 0 || w == 0.0f) {
      for (int j = 0; j < V; j++) d[j] = 0.0f;
      continue;
    }
    const int t = targets[i];
    const float m = row_max(x, V);
    const float xt = x[t];
    const double sum = row_sumexp(x, V, m);
    row_grad(d, x, V, m, (float)(w / sum));
    d[t] = (float)(w * (exp((double)xt - m) / sum - 1.0)); /* exact near p_t = 1 */
  }
}
