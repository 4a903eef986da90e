/* distill.h - knowledge distillation (`tunic distill`): a frozen teacher, a
 * student trained on the teacher's logits (KD or GKD's generalised JSD, optional
 * top-k support, mixed with CE on labels), optionally on its own samples
 * (on-policy, --lmbda) and on hidden states through learned projections; see distill.c. */
#ifndef TN_DISTILL_H
#define TN_DISTILL_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"
#include "train/opts.h"
#include "tunic/train.h"
#include "train/run.h"

/* tn_distill_opts, tn_distill_opts_default, tn_distill_run: the public API (tunic/train.h) */
#endif
