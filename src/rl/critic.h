/* critic.h - PPO's separate critic (`tunic ppo --critic DIR`): a model of its own (e.g. a smaller
 * one over the same tokenizer) with a value head on its final-normed hidden state, trained with
 * its own AdamW (all its weights and the head, at --critic-lr on --lr's schedule, no clipping),
 * its state saved into each checkpoint (critic/: a loadable model folder, optimizer.safetensors,
 * value_head.safetensors) and restored on --resume. Not for: GAE and the value loss (advantage.h,
 * value_head.h), the policy (grpo.c). */
#ifndef TN_RL_CRITIC_H
#define TN_RL_CRITIC_H
#include "base/base.h"
#include "model/model.h"
#include "rl/value_head.h"
#include "train/opts.h"
#include "train/run.h"
#include "train/train.h"

typedef struct {
  const char *dir;       /* the critic model's folder (config and tokenizer files copied from it) */
  tn_model *m;
  tn_state *st;          /* S slots of T positions, Nmax rows */
  tn_bwd bw;
  tn_tparams tp;         /* every weight trainable; AdamW at the critic's learning rate */
  tn_value_head vh;
  int *rows;             // (Nmax) rows whose value is read
} tn_critic;

/* Load the critic from dir for a policy of vocabulary V (refused when the critic's differs: the
 * critic reads the policy's tokens); state for S sequences of T positions, Nmax rows per call. */
tn_status tn_critic_load(tn_critic *c, const char *dir, int V, int S, int T, int Nmax, const tn_train_opts *to,
                         long steps, float lr);
void tn_critic_free(tn_critic *c);
/* Forward of N token rows (as tn_forward) and the values of the rows with tgt[i] >= 0, in order,
 * into v; returns how many. The activations are kept for tn_critic_backward of the same rows. */
tn_status tn_critic_values(tn_critic *c, int N, const int *tok, const int *pos, const int *seq, const int *tgt,
                           float *v, int *n_out);
/* Backward of the last tn_critic_values call with d loss / d v (n): gradients accumulate (+=). */
tn_status tn_critic_backward(tn_critic *c, int N, const int *tok, const int *pos, const int *seq, const float *dv,
                             int n);
/* The step's update: gradients summed over the ranks (run), AdamW on the model and the head at the
 * schedule's rate for step, gradients zeroed. */
tn_status tn_critic_update(tn_critic *c, tn_run *run, long step);
/* dir/critic/ (save) or from it (load). */
tn_status tn_critic_state(tn_critic *c, const char *dir, bool load);
#endif
