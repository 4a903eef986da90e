/* loss_pref.c - preference and distillation loss heads: DPO (sigmoid with
 * label smoothing, IPO, hinge, robust) and ORPO over per-response log-prob
 * sums/averages, and logit distillation (T^2-scaled KL or TRL GKD's generalised
 * JSD, optional teacher top-k support, plus CE on labels) with the gradient
 * w.r.t. the student logits. Sums in double. Formulas: docs/losses.md.
 * Not for: computing the log-probs (tn_token_logprobs) or running models. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "train/losses.h"

/* log sigmoid(z) = -softplus(-z), stable for any z */
static double log_sigmoid(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); }
static double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + exp(-z));
  const double e = exp(z);
  return e / (1.0 + e);
}

/* ---- DPO family ---- */

tn_status tn_dpo_loss(const tn_dpo_cfg *c, int n, const float *pc, const float *pr, const float *rc, const float *rr,
                      float *d_pc, float *d_pr, tn_dpo_stats *st) {
  if (!c || n <= 0 || !pc || !pr || !rc || !rr || !d_pc || !d_pr)
    return tn_error(TN_ERR_ARG, "tn_dpo_loss: n = %d pairs; cfg, log-probs and gradients are required", n);
  const double beta = c->beta, ls = c->label_smoothing;
  if (!(beta > 0)) return tn_error(TN_ERR_ARG, "tn_dpo_loss: beta = %g must be positive", beta);
  if (c->type == TN_DPO_SIGMOID && !(ls >= 0 && ls <= 1))
    return tn_error(TN_ERR_ARG, "tn_dpo_loss: label_smoothing = %g must be in [0, 1]", ls);
  if (c->type == TN_DPO_ROBUST && !(ls >= 0 && ls < 0.5))
    return tn_error(TN_ERR_ARG, "tn_dpo_loss: label_smoothing = %g must be in [0, 0.5) for the robust loss", ls);
  if (c->type < TN_DPO_SIGMOID || c->type > TN_DPO_ROBUST)
    return tn_error(TN_ERR_ARG, "tn_dpo_loss: unknown loss type %d", (int)c->type);
  double loss = 0, rch = 0, rrj = 0, acc = 0;
  for (int i = 0; i < n; i++) {
    const double h = ((double)pc[i] - pr[i]) - ((double)rc[i] - rr[i]);
    const double z = beta * h;
    double l, dh; /* loss of the pair and d l / d h */
    switch (c->type) {
    case TN_DPO_IPO: {
      const double u = h - 1.0 / (2.0 * beta);
      l = u * u;
      dh = 2.0 * u;
      break;
    }
    case TN_DPO_HINGE:
      l = 1.0 - z > 0 ? 1.0 - z : 0.0;
      dh = 1.0 - z > 0 ? -beta : 0.0;
      break;
    case TN_DPO_ROBUST:
      l = (-(1 - ls) * log_sigmoid(z) + ls * log_sigmoid(-z)) / (1 - 2 * ls);
      dh = beta * (-(1 - ls) * sigmoid(-z) - ls * sigmoid(z)) / (1 - 2 * ls);
      break;
    case TN_DPO_SIGMOID:
    default:
      l = -(1 - ls) * log_sigmoid(z) - ls * log_sigmoid(-z);
      dh = beta * (-(1 - ls) * sigmoid(-z) + ls * sigmoid(z));
      break;
    }
    loss += l;
    d_pc[i] = (float)(dh / n);
    d_pr[i] = (float)(-dh / n);
    const double cr = beta * ((double)pc[i] - rc[i]), rj = beta * ((double)pr[i] - rr[i]);
    rch += cr;
    rrj += rj;
    acc += cr > rj;
  }
  if (st) {
    memset(st, 0, sizeof *st);
    st->loss = loss / n;
    st->reward_chosen = rch / n;
    st->reward_rejected = rrj / n;
    st->margin = (rch - rrj) / n;
    st->accuracy = acc / n;
  }
  return TN_OK;
}

/* log(1 - exp(a)) for a < 0, accurate near 0 */
static double log1mexp(double a) { return a > -0.693147 ? log(-expm1(a)) : log1p(-exp(a)); }

