/* loss_rl.c - per-token log-probabilities of sampled tokens under
 * softmax(logits / T) and their backward, GRPO group advantages, and the GRPO
 * policy loss (PPO-clipped ratio, token- or sequence-level (GSPO) importance
 * weights, KL to a reference with three estimators, three aggregation modes)
 * with d loss / d logp. Formulas and the TRL/Tunix conventions followed:
 * docs/losses.md.
 * Not for: running the model or sampling (src/rl/grpo.c), DPO/KD (loss_pref.c). */
#include <math.h>
#include <string.h>
#include "tensor/kern.h"
#include "train/losses.h"

/* ---- per-token log-probs ---- */

/* sum_{j0 <= j < j1} exp((x_j - m) / T): float lanes within blocks of 256 (16 adds
 * per AVX-512 lane), double across blocks. With d, each term is also stored in d[j]
 * (d may be x: element j is read before it is written). */
TN_MV_INLINE double exp_sum_body(float *d, const float *x, int j0, int j1, float m, float invT) {
  double tot = 0.0;
  for (int b0 = j0; b0 < j1; b0 += 256) {
    const int b1 = b0 + 256 < j1 ? b0 + 256 : j1;
    float bs = 0.0f;
    if (d) {
#pragma omp simd reduction(+ : bs)
      for (int j = b0; j < b1; j++) {
        const float e = tn__expf((x[j] - m) * invT);
        d[j] = e;
        bs += e;
      }
    } else {
#pragma omp simd reduction(+ : bs)
      for (int j = b0; j < b1; j++) bs += tn__expf((x[j] - m) * invT);
    }
    tot += bs;
  }
  return tot;
}
TN_MV(double, exp_sum, (float *d, const float *x, int j0, int j1, float m, float invT), (d, x, j0, j1, m, invT))

/* Row statistics for token t: m = max_j x_j, e_t = exp((x_t - m) / T) in double,
 * rest = sum over j != t (so 1 - p_t = rest / (rest + e_t) keeps its digits when
 * t dominates the row). With d, d[j] = exp((x_j - m) / T) for j != t (the backward
 * scales them: one exp per logit). */
TN_MV_INLINE void row_stats_t_body(float *d, const float *x, int V, float invT, int t, float *m_out, double *e_t,
                                   double *rest) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
  *m_out = m;
  *e_t = exp((double)(x[t] - m) * invT);
  *rest = exp_sum(d, x, 0, t, m, invT) + exp_sum(d, x, t + 1, V, m, invT);
}
TN_MV_VOID(row_stats_t, (float *d, const float *x, int V, float invT, int t, float *m_out, double *e_t, double *rest),
           (d, x, V, invT, t, m_out, e_t, rest))

TN_MV_INLINE void row_scale_body(float *d, int V, float a) {
#pragma omp simd
  for (int j = 0; j < V; j++) d[j] *= a;
}
TN_MV_VOID(row_scale, (float *d, int V, float a), (d, V, a))

void tn_token_logprobs(float *logp, const float *logits, const int *tok, int N, int V, float T) {
  // logp, tok (N); logits (N, V)
  const float invT = 1.0f / T;
#pragma omp parallel for schedule(static) if ((size_t)N * V > 65536)
  for (int i = 0; i < N; i++) {
    if (tok[i] < 0) { logp[i] = 0.0f; continue; }
    const float *x = logits + (size_t)i * V;
    float m;
    double et, rest;
    row_stats_t(NULL, x, V, invT, tok[i], &m, &et, &rest);
    logp[i] = (float)((double)(x[tok[i]] - m) * invT - log(et + rest));
  }
}

void tn_logp_backward(float *dlogits, const float *logits, const int *tok, const float *dlogp, int N, int V,
                      float T) {
  // dlogits, logits (N, V) (may alias); tok, dlogp (N)
  const float invT = 1.0f / T;
#pragma omp parallel for schedule(static) if ((size_t)N * V > 65536)
  for (int i = 0; i < N; i++) {
    const float *x = logits + (size_t)i * V;
    float *d = dlogits + (size_t)i * V;
    const int t = tok[i];
    if (t < 0 || dlogp[i] == 0.0f) {
      memset(d, 0, sizeof(float) * V);
      continue;
    }
    float m;
    double et, rest;
    row_stats_t(d, x, V, invT, t, &m, &et, &rest);
    const double sum = et + rest, g = (double)dlogp[i] * invT;
    row_scale(d, V, (float)(-g / sum)); /* d[t] (not an exp) is set below */
    d[t] = (float)(g * (rest / sum)); /* 1 - p_t, exact near p_t = 1 */
  }
}

