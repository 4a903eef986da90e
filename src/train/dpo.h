/* dpo.h - preference optimisation (`tunic dpo`): DPO (sigmoid, IPO, hinge,
 * robust) against a frozen reference, and ORPO (no reference); see dpo.c. */
#ifndef TN_DPO_H
#define TN_DPO_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"
#include "train/opts.h"
#include "train/run.h"

typedef struct {
  TN_TRAIN_OPTS;           /* model (the policy), data, out, batch size, lr, LoRA, ... (train/opts.h) */
  const char *ref_model;
  const char *loss;        /* sigmoid | ipo | hinge | robust */
  const char *algorithm;   /* dpo | orpo */
  float beta, label_smoothing, orpo_lambda;
  int max_prompt_length, max_response_length;
  bool chat, precompute_ref;
} tn_dpo_opts;

/* The shared defaults with lr 1e-6 and a linear schedule; DPO sigmoid loss, beta 0.1,
 * ORPO lambda 0.1, prompts and responses cut at 512 tokens. */
void tn_dpo_opts_default(tn_dpo_opts *o);
/* Train to the end (the driver in train/run.h); ri: for the manifest (may be NULL). */
tn_status tn_dpo_run(const tn_dpo_opts *o, const tn_run_info *ri);
#endif