tn_status tn_orpo_loss_tok(float lambda, int n, const float *ac, const float *ar, const int *len_c, float *d_ac,
                           float *d_ar, tn_dpo_stats *st) {
  if (n <= 0 || !ac || !ar || !d_ac || !d_ar)
    return tn_error(TN_ERR_ARG, "tn_orpo_loss: n = %d pairs; log-probs and gradients are required", n);
  double ntok = 0;
  if (len_c) {
    for (int i = 0; i < n; i++) {
      if (len_c[i] < 0) return tn_error(TN_ERR_ARG, "tn_orpo_loss: len_c[%d] = %d is negative", i, len_c[i]);
      ntok += len_c[i];
    }
    if (ntok <= 0) return tn_error(TN_ERR_ARG, "tn_orpo_loss: the chosen responses have no tokens");
  }
  double nll = 0, lsum = 0, lo_sum = 0, rch = 0, rrj = 0, acc = 0;
  for (int i = 0; i < n; i++) {
    /* length-averaged log-probs are < 0; one exactly 0 (p = 1 in float) would
     * make log(1 - p) infinite: clamp to -1e-7 (gradient passed straight through) */
    const double a = ac[i] < -1e-7f ? ac[i] : -1e-7, b = ar[i] < -1e-7f ? ar[i] : -1e-7;
    const double lo = (a - b) - (log1mexp(a) - log1mexp(b));
    const double w_nll = len_c ? len_c[i] / ntok : 1.0 / n;
    nll += -(double)ac[i] * w_nll;
    lsum += log_sigmoid(lo);
    lo_sum += lo;
    /* d/dlo of -lambda/n log sigmoid(lo) = -lambda/n sigmoid(-lo);
     * dlo/da = 1 / (1 - e^a), dlo/db = -1 / (1 - e^b) */
    const double g = -(double)lambda / n * sigmoid(-lo);
    d_ac[i] = (float)(-w_nll + g / -expm1(a));
    d_ar[i] = (float)(-g / -expm1(b));
    rch += (double)lambda * ac[i];
    rrj += (double)lambda * ar[i];
    acc += (double)lambda * ac[i] > (double)lambda * ar[i];
  }
  if (st) {
    memset(st, 0, sizeof *st);
    st->loss = nll - lambda * lsum / n;
    st->reward_chosen = rch / n;
    st->reward_rejected = rrj / n;
    st->margin = (rch - rrj) / n;
    st->accuracy = acc / n;
    st->nll = nll;
    st->log_odds_ratio = lsum / n;
    st->log_odds_chosen = lo_sum / n;
  }
  return TN_OK;
}

tn_status tn_orpo_loss(float lambda, int n, const float *ac, const float *ar, float *d_ac, float *d_ar,
                       tn_dpo_stats *st) {
  return tn_orpo_loss_tok(lambda, n, ac, ar, NULL, d_ac, d_ar, st);
}

/* ---- distillation ---- */

/* indices of the k largest of x (V) into idx (k), any order; ties to the lower index */
static void top_k(const float *x, int V, int k, int *idx) {
  /* min-heap of (value, index) on idx, root = the weakest kept */
#define WEAKER(a, b) (x[a] < x[b] || (x[a] == x[b] && (a) > (b)))
  int n = 0;
  for (int j = 0; j < V; j++) {
    int i;
    if (n < k) {
      i = n++;
      idx[i] = j;
      while (i > 0 && WEAKER(idx[i], idx[(i - 1) / 2])) {
        int p = (i - 1) / 2, t = idx[p];
        idx[p] = idx[i];
        idx[i] = t;
        i = p;
      }
    } else if (WEAKER(idx[0], j)) {
      idx[0] = j;
      i = 0;
      for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && WEAKER(idx[l], idx[m])) m = l;
        if (r < k && WEAKER(idx[r], idx[m])) m = r;
        if (m == i) break;
        int t = idx[m];
        idx[m] = idx[i];
        idx[i] = t;
        i = m;
      }
    }
  }
#undef WEAKER
}

