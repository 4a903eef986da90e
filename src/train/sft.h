/* sft.h - supervised fine-tuning (`tunic sft`); see sft.c. */
#ifndef TN_SFT_H
#define TN_SFT_H
#include "data/data.h"
#include "train/opts.h"
#include "tunic/train.h"
#include "train/run.h"
#include "train/train.h"

/* tn_sft_opts, tn_sft_opts_default, tn_sft_run: the public API (tunic/train.h) */
#endif
