/* distill.h - knowledge distillation (`tunic distill`): a frozen teacher, a
 * student trained on the teacher's logits (KD or GKD's generalised JSD, optional
 * top-k support, mixed with CE on labels), optionally on its own samples
 * (on-policy, --lmbda) and on hidden states through learned projections; see distill.c. */
#ifndef TN_DISTILL_H
#define TN_DISTILL_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"

typedef struct {
  const char *teacher, *student, *tokenizer, *data, *eval_data, *out, *chat_format, *schedule, *lora_targets;
  const char *teacher_dtype;   /* f32 | bf16 (frozen teacher projections) */
  const char *feature_layers;  /* "S:T,S:T": student hidden state S matched to teacher hidden state T
                                  (0 = embeddings, k = after k layers); NULL or "" = no feature loss */
  float feature_weight;        /* gamma of the feature MSE term */
  float temperature, alpha, jsd_beta, lmbda, gen_temperature;
  int top_k, max_new_tokens;
  int max_seq_len, batch_size, grad_accum, steps, epochs, warmup_steps;
  int eval_every, save_every, keep_last;
  float lr, lr_end, weight_decay, beta1, beta2, adam_eps, max_grad_norm, eval_split;
  int lora_rank;
  float lora_alpha, lora_dropout;
  bool rslora, resume;
  uint64_t seed;
} tn_distill_opts;

void tn_distill_opts_default(tn_distill_opts *o);
tn_status tn_distill_run(const tn_distill_opts *o, const char *config_json, int argc, char **argv);
#endif
