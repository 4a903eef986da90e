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

/* tn_grpo_opts, tn_grpo_opts_default, tn_grpo_run: the public API (tunic/train.h) */
#endif
