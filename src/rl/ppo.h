/* ppo.h - the parts of PPO that the single-turn trainer (grpo.c, `tunic ppo`) and the multi-turn one
 * (agent/agentic.c, `tunic ppo --env ...`) share: GAE over a batch of sequences of per-token rewards
 * with the batch statistics over the global batch (advantages whitened over its tokens, explained
 * variance), the entropy bonus's gradient, the value head's update. Formulas: docs/rl.md.
 * Not for: where the rewards come from or which tokens are the model's (the trainers). */
#ifndef TN_RL_PPO_H
#define TN_RL_PPO_H
#include "base/base.h"
#include "rl/critic.h"
#include "rl/value_head.h"
#include "train/run.h"

typedef struct {
  double expl_var, ret_mean, val_mean; /* over the global batch's tokens */
} tn_ppo_figs;

/* S sequences laid out flat (off (S+1)), per-token rewards rw and rollout values v_old: GAE per
 * sequence into adv and ret (returns), then the advantages whitened over the tokens of the global
 * batch (several ranks: every rank's gathered in the one-process order, tn_rl_gather) and *f. */
tn_status tn_ppo_gae_batch(tn_run *run, int S, const int *off, const float *rw, const float *v_old, float gamma,
                           float lambda, float *adv, float *ret, tn_ppo_figs *f);
/* seq_adv (S): each sequence's first token's advantage (0 when empty), the dumps' `advantage` */
void tn_ppo_seq_adv(int S, const int *off, const float *adv, float *seq_adv);
/* The entropy bonus -ent_coef x sum_k wt[k] H(softmax(logits[rows[k]] / T)): its gradient added to
 * dlogits (rows, V); returns sum_k wt[k] H. Rows with wt 0 are skipped. */
double tn_ppo_entropy_bonus(const float *logits, float *dlogits, const int *rows, const float *wt, int n, int V, float T,
                            float ent_coef);
/* The value loss of n consecutive tokens of the flat layout off starting at sequence s0's first:
 * each token weighs w (1 / the global batch's kept tokens), 0 in a sequence with seq_mask 0 (wt (n)
 * gets the weights); values val, rollout values v_old, returns ret (flat). dv (n) = vf_coef x
 * d loss / d v. Adds the loss to *loss and the weighted clip fraction to *clipfrac. */
void tn_ppo_value_loss(const int *off, const float *seq_mask, int s0, int n, double w, const float *val, const float *v_old,
                       const float *ret, float clip, float vf_coef, float *wt, float *dv, double *loss, double *clipfrac);
/* The value side, shared by both trainers: the head vh on the policy's final-normed hidden states
 * xf, or (cr not NULL) a critic model of its own reading the same token rows.
 * Values of the rows with tgt >= 0 of a forward of N rows just run: their indices into rows, their
 * values into v, *n their count. */
tn_status tn_ppo_values(tn_critic *cr, tn_value_head *vh, const float *xf, int N, const int *tok, const int *pos,
                        const int *seq, const int *tgt, int *rows, float *v, int *n);
/* d loss / d v (n, of the last tn_ppo_values) into the critic's gradients, or into the head's and the
 * policy's hidden states: dxf_add (N, C) zeroed, filled, and handed to the policy's backward (bw). */
tn_status tn_ppo_values_backward(tn_critic *cr, tn_value_head *vh, const float *xf, int N, int C, const int *tok,
                                 const int *pos, const int *seq, const int *rows, int n, const float *dv, float *dxf_add,
                                 tn_bwd *bw);
/* The value side's state in DIR: DIR/critic/ (critic) or DIR/value_head.safetensors, saved or loaded. */
tn_status tn_ppo_values_state(tn_critic *cr, tn_value_head *vh, const char *dir, bool load);
/* The head's update: its gradient summed over the ranks, AdamW at lr (no clipping), gradient zeroed. */
tn_status tn_ppo_head_update(tn_value_head *vh, tn_run *run, float lr);
#endif
