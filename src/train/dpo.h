/* dpo.h - preference optimisation (`tunic dpo`): DPO (sigmoid, IPO, hinge,
 * robust) against a frozen reference, and ORPO (no reference); see dpo.c. */
#ifndef TN_DPO_H
#define TN_DPO_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"

typedef struct {
  const char *model, *ref_model, *tokenizer, *data, *eval_data, *out, *chat_format, *schedule, *lora_targets, *base_dtype;
  const char *loss;        /* sigmoid | ipo | hinge | robust */
  const char *algorithm;   /* dpo | orpo */
  float beta, label_smoothing, orpo_lambda;
  int max_prompt_length, max_response_length;
  int batch_size, grad_accum, steps, epochs, warmup_steps;
  int eval_every, save_every, keep_last;
  float lr, lr_end, weight_decay, beta1, beta2, adam_eps, max_grad_norm, eval_split;
  int lora_rank;
  float lora_alpha, lora_dropout;
  bool rslora, chat, precompute_ref, resume;
  uint64_t seed;
} tn_dpo_opts;

void tn_dpo_opts_default(tn_dpo_opts *o);
/* config_json: the resolved configuration for the manifest (may be NULL). */
tn_status tn_dpo_run(const tn_dpo_opts *o, const char *config_json, int argc, char **argv);
#endif
