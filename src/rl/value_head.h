/* value_head.h - PPO's critic as a linear head on the policy's final-normed hidden state
 * (TRL's / OpenRLHF's value head: one weight row and a bias), its own AdamW, the clipped value
 * loss, and its file (value_head.safetensors: weight, bias, AdamW moments and step).
 * Not for: GAE (advantage.h), the policy loss (train/losses.h), the backbone's backward
 * (train.h: the head's d loss / d hidden goes through tn_bwd.dxf_add). */
#ifndef TN_RL_VALUE_HEAD_H
#define TN_RL_VALUE_HEAD_H
#include "base/base.h"
#include "train/optim.h"

typedef struct {
  int C;
  float *w, *g;          // (C + 1): weight then bias; their gradient
  tn_adamw opt;
  tn_param row[1];
} tn_value_head;

/* Zero weight and bias (values start at 0), AdamW with cfg (no weight decay on the head). */
tn_status tn_vhead_init(tn_value_head *h, int C, const tn_adamw_config *cfg);
void tn_vhead_free(tn_value_head *h);
/* v[i] = w . xf[rows[i]] + b for n rows of xf (rows, C) */
void tn_vhead_forward(const tn_value_head *h, const float *xf, const int *rows, int n, float *v);
/* Accumulate the head's gradient (+=) and dxf[rows[i]] += dv[i] w for n rows */
void tn_vhead_backward(tn_value_head *h, const float *xf, const int *rows, int n, const float *dv, float *dxf);
/* The clipped value loss over n tokens with weights wt (the loss's aggregation, e.g. 1/kept
 * tokens; 0 drops a token): sum_i wt_i 0.5 max((v - R)^2, (v_old + clip(v - v_old, -c, c) - R)^2)
 * (c <= 0: no clipping, 0.5 (v - R)^2). dv (n) = d loss / d v (overwritten); *clipfrac = weighted
 * fraction of tokens where the clipped term is the larger. */
double tn_value_loss(const float *v, const float *v_old, const float *ret, const float *wt, int n, float clip,
                     float *dv, double *clipfrac);
/* value_head.safetensors in dir: weight (C), bias (1), exp_avg, exp_avg_sq (C + 1), step (metadata) */
tn_status tn_vhead_save(const tn_value_head *h, const char *dir);
tn_status tn_vhead_load(tn_value_head *h, const char *dir);
#endif