/* ---- GRPO advantages ---- */

void tn_grpo_advantages(float *adv, const float *rewards, int n_groups, int G, tn_scale_rewards scale, float eps) {
  // adv, rewards (n_groups * G)
  const int n = n_groups * G;
  double bstd = 0.0;
  if (scale == TN_SCALE_BATCH && n > 1) {
    double mu = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++) mu += rewards[i];
    mu /= n;
    for (int i = 0; i < n; i++) ss += ((double)rewards[i] - mu) * ((double)rewards[i] - mu);
    bstd = sqrt(ss / (n - 1));
  }
  for (int g = 0; g < n_groups; g++) {
    const float *r = rewards + (size_t)g * G;
    float *a = adv + (size_t)g * G;
    double mu = 0.0, ss = 0.0;
    for (int i = 0; i < G; i++) mu += r[i];
    mu /= G;
    for (int i = 0; i < G; i++) ss += ((double)r[i] - mu) * ((double)r[i] - mu);
    const double gstd = G > 1 ? sqrt(ss / (G - 1)) : 0.0;
    const double den = scale == TN_SCALE_GROUP ? gstd + eps : scale == TN_SCALE_BATCH ? bstd + eps : 1.0;
    for (int i = 0; i < G; i++) a[i] = (float)(((double)r[i] - mu) / den);
  }
}

/* ---- GRPO loss ---- */

/* KL estimate for one token and its derivative w.r.t. logp */
static double kl_token(tn_kl_estimator k, double lp, double ref, double *dkl) {
  const double d = ref - lp;
  switch (k) {
  case TN_KL_K1: *dkl = 1.0; return lp - ref;
  case TN_KL_MSE: *dkl = lp - ref; return 0.5 * (lp - ref) * (lp - ref);
  case TN_KL_K3:
  default: {
    const double e = exp(d);
    *dkl = 1.0 - e;
    return e - d - 1.0;
  }
  }
}

/* Clipped surrogate for ratio r and advantage a: returns the per-token loss
 * -min(r a, clip(r) a) and sets *dr = d loss / d r and the clip flags. */
static double surrogate(double r, double a, double lo, double hi, double *dr, int *clip_lo, int *clip_hi) {
  *clip_lo = r < lo && a < 0;
  *clip_hi = r > hi && a > 0;
  if (*clip_lo || *clip_hi) {
    *dr = 0.0;
    return -(r < lo ? lo : hi) * a;
  }
  *dr = -a;
  return -r * a;
}

