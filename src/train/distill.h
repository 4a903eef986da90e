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
#include "train/run.h"

typedef struct {
  TN_TRAIN_OPTS;               /* model = the student (--student), data, out, lr, LoRA, ... (train/opts.h) */
  const char *teacher;
  const char *teacher_dtype;   /* f32 | bf16 (frozen teacher projections) */
  const char *feature_layers;  /* "S:T,S:T": student hidden state S matched to teacher hidden state T
                                  (0 = embeddings, k = after k layers); NULL or "" = no feature loss */
  float feature_weight;        /* gamma of the feature MSE term */
  float temperature, alpha, jsd_beta, lmbda, gen_temperature;
  int top_k, max_new_tokens;
} tn_distill_opts;

/* The shared defaults; T 1, alpha 0.5, T^2 KL (jsd_beta -1), off-policy, 64 sampled tokens
 * at temperature 1 when on-policy, feature weight 1, teacher in f32. */
void tn_distill_opts_default(tn_distill_opts *o);
/* Train to the end (the driver in train/run.h); ri: for the manifest (may be NULL). */
tn_status tn_distill_run(const tn_distill_opts *o, const tn_run_info *ri);
#endif
