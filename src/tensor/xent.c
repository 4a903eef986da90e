/* xent.c - cross-entropy over the vocabulary, one row per token: the loss per
 * row and dlogits = (softmax - onehot) * row weight. Numerically stable (max
 * subtracted), sums in double, exp vectorised (kern.h).
 * Not for: masking or averaging policy (the caller's row_weight carries both,
 * e.g. 1/num_tokens on completion tokens, 0 elsewhere) nor DPO/KD losses. */
#include <math.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

#define BLK 2048 /* floats per block: max and exp sums read each block from L1 */

/* One pass over the row: max m and sum_j exp(x_j - m), block by block (each
 * block's max, then its exp sum, merged into the running pair). With d, the pass
 * also keeps each e_j = exp(x_j - mb) in d[j] (mb: the running max at its block,
 * stored in mb[b]), so the gradient is one multiply per element instead of a
 * second exp (d may be x: element j is read before it is written). */
TN_MV_INLINE void row_stats_body(float *d, float *mb, const float *x, int V, float *m_out, double *sum_out) {
  float m = -INFINITY;
  double tot = 0.0;
  for (int j0 = 0, b = 0; j0 < V; j0 += BLK, b++) {
    const int j1 = j0 + BLK < V ? j0 + BLK : V;
    float bm = -INFINITY;
#pragma omp simd reduction(max : bm)
    for (int j = j0; j < j1; j++) bm = x[j] > bm ? x[j] : bm;
    if (bm > m) {
      if (m > -INFINITY) tot *= exp((double)m - bm);
      m = bm;
    }
    float bs = 0.0f;
    if (d) {
      mb[b] = m;
#pragma omp simd reduction(+ : bs)
      for (int j = j0; j < j1; j++) {
        const float e = tn__expf(x[j] - m);
        d[j] = e;
        bs += e;
      }
    } else {
#pragma omp simd reduction(+ : bs)
      for (int j = j0; j < j1; j++) bs += tn__expf(x[j] - m);
    }
    tot += bs;
  }
  *m_out = m;
  *sum_out = tot;
}
TN_MV_VOID(row_stats, (float *d, float *mb, const float *x, int V, float *m_out, double *sum_out),
           (d, mb, x, V, m_out, sum_out))

TN_MV_INLINE void row_scale_body(float *d, int n, float f) {
#pragma omp simd
  for (int j = 0; j < n; j++) d[j] *= f;
}
TN_MV_VOID(row_scale, (float *d, int n, float f), (d, n, f))

#define MAXB 512 /* blocks whose maxima fit on the stack: V up to 1M */

/* loss (if loss) and dlogits (if d) of one row */
static void xent_row(float *loss, float *d, const float *x, int t, float w, int V) {
  if (t < 0) {
    if (loss) *loss = 0.0f;
    if (d)
      for (int j = 0; j < V; j++) d[j] = 0.0f;
    return;
  }
  float m, mb[MAXB];
  double sum;
  const float xt = x[t]; /* before d (which may be x) is written */
  if (d && w == 0.0f) {
    if (loss) {
      row_stats(NULL, NULL, x, V, &m, &sum);
      *loss = (float)(m + log(sum) - xt);
    }
    for (int j = 0; j < V; j++) d[j] = 0.0f;
    return;
  }
  if (d && (V + BLK - 1) / BLK > MAXB) { /* vocabularies over 1M: exp twice, no block maxima */
    row_stats(NULL, NULL, x, V, &m, &sum);
    if (loss) *loss = (float)(m + log(sum) - xt);
    const float a = (float)(w / sum);
    for (int j = 0; j < V; j++) d[j] = tn__expf(x[j] - m) * a;
  } else {
    row_stats(d, mb, x, V, &m, &sum);
    if (loss) *loss = (float)(m + log(sum) - xt);
    if (!d) return;
    /* d_j = exp(x_j - m) w / sum = e_j exp(mb - m) w / sum, block by block */
    for (int j0 = 0, b = 0; j0 < V; j0 += BLK, b++)
      row_scale(d + j0, (V - j0 < BLK ? V - j0 : BLK), (float)(exp((double)mb[b] - m) * w / sum));
  }
  d[t] = (float)(w * (exp((double)xt - m) / sum - 1.0)); /* exact near p_t = 1 */
}

void tn_xent_forward(float *loss_rows, const float *logits, const int *targets, int N, int V) {
  tn_xent_forward_backward(loss_rows, NULL, logits, targets, NULL, N, V);
}

void tn_xent_backward(float *dlogits, const float *logits, const int *targets,
                      const float *row_weight, int N, int V) {
  tn_xent_forward_backward(NULL, dlogits, logits, targets, row_weight, N, V);
}

void tn_xent_forward_backward(float *loss_rows, float *dlogits, const float *logits,
                              const int *targets, const float *row_weight, int N, int V) {
  // loss_rows, targets, row_weight (N); dlogits, logits (N, V) (may alias)
#pragma omp parallel for schedule(static) if ((size_t)N * V > 65536)
  for (int i = 0; i < N; i++)
    xent_row(loss_rows ? loss_rows + i : NULL, dlogits ? dlogits + (size_t)i * V : NULL,
             logits + (size_t)i * V, targets[i], row_weight ? row_weight[i] : 1.0f, V);
}
