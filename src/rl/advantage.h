/* advantage.h - the advantage estimators of the RL trainers by name (OpenRLHF's
 * --advantage_estimator: group_norm/grpo, dr_grpo, rloo, reinforce (REINFORCE++),
 * reinforce_baseline (REINFORCE++-baseline), gae), DAPO's overlong soft penalty and GAE over
 * one sequence. Formulas: docs/rl.md. Not for: the policy loss (train/losses.h), sampling. */
#ifndef TN_RL_ADVANTAGE_H
#define TN_RL_ADVANTAGE_H
#include "base/base.h"
#include "train/losses.h"

typedef enum {
  TN_ADV_GRPO = 0,           /* (r - group mean) / (std + eps) with --scale-rewards */
  TN_ADV_DRGRPO,             /* r - group mean (no division) */
  TN_ADV_RLOO,               /* r - mean of the other G-1 of the group */
  TN_ADV_REINFORCE,          /* REINFORCE++: r, whitened over the batch's tokens */
  TN_ADV_REINFORCE_BASELINE, /* REINFORCE++-baseline: r - group mean, whitened over the batch's tokens */
  TN_ADV_GAE                 /* PPO: GAE over a critic's values (tn_gae) */
} tn_adv_estimator;

/* Name -> estimator: grpo | group_norm, drgrpo | dr_grpo, rloo, reinforce | reinforce_pp,
 * reinforce_baseline | reinforce_pp_baseline, gae. TN_ERR_ARG naming the value otherwise. */
tn_status tn_adv_estimator_parse(const char *name, tn_adv_estimator *out);
const char *tn_adv_estimator_name(tn_adv_estimator e);

/* Per-sequence advantages (n_groups * G) from outcome rewards. len (n_groups * G): completion
 * lengths, the whitening weights of the REINFORCE++ estimators (OpenRLHF whitens over every
 * action token: mean and population variance over tokens, rstd = 1/sqrt(max(var, 1e-8)));
 * scale/eps: the GRPO estimator's division (tn_grpo_advantages). Not for TN_ADV_GAE. */
void tn_rl_advantages(tn_adv_estimator e, float *adv, const float *rewards, int n_groups, int G, const int *len,
                      tn_scale_rewards scale, float eps);

/* DAPO's soft overlong punishment of a completion of len tokens, with max_len the generation
 * limit and buffer_len the last tokens before it where the penalty ramps from 0 to -factor:
 * -factor * min(len - (max_len - buffer_len), buffer_len) / buffer_len when positive, else 0. */
float tn_overlong_penalty(int len, int max_len, int buffer_len, float factor);

/* GAE over one sequence of n steps: rewards r (n), values v (n) (the value after the last
 * step is 0): delta_t = r_t + gamma v_{t+1} - v_t, A_t = delta_t + gamma lambda A_{t+1},
 * returns R_t = A_t + v_t. adv, ret (n) may not alias r or v. */
void tn_gae(const float *r, const float *v, int n, float gamma, float lambda, float *adv, float *ret);

/* Whiten x (n) in place with weights w (n) (NULL: 1): x = (x - mean) / sqrt(max(var, 1e-8)),
 * mean and population variance weighted by w. Nothing when the weights sum to 0. */
void tn_whiten(float *x, const int *w, int n);
#endif
