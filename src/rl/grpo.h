/* grpo.h - Group Relative Policy Optimization (`tunic grpo`); see grpo.c.
 * Option names follow Tunix's GRPOConfig / RolloutConfig. */
#ifndef TN_GRPO_H
#define TN_GRPO_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"
#include "train/opts.h"
#include "tunic/train.h"
#include "train/run.h"
#include "train/losses.h"

/* tn_grpo_opts, tn_grpo_opts_default, tn_grpo_run: the public API (tunic/train.h) */

/* o's loss settings (epsilon, beta, KL estimator, aggregation, GSPO) and reward scaling, checked as
 * tn_grpo_run checks them: for trainers built on GRPO's loss (src/agent/agentic.c). */
/* At a run's first step (after the manifest: a run killed before it leaves no file but its own):
 * the --dump-rollouts file (appended to on --resume) and RUN/trace.json. */
tn_status tn_grpo_open_outputs(const tn_grpo_opts *o, const char *run_dir, FILE **dump, tn_trace **trace);
tn_status tn_grpo_loss_config(const tn_grpo_opts *o, tn_grpo_cfg *lc, tn_scale_rewards *scale);
/* Several ranks: the global batch's values in the one-process order. Each rank's n values x go
 * at their place (rank k's follow rank k-1's) in a zeroed array that is summed over the ranks
 * (adding zeros is exact, so every rank holds the same bits); *all (malloc'd, n_all values) and
 * *at, this rank's offset in it. One rank: a copy of x. */
tn_status tn_rl_gather(tn_run *run, const float *x, int n, float **all, int *n_all, int *at);
#endif
