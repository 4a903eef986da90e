/* losses.h - the loss heads of the alignment trainers as pure functions over
 * per-token log-probabilities (GRPO, DPO family) or logits (distillation), each
 * returning the loss, its gradient, and metrics. Formulas: docs/losses.md.
 * The trainers turn d loss / d logp(token) into dlogits with tn_logp_backward.
 * Not for: running the model (trainers), rewards (src/rl). */
#ifndef TN_LOSSES_H
#define TN_LOSSES_H
#include <stdbool.h>
#include "base/base.h"

/* ---- per-token log-probs ---- */
/* logp[i] = log_softmax(logits_i / T)[tok[i]] for rows with tok[i] >= 0 (else 0).
 * logits (N, V) are not modified. T = 1 for no temperature. */
void tn_token_logprobs(float *logp, const float *logits, const int *tok, int N, int V, float T);
/* dlogits_i (V) = dlogp[i] * (onehot(tok_i) - softmax(logits_i / T)) / T, OVERWRITTEN;
 * rows with tok < 0 or dlogp == 0 get zeros. May alias logits. */
void tn_logp_backward(float *dlogits, const float *logits, const int *tok, const float *dlogp, int N, int V, float T);

/* ---- GRPO ---- */
typedef enum { TN_SCALE_GROUP = 0, TN_SCALE_BATCH, TN_SCALE_NONE } tn_scale_rewards;
/* advantages (n_groups*G): A = (r - mean_group) / (std + eps), std = sample std (n-1)
 * of the group (GROUP), of the whole batch (BATCH), or no division (NONE). */
void tn_grpo_advantages(float *adv, const float *rewards, int n_groups, int G, tn_scale_rewards scale, float eps);

typedef enum { TN_KL_K1 = 0, TN_KL_K3, TN_KL_MSE } tn_kl_estimator;
typedef enum {
  TN_AGG_SEQ_MEAN_TOKEN_MEAN = 0, /* Tunix default: mean over each sequence's tokens, then over sequences */
  TN_AGG_TOKEN_MEAN,              /* DAPO / BNPO: mean over all tokens of the batch */
  TN_AGG_SEQ_MEAN_TOKEN_SCALE     /* Dr.GRPO: sum over tokens / (num sequences * max_len) */
} tn_loss_agg;

typedef struct {
  float epsilon, epsilon_high;    /* clip range [1 - epsilon, 1 + epsilon_high] */
  float beta;                     /* KL coefficient (0 = no KL term, ref_logp unused) */
  tn_kl_estimator kl;
  tn_loss_agg agg;
  int max_len;                    /* for TN_AGG_SEQ_MEAN_TOKEN_SCALE */
  bool sequence_ratio;            /* GSPO: one importance ratio per sequence */
  /* data-parallel: the normalisers of the global batch when this call sees one rank's
   * share (0: this call's S and kept tokens). The loss and dlogp are then this share's
   * part of the global loss: their sums over the ranks are the global batch's. */
  int S_global;
  long kept_tok_global;
  /* PPO: per-token advantages (tokens, flat like logp) used instead of adv[s] (NULL: adv);
   * not with sequence_ratio */
  const float *token_adv;
} tn_grpo_cfg;

typedef struct {
  double loss, kl_mean, clip_low, clip_high, clip_region, ratio_mean;
} tn_grpo_stats;

/* S sequences; sequence s has tokens [off[s], off[s+1]) in the flat per-token arrays.
 * logp: current policy; old_logp: policy at rollout time; ref_logp: reference (NULL when
 * beta == 0); adv (S); seq_mask (S): 0 drops a sequence (e.g. truncated) from the loss.
 * dlogp (tokens) receives d loss / d logp (overwritten). A dropped sequence's tokens leave
 * the loss but it still counts in S for the two sequence-mean modes (TRL's
 * mask_truncated_completions); TOKEN_MEAN divides by the kept tokens. Stats: kl_mean and
 * ratio_mean are means over kept tokens (0 when none; kl_mean 0 without ref_logp); clip
 * fractions over kept tokens, or over kept non-empty sequences with sequence_ratio. */
tn_status tn_grpo_loss(const tn_grpo_cfg *c, int S, const int *off, const float *logp, const float *old_logp,
                       const float *ref_logp, const float *adv, const float *seq_mask, float *dlogp,
                       tn_grpo_stats *st);

/* ---- DPO family ---- */
typedef enum { TN_DPO_SIGMOID = 0, TN_DPO_IPO, TN_DPO_HINGE, TN_DPO_ROBUST } tn_dpo_type;
typedef struct {
  tn_dpo_type type;
  float beta, label_smoothing;
} tn_dpo_cfg;
typedef struct {
  double loss, reward_chosen, reward_rejected, margin, accuracy;
  double nll, log_odds_ratio, log_odds_chosen; /* ORPO only: NLL term, mean log sigmoid(log_odds), mean log_odds */
} tn_dpo_stats;
/* n pairs of SUMMED response log-probs: policy chosen/rejected (pc, pr) and reference
 * (rc, rr). Loss is the mean over pairs; d_pc, d_pr (n) get d loss / d pc, pr.
 * (TRL feeds IPO length-AVERAGED log-probs instead; the formula is the same.)
 * Rewards in the stats: beta (pc - rc), beta (pr - rr); accuracy: chosen > rejected. */
tn_status tn_dpo_loss(const tn_dpo_cfg *c, int n, const float *pc, const float *pr, const float *rc, const float *rr,
                      float *d_pc, float *d_pr, tn_dpo_stats *st);
/* ORPO over LENGTH-AVERAGED log-probs (ac, ar) and the chosen NLL (mean over its tokens,
 * nll_c = -ac): loss = mean(nll_c - lambda * log sigmoid(log_odds)). d_ac, d_ar (n). */
tn_status tn_orpo_loss(float lambda, int n, const float *ac, const float *ar, float *d_ac, float *d_ar,
                       tn_dpo_stats *st);
/* The same with TRL's NLL: the mean cross-entropy over ALL chosen tokens of the batch,
 * sum_i len_c[i] * (-ac[i]) / sum_i len_c[i] (len_c NULL: tn_orpo_loss). Stats rewards
 * are lambda * ac, lambda * ar as TRL's ORPOTrainer logs them. */
tn_status tn_orpo_loss_tok(float lambda, int n, const float *ac, const float *ar, const int *len_c, float *d_ac,
                           float *d_ar, tn_dpo_stats *st);

/* ---- distillation over logits ---- */
typedef struct {
  float alpha;       /* weight of the distillation term; (1 - alpha) for CE on labels */
  float T;           /* temperature */
  int top_k;         /* 0 = full vocabulary */
  float jsd_beta;    /* < 0: plain KL(teacher || student) (T^2 scaled); 0..1: generalised JSD as
                        TRL GKD (0 = forward KL(teacher||student), 1 = reverse KL(student||teacher),
                        no T^2 factor) */
} tn_kd_cfg;
/* N rows; mask (N) 0 skips a row; labels (N) for the CE term (-1 = none; NULL = no CE).
 * top_k: both distributions restricted to the teacher's k largest logits and renormalised
 * there (the CE term keeps the full vocabulary).
 * dstudent (N, V) gets d loss / d student logits (overwritten). Loss = mean over masked rows. */
tn_status tn_kd_loss(const tn_kd_cfg *c, int N, int V, const float *student, const float *teacher, const int *labels,
                     const float *mask, float *dstudent, double *loss);
#endif
