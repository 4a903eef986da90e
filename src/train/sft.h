/* sft.h - supervised fine-tuning (`tunic sft`); see sft.c. */
#ifndef TN_SFT_H
#define TN_SFT_H
#include "data/data.h"
#include "train/opts.h"
#include "train/run.h"
#include "train/train.h"

typedef struct {
  TN_TRAIN_OPTS;         /* model, data, out, batch size, lr, LoRA, ... (train/opts.h) */
  int log_every;
} tn_sft_opts;

/* The shared defaults (tn_train_opts_default), log_every 1. */
void tn_sft_opts_default(tn_sft_opts *o);
/* Train to the end (the driver in train/run.h); ri: for the manifest (may be NULL). */
tn_status tn_sft_run(const tn_sft_opts *o, const tn_run_info *ri);
#endif
