/* sft.h - supervised fine-tuning (`tunic sft`); see sft.c. */
#ifndef TN_SFT_H
#define TN_SFT_H
#include "data/data.h"
#include "train/opts.h"
#include "train/train.h"

typedef struct {
  TN_TRAIN_OPTS;         /* model, data, out, batch size, lr, LoRA, ... (train/opts.h) */
  int log_every;
} tn_sft_opts;

/* The shared defaults (tn_train_opts_default), log_every 1. */
void tn_sft_opts_default(tn_sft_opts *o);
/* config_json: the resolved configuration for the manifest (may be NULL). */
tn_status tn_sft_run(const tn_sft_opts *o, const char *config_json, int argc, char **argv);
#endif
