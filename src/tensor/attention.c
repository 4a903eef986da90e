/* attention.c - causal (optionally sliding-window, optionally soft-capped)
 * grouped-query attention over keys/values stored per sequence, forward and
 * backward. One code path serves training (a batch of whole sequences), prefill
 * and KV-cache decoding (rows whose keys live in a cache slot). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

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

/* Backward, in two passes so that no two threads write the same memory:
 *  A) per (row i, head h): dP_t = dout . v_t, delta = sum_t P_t dP_t,
 *     dS_t = P_t (dP_t - delta) [* (1 - (c_t/cap)^2) with soft-cap, c_t the capped
 *     score recomputed from q, k], dq += scale * sum_t dS_t k_t. dS is kept in a
 *     per-thread scratch (N, H, Tmax).
 *  B) per (sequence, kv head, tile of key positions): over the rows of that
 *     sequence and the G query heads sharing the kv head,
 *     dv_t += P_t dout, dk_t += scale * dS_t q.
 * Both passes sum in a fixed order: results do not depend on the thread count. */
#define KEY_TILE 32

void tn_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                           const float *q, const float *k, const float *v, const tn_attn_shape *s) {
  // dq, dout, q (N, H, D); dk, dv, k, v: per sequence (Tmax, KV, D); att (N, H, Tmax)
  const int N = s->N, H = s->H, D = s->D, KV = s->KV, G = H / KV, Tm = s->Tmax;
  const size_t kvrow = (size_t)KV * D;
  float *ds = tn__scratch(TN_SCR_ATT_DS, sizeof(float) * (size_t)N * H * Tm); // (N, H, Tmax)
  if (!ds) abort();

#pragma omp parallel for collapse(2) schedule(dynamic, 4)
  for (int i = 0; i < N; i++) {
    for (int h = 0; h < H; h++) {
      const int p = s->pos[i], lo = row_lo(s, p), kh = h / G;
      const size_t ih = (size_t)i * H + h;
      const float *qi = q + ih * D, *doi = dout + ih * D, *P = att + ih * Tm;
      const float *ks = k + (size_t)s->seq[i] * s->seq_stride + (size_t)kh * D;
      const float *vs = v + (size_t)s->seq[i] * s->seq_stride + (size_t)kh * D;
      float *dsi = ds + ih * Tm;
      float delta = 0.0f;
      for (int t = lo; t <= p; t++) {
        float dp = dot(doi, vs + t * kvrow, D);
        dsi[t] = dp;
        delta += P[t] * dp;
      }
      float *dqi = dq + ih * D;
      for (int t = lo; t <= p; t++) {
        float g = P[t] * (dsi[t] - delta);
        if (s->softcap > 0) {
          float th = tanhf(dot(qi, ks + t * kvrow, D) * s->scale / s->softcap);
          g *= 1.0f - th * th;
        }
        dsi[t] = g;
        axpy(dqi, g * s->scale, ks + t * kvrow, D);
      }
    }
  }

  /* group rows by sequence (counting sort, stable: rows keep their order) */
  int S = 0;
  for (int i = 0; i < N; i++) S = s->seq[i] + 1 > S ? s->seq[i] + 1 : S;
  int *rows = tn__scratch(TN_SCR_ATT_ROWS, sizeof(int) * ((size_t)N + 2 * (S + 1)));
  if (!rows) abort();
  int *off = rows + N, *tend = off + S + 1; // off (S+1): row list start; tend (S): 1 + max pos
  for (int j = 0; j <= S; j++) off[j] = 0, tend[j] = 0;
  for (int i = 0; i < N; i++) {
    off[s->seq[i] + 1]++;
    if (s->pos[i] + 1 > tend[s->seq[i]]) tend[s->seq[i]] = s->pos[i] + 1;
  }
  for (int j = 0; j < S; j++) off[j + 1] += off[j];
  {
    int *fill = tn__scratch(TN_SCR_ATT_DELTA, sizeof(int) * (size_t)(S + 1));
    if (!fill) abort();
    memcpy(fill, off, sizeof(int) * (size_t)(S + 1));
    for (int i = 0; i < N; i++) rows[fill[s->seq[i]]++] = i;
  }
  /* tasks (sequence, kv head, key tile): enumerate by a flat index */
  long ntask = 0;
  for (int j = 0; j < S; j++) ntask += (long)KV * ((tend[j] + KEY_TILE - 1) / KEY_TILE);

#pragma omp parallel for schedule(dynamic, 1)
  for (long task = 0; task < ntask; task++) {
    int j = 0;
    long rem = task;
    for (;; j++) { /* S is small: a linear scan is fine */
      long nt = (long)KV * ((tend[j] + KEY_TILE - 1) / KEY_TILE);
      if (rem < nt) break;
      rem -= nt;
    }
    const int ntile = (tend[j] + KEY_TILE - 1) / KEY_TILE;
    const int kh = (int)(rem / ntile), t0 = (int)(rem % ntile) * KEY_TILE;
    const int t1 = t0 + KEY_TILE < tend[j] ? t0 + KEY_TILE : tend[j];
    float *dks = dk + (size_t)j * s->seq_stride + (size_t)kh * D;
    float *dvs = dv + (size_t)j * s->seq_stride + (size_t)kh * D;
    for (int r = off[j]; r < off[j + 1]; r++) {
      const int i = rows[r], p = s->pos[i], lo = row_lo(s, p);
      const int a = lo > t0 ? lo : t0, b = p + 1 < t1 ? p + 1 : t1;
      if (a >= b) continue;
      for (int h = kh * G; h < (kh + 1) * G; h++) {
        const size_t ih = (size_t)i * H + h;
        const float *qi = q + ih * D, *doi = dout + ih * D, *P = att + ih * Tm, *dsi = ds + ih * Tm;
        for (int t = a; t < b; t++) {
          axpy(dvs + t * kvrow, P[t], doi, D);
          axpy(dks + t * kvrow, dsi[t] * s->scale, qi, D);
        }
      }
    }
  }
}
