/* sft.h - supervised fine-tuning (`tunic sft`); see sft.c. */
#ifndef TN_SFT_H
#define TN_SFT_H
#include "data/data.h"
#include "train/train.h"

typedef struct {
  const char *model, *base_dtype, *tokenizer, *data, *eval_data, *out, *chat_format, *schedule, *lora_targets;
  int max_seq_len, batch_size, grad_accum, steps, epochs, warmup_steps;
  int log_every, eval_every, save_every, keep_last;
  float lr, lr_end, weight_decay, beta1, beta2, adam_eps, max_grad_norm, eval_split;
  int lora_rank;
  float lora_alpha, lora_dropout;
  bool rslora, resume;
  bool recompute;        /* activation recomputation (less memory, one more forward per layer) */
  bool bf16_matmul;      /* bf16 operands, f32 accumulation in the big matmuls (AMX), as torch's bf16 autocast */
  uint64_t seed;
} tn_sft_opts;

void tn_sft_opts_default(tn_sft_opts *o);
/* config_json: the resolved configuration for the manifest (may be NULL). */
tn_status tn_sft_run(const tn_sft_opts *o, const char *config_json, int argc, char **argv);
#endif
