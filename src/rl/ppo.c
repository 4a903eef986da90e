/* ppo.c - PPO's shared parts (ppo.h): GAE over a batch with global statistics, the entropy
 * bonus, the value head's update. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "rl/advantage.h"
#include "rl/grpo.h"
#include "rl/ppo.h"

tn_status tn_ppo_gae_batch(tn_run *run, int S, const int *off, const float *rw, const float *v_old, float gamma,
                           float lambda, float *adv, float *ret, tn_ppo_figs *f) {
  const int n = off[S];
  for (int s = 0; s < S; s++)
    tn_gae(rw + off[s], v_old + off[s], off[s + 1] - off[s], gamma, lambda, adv + off[s], ret + off[s]);
  float *A = NULL, *R = NULL, *V = NULL;
  int na = 0, at = 0;
  tn_status st = tn_rl_gather(run, adv, n, &A, &na, &at);
  if (st == TN_OK) st = tn_rl_gather(run, ret, n, &R, &na, &at);
  if (st == TN_OK) st = tn_rl_gather(run, v_old, n, &V, &na, &at);
  if (st == TN_OK) {
    /* explained variance of the rollout's values, 1 - Var(R - V) / Var(R) */
    double mr = 0, md = 0, vr = 0, vd = 0, mv = 0;
    for (int k = 0; k < na; k++) { mr += R[k]; md += R[k] - V[k]; mv += V[k]; }
    mr /= na > 0 ? na : 1; md /= na > 0 ? na : 1; mv /= na > 0 ? na : 1;
    for (int k = 0; k < na; k++) {
      vr += (R[k] - mr) * (R[k] - mr);
      const double d = R[k] - V[k] - md;
      vd += d * d;
    }
    f->expl_var = vr > 0 ? 1.0 - vd / vr : 0.0;
    f->ret_mean = mr;
    f->val_mean = mv;
    tn_whiten(A, NULL, na);
    memcpy(adv, A + at, sizeof(float) * n);
  }
  free(A); free(R); free(V);
  return st;
}

void tn_ppo_seq_adv(int S, const int *off, const float *adv, float *seq_adv) {
  for (int s = 0; s < S; s++) seq_adv[s] = off[s + 1] > off[s] ? adv[off[s]] : 0.0f;
}

double tn_ppo_entropy_bonus(const float *logits, float *dlogits, const int *rows, const float *wt, int n, int V, float T,
                            float ent_coef) {
  /* d/dz_j of -ent_coef wt H(softmax(z / T)) = ent_coef wt p_j (log p_j + H) / T */
  double sum = 0;
  for (int k = 0; k < n && ent_coef != 0.0f; k++) {
    if (wt[k] == 0.0f) continue;
    const float *z = logits + (size_t)rows[k] * V;
    float *d = dlogits + (size_t)rows[k] * V;
    float mx = -INFINITY;
    for (int j = 0; j < V; j++) mx = fmaxf(mx, z[j] / T);
    double se = 0;
    for (int j = 0; j < V; j++) se += exp(z[j] / T - mx);
    const double lse = mx + log(se);
    double H = 0;
    for (int j = 0; j < V; j++) { const double lp = z[j] / T - lse; H -= exp(lp) * lp; }
    sum += wt[k] * H;
    const double c = ent_coef * (double)wt[k] / T;
    for (int j = 0; j < V; j++) { const double lp = z[j] / T - lse; d[j] += (float)(c * exp(lp) * (lp + H)); }
  }
  return sum;
}

void tn_ppo_value_loss(const int *off, const float *seq_mask, int s0, int n, double w, const float *val, const float *v_old,
                       const float *ret, float clip, float vf_coef, float *wt, float *dv, double *loss, double *clipfrac) {
  const int a = off[s0];
  int s = s0;
  for (int k = 0; k < n; k++) { /* token weights: 1 / kept tokens, 0 in a masked sequence */
    while (a + k >= off[s + 1]) s++;
    wt[k] = seq_mask[s] != 0.0f ? (float)w : 0.0f;
  }
  double cf = 0;
  *loss += tn_value_loss(val + a, v_old + a, ret + a, wt, n, clip, dv, &cf);
  *clipfrac += cf * n * w;
  for (int k = 0; k < n; k++) dv[k] *= vf_coef;
}

tn_status tn_ppo_head_update(tn_value_head *vh, tn_run *run, float lr) {
  if (run->comm) TN_TRY(run->comm->sum_f32(run->comm, vh->g, (size_t)vh->C + 1));
  tn_adamw_step(&vh->opt, lr, 1.0f);
  memset(vh->g, 0, sizeof(float) * ((size_t)vh->C + 1));
  return TN_OK;
}

tn_status tn_ppo_values(tn_critic *cr, tn_value_head *vh, const float *xf, int N, const int *tok, const int *pos,
                        const int *seq, const int *tgt, int *rows, float *v, int *n) {
  int k = 0;
  for (int i = 0; i < N; i++)
    if (tgt[i] >= 0) rows[k++] = i;
  *n = k;
  if (cr) return tn_critic_values(cr, N, tok, pos, seq, tgt, v, &k);
  tn_vhead_forward(vh, xf, rows, k, v);
  return TN_OK;
}

tn_status tn_ppo_values_backward(tn_critic *cr, tn_value_head *vh, const float *xf, int N, int C, const int *tok,
                                 const int *pos, const int *seq, const int *rows, int n, const float *dv, float *dxf_add,
                                 tn_bwd *bw) {
  if (cr) return tn_critic_backward(cr, N, tok, pos, seq, dv, n);
  memset(dxf_add, 0, sizeof(float) * (size_t)N * C); /* the head on the policy: into its hidden states */
  tn_vhead_backward(vh, xf, rows, n, dv, dxf_add);
  bw->dxf_add = dxf_add;
  return TN_OK;
}

tn_status tn_ppo_values_state(tn_critic *cr, tn_value_head *vh, const char *dir, bool load) {
  if (cr) return tn_critic_state(cr, dir, load);
  return load ? tn_vhead_load(vh, dir) : tn_vhead_save(vh, dir);
}
