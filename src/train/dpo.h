/* dpo.h - preference optimisation (`tunic dpo`): DPO (sigmoid, IPO, hinge,
 * robust) against a frozen reference, and ORPO (no reference); see dpo.c. */
#ifndef TN_DPO_H
#define TN_DPO_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"
#include "train/opts.h"
#include "tunic/train.h"
#include "train/run.h"

/* tn_dpo_opts, tn_dpo_opts_default, tn_dpo_run: the public API (tunic/train.h) */
#endif
