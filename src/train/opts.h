/* opts.h - the options every trainer shares (`tunic sft`, `dpo`, `distill`, `grpo`), defined
 * once: the fields, their defaults, and their option-table rows (flag name = YAML key, type,
 * help text; the CLI appends each default from the value itself, so no help text repeats it).
 * A trainer's option struct starts with TN_TRAIN_OPTS, sets its own defaults on top of
 * tn_train_opts_default (e.g. DPO's lr 1e-6), and adds its own options and rows.
 * Not for: parsing (src/obs/runcfg.c, src/cli/cli.c), what the options do (each trainer,
 * tparams.c, run.c). */
#ifndef TN_TRAIN_OPTS_H
#define TN_TRAIN_OPTS_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"
#include "data/data.h"
#include "train/train.h"
#include "tunic/obs.h"
#include "tunic/train.h"

/* TN_TRAIN_OPTS_FIELDS, tn_train_opts, TN_TRAIN_OPTS: the public API (tunic/train.h) */

/* Which of the shared options a trainer offers (the rest keep their defaults). */
enum {
  TN_TO_BASE_DTYPE = 1 << 0, /* --base-dtype (QLoRA) */
  TN_TO_DATASET = 1 << 1,    /* a fixed training set: --epochs, --grad-accum, --eval-data, --eval-split, --eval-every */
  TN_TO_TUNING = 1 << 2,     /* --beta1, --beta2, --adam-eps, --lora-dropout, --rslora */
  TN_TO_SEQ_LEN = 1 << 3,    /* --max-seq-len */
  TN_TO_COMPUTE = 1 << 4,    /* --bf16-matmul, --recompute */
};
#define TN_TRAIN_OPTS_MAX_ROWS 40

/* Shared defaults: batch 4, grad-accum 1, 1 epoch, lr 1e-4 cosine, AdamW (0.9, 0.999, 1e-8),
 * weight decay 0, clip 1, LoRA alpha 16 on q/k/v/o, keep 2 checkpoints, chat format auto,
 * max-seq-len 512, base dtype f32. */
void tn_train_opts_default(tn_train_opts *o);
/* Write one section's rows into out (room for TN_TRAIN_OPTS_MAX_ROWS) and return how many:
 * section 0 = what is trained on what (model, data, out, ...), 1 = the training loop (batch
 * size, steps, optimizer, LoRA, checkpoints, seed, resume, ...); the options every trainer has
 * plus those in HAS (TN_TO_* bits). The rows point into o; a trainer may rename a row or
 * give it a more precise help text (e.g. distill's --student). */
int tn_train_opts_rows(tn_train_opts *o, unsigned has, int section, tn_opt *out);
/* --steps, or when it is 0, enough steps for --epochs over n_train items of
 * batch_size x grad_accum (at least 1). */
long tn_train_opts_total_steps(const tn_train_opts *o, int n_train);
/* The trainable set's options (LoRA, AdamW, schedule) over total_steps. */
tn_tparams_opts tn_train_opts_tparams(const tn_train_opts *o, long total_steps);
/* SFT-format data (sft, distill): the training set (--data) and the eval set (--eval-data,
 * else --eval-split of the training set, seeded), cut at --max-seq-len, rendered with
 * --chat-format; a token id outside the model's vocabulary V is an error naming --data. */
tn_status tn_train_opts_load_sft(const tn_train_opts *o, const tn_tokenizer *tok, int V, tn_dataset *train,
                                 tn_dataset *eval);
#endif