/* log_softmax of x (n) into y, in double */
static void log_softmax_d(double *y, const double *x, int n) {
  double m = -INFINITY, s = 0;
  for (int j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  for (int j = 0; j < n; j++) s += exp(x[j] - m);
  const double lse = m + log(s);
  for (int j = 0; j < n; j++) y[j] = x[j] - lse;
}

/* One row: returns alpha * D + (1 - alpha) * CE and writes w * d/dz into d (V). */
static double kd_row(const tn_kd_cfg *c, int V, const float *z, const float *tz, int label, double w, float *d,
                     double *scr, int *idx) {
  const int K = c->top_k > 0 && c->top_k < V ? c->top_k : V;
  double *ls = scr, *lt = scr + K, *g = scr + 2 * K; /* (K) each: student, teacher log-probs, dD/ds */
  const double invT = 1.0 / c->T, alpha = c->alpha;
  if (K < V) top_k(tz, V, K, idx);
  for (int j = 0; j < K; j++) {
    const int v = K < V ? idx[j] : j;
    ls[j] = z[v] * invT;
    lt[j] = tz[v] * invT;
  }
  log_softmax_d(ls, ls, K);
  log_softmax_d(lt, lt, K);
  double D = 0;
  const double jb = c->jsd_beta;
  if (jb < 0 || jb == 0) { /* KL(teacher || student) (x T^2 when jsd_beta < 0) */
    const double sc = jb < 0 ? (double)c->T * c->T : 1.0;
    for (int j = 0; j < K; j++) {
      const double p = exp(lt[j]), q = exp(ls[j]);
      D += p * (lt[j] - ls[j]);
      g[j] = sc * (q - p);
    }
    D *= sc;
  } else {
    /* beta = 1: KL(student || teacher), h = log q - log p;
     * else mixture m = (1 - b) q + b p, D = b KL(p||m) + (1 - b) KL(q||m),
     * dD/dq_k = (1 - b) log(q_k / m_k) = h_k; then through softmax:
     * dD/ds_j = q_j (h_j - sum_k q_k h_k) */
    const double b = jb, l1b = log1p(-b), lb = log(b);
    double qh = 0;
    for (int j = 0; j < K; j++) {
      const double q = exp(ls[j]);
      double h;
      if (b == 1.0) {
        h = ls[j] - lt[j];
        D += q * h;
      } else {
        const double x1 = l1b + ls[j], x2 = lb + lt[j];
        const double lm = x1 > x2 ? x1 + log1p(exp(x2 - x1)) : x2 + log1p(exp(x1 - x2));
        D += b * exp(lt[j]) * (lt[j] - lm) + (1 - b) * q * (ls[j] - lm);
        h = (1 - b) * (ls[j] - lm);
      }
      g[j] = h;
      qh += q * h;
    }
    for (int j = 0; j < K; j++) g[j] = exp(ls[j]) * (g[j] - qh);
  }
  /* gradient: distillation part (zero outside the top-k set) */
  memset(d, 0, sizeof(float) * V);
  const double gs = w * alpha * invT;
  double ce = 0;
  if (label >= 0 && alpha != 1.0) {
    /* CE on the full vocabulary at T = 1: d/dz = softmax(z) - onehot */
    double m = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) m = z[v] > m ? z[v] : m;
    for (int v = 0; v < V; v++) s += exp((double)z[v] - m);
    const double lse = m + log(s), wc = w * (1 - alpha);
    ce = lse - z[label];
    for (int v = 0; v < V; v++) d[v] = (float)(wc * exp((double)z[v] - lse));
    d[label] = (float)((double)d[label] - wc);
  }
  for (int j = 0; j < K; j++) {
    const int v = K < V ? idx[j] : j;
    d[v] = (float)((double)d[v] + gs * g[j]);
  }
  return alpha * D + (1 - alpha) * ce;
}

tn_status tn_kd_loss(const tn_kd_cfg *c, int N, int V, const float *student, const float *teacher, const int *labels,
                     const float *mask, float *dstudent, double *loss) {
  if (!c || N < 0 || V <= 0 || (N > 0 && (!student || !teacher || !mask || !dstudent)))
    return tn_error(TN_ERR_ARG, "tn_kd_loss: cfg, logits, mask and dstudent are required (N = %d, V = %d)", N, V);
  if (!(c->T > 0)) return tn_error(TN_ERR_ARG, "tn_kd_loss: temperature T = %g must be positive", c->T);
  if (!(c->alpha >= 0 && c->alpha <= 1)) return tn_error(TN_ERR_ARG, "tn_kd_loss: alpha = %g must be in [0, 1]", c->alpha);
  if (c->jsd_beta > 1 || isnan(c->jsd_beta))
    return tn_error(TN_ERR_ARG, "tn_kd_loss: jsd_beta = %g must be in [0, 1] (or < 0 for plain KL)", c->jsd_beta);
  if (c->top_k < 0) return tn_error(TN_ERR_ARG, "tn_kd_loss: top_k = %d must be >= 0", c->top_k);
  if (labels)
    for (int i = 0; i < N; i++)
      if (labels[i] >= V) return tn_error(TN_ERR_ARG, "tn_kd_loss: labels[%d] = %d is outside the vocabulary (%d)", i, labels[i], V);
  long M = 0;
  for (int i = 0; i < N; i++) M += mask[i] != 0.0f;
  const double w = M > 0 ? 1.0 / M : 0.0;
  const int K = c->top_k > 0 && c->top_k < V ? c->top_k : V;
  const int nth = tn_num_threads();
  double *scr = malloc(sizeof(double) * (3 * (size_t)K * nth + (size_t)N));
  int *idx = malloc(sizeof(int) * (size_t)K * nth);
  if (!scr || !idx) {
    free(scr);
    free(idx);
    return tn_error(TN_ERR_NOMEM, "tn_kd_loss: scratch for %d threads x %d entries", nth, K);
  }
  double *row = scr + 3 * (size_t)K * nth; /* (N) row losses, summed in order: no dependence on threads */
#pragma omp parallel for schedule(dynamic, 4) num_threads(nth) if ((size_t)N * V > 16384)
  for (int i = 0; i < N; i++) {
    float *d = dstudent + (size_t)i * V;
    row[i] = 0.0;
    if (mask[i] == 0.0f) {
      memset(d, 0, sizeof(float) * V);
      continue;
    }
    const int th = omp_get_thread_num();
    row[i] = kd_row(c, V, student + (size_t)i * V, teacher + (size_t)i * V, labels ? labels[i] : -1, w, d,
                    scr + (size_t)3 * K * th, idx + (size_t)K * th);
  }
  double tot = 0;
  for (int i = 0; i < N; i++) tot += row[i];
  free(scr);
  free(idx);
  if (loss) *loss = tot * w;
  return TN_OK;
}