tn_status tn_grpo_loss(const tn_grpo_cfg *c, int S, const int *off, const float *logp, const float *old_logp,
                       const float *ref_logp, const float *adv, const float *seq_mask, float *dlogp,
                       tn_grpo_stats *st) {
  if (!c || S < 0 || (S > 0 && (!off || !adv || !seq_mask)))
    return tn_error(TN_ERR_ARG, "tn_grpo_loss: cfg, off, adv and seq_mask are required");
  if (S == 0) {
    if (st) memset(st, 0, sizeof *st);
    return TN_OK;
  }
  if (off[0] != 0) return tn_error(TN_ERR_ARG, "tn_grpo_loss: off[0] is %d, expected 0", off[0]);
  for (int s = 0; s < S; s++)
    if (off[s + 1] < off[s])
      return tn_error(TN_ERR_ARG, "tn_grpo_loss: off[%d] = %d < off[%d] = %d (offsets must not decrease)", s + 1,
                      off[s + 1], s, off[s]);
  const int ntok = off[S];
  if (ntok > 0 && (!logp || !old_logp || !dlogp))
    return tn_error(TN_ERR_ARG, "tn_grpo_loss: logp, old_logp and dlogp are required");
  if (c->token_adv && c->sequence_ratio)
    return tn_error(TN_ERR_ARG, "tn_grpo_loss: per-token advantages and a sequence-level ratio do not go together");
  if (c->beta != 0.0f && !ref_logp)
    return tn_error(TN_ERR_ARG, "tn_grpo_loss: beta = %g needs ref_logp", c->beta);
  if (c->agg == TN_AGG_SEQ_MEAN_TOKEN_SCALE && c->max_len <= 0)
    return tn_error(TN_ERR_ARG, "tn_grpo_loss: max_len = %d must be positive for sequence-mean-token-scale", c->max_len);
  if (c->agg < TN_AGG_SEQ_MEAN_TOKEN_MEAN || c->agg > TN_AGG_SEQ_MEAN_TOKEN_SCALE)
    return tn_error(TN_ERR_ARG, "tn_grpo_loss: unknown aggregation mode %d", (int)c->agg);
  if (!(c->epsilon >= 0.0f) || !(c->epsilon_high >= 0.0f))
    return tn_error(TN_ERR_ARG, "tn_grpo_loss: epsilon %g and epsilon_high %g must be >= 0", c->epsilon,
                    c->epsilon_high);

  /* tokens kept in the loss: all tokens of sequences with seq_mask != 0 */
  long kept_tok = 0;
  int kept_seq = 0;
  for (int s = 0; s < S; s++)
    if (seq_mask[s] != 0.0f) {
      kept_tok += off[s + 1] - off[s];
      kept_seq += off[s + 1] > off[s];
    }
  const double lo = 1.0 - c->epsilon, hi = 1.0 + c->epsilon_high, beta = c->beta;
  const bool use_ref = ref_logp != NULL;
  double loss = 0.0, kl_sum = 0.0, ratio_sum = 0.0, n_lo = 0.0, n_hi = 0.0, n_reg = 0.0;
  for (int s = 0; s < S; s++) {
    const int t0 = off[s], t1 = off[s + 1], n = t1 - t0;
    if (seq_mask[s] == 0.0f || n == 0) {
      for (int t = t0; t < t1; t++) dlogp[t] = 0.0f;
      continue;
    }
    /* aggregation weight of each token of this sequence (TRL: masked sequences
     * stay in S, and out of the token count) */
    double w;
    const double Sn = c->S_global > 0 ? c->S_global : S;
    switch (c->agg) {
    case TN_AGG_TOKEN_MEAN: w = 1.0 / (double)(c->kept_tok_global > 0 ? c->kept_tok_global : kept_tok); break;
    case TN_AGG_SEQ_MEAN_TOKEN_SCALE: w = 1.0 / (Sn * c->max_len); break;
    case TN_AGG_SEQ_MEAN_TOKEN_MEAN:
    default: w = 1.0 / (Sn * n); break;
    }
    const double a = adv[s];
    if (c->sequence_ratio) {
      /* GSPO: R = exp(mean_t(logp - old)), the same for all n tokens; the
       * sequence's surrogate enters each token's loss, so its weight is n*w,
       * and dR/dlogp_t = R / n. */
      double lr = 0.0;
      for (int t = t0; t < t1; t++) lr += (double)logp[t] - old_logp[t];
      const double R = exp(lr / n);
      double dr;
      int cl, ch;
      const double sl = surrogate(R, a, lo, hi, &dr, &cl, &ch);
      loss += n * w * sl;
      const double gpol = n * w * dr * R / n;
      for (int t = t0; t < t1; t++) dlogp[t] = (float)gpol;
      ratio_sum += R * n;
      n_lo += cl; n_hi += ch; n_reg += cl || ch;
    } else {
      for (int t = t0; t < t1; t++) {
        const double r = exp((double)logp[t] - old_logp[t]);
        double dr;
        int cl, ch;
        loss += w * surrogate(r, c->token_adv ? (double)c->token_adv[t] : a, lo, hi, &dr, &cl, &ch);
        dlogp[t] = (float)(w * dr * r);
        ratio_sum += r;
        n_lo += cl; n_hi += ch; n_reg += cl || ch;
      }
    }
    if (use_ref) {
      for (int t = t0; t < t1; t++) {
        double dkl;
        const double kl = kl_token(c->kl, logp[t], ref_logp[t], &dkl);
        kl_sum += kl;
        if (beta != 0.0) {
          loss += w * beta * kl;
          dlogp[t] = (float)((double)dlogp[t] + w * beta * dkl);
        }
      }
    }
  }
  if (st) {
    const double nt = kept_tok > 0 ? (double)kept_tok : 1.0;
    const double nclip = c->sequence_ratio ? (kept_seq > 0 ? kept_seq : 1) : nt;
    st->loss = loss;
    st->kl_mean = kl_sum / nt;
    st->ratio_mean = ratio_sum / nt;
    st->clip_low = n_lo / nclip;
    st->clip_high = n_hi / nclip;
    st->clip_region = n_reg / nclip;
  }
  return TN_OK;
}
