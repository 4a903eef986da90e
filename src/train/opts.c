/* opts.c - the trainers' shared options: defaults, option-table rows (names, types, help)
 * and what they turn into (step count, tparams options). See opts.h.
 * Help texts give no literal default: the CLI prints each default from the value. */
#include "train/opts.h"
#include "train/run.h"
#include <math.h>
#include <stddef.h>
#include <string.h>

void tn_train_opts_default(tn_train_opts *o) {
  memset(o, 0, sizeof *o);
  o->base_dtype = "f32";
  o->precision = "f32";
  o->chat_format = "auto";
  o->max_seq_len = 512;
  o->batch_size = 4;
  o->grad_accum = 1;
  o->epochs = 1;
  o->lr = 1e-4f;
  o->schedule = "cosine";
  o->beta1 = 0.9f;
  o->beta2 = 0.999f;
  o->adam_eps = 1e-8f;
  o->max_grad_norm = 1.0f;
  o->lora_alpha = 16.0f;
  o->lora_targets = "q_proj,k_proj,v_proj,o_proj";
  o->keep_last = 2;
}

#define F(field) offsetof(tn_train_opts, field)
static const struct {
  int section;
  unsigned need; /* 0: every trainer; else the TN_TO_* bit */
  const char *name;
  char type;
  size_t off;
  const char *help;
} ROWS[] = {
  {0, 0, "model", 's', F(model), "model directory (HF layout)"},
  {0, TN_TO_BASE_DTYPE, "base-dtype", 's', F(base_dtype), "frozen projections under LoRA (QLoRA): f32 | bf16 | nf4 | auto"},
  {0, 0, "base-adapter", 's', F(base_adapter),
   "a PEFT LoRA adapter merged into the model's weights in memory before training: the run starts from model + "
   "adapter (with --lora-rank the new adapter is trained on top of it, i.e. stacked; a bf16/nf4 base is "
   "dequantised to f32 to take the merge)"},
  {0, 0, "tokenizer", 's', F(tokenizer), "tokenizer directory (default: the model's)"},
  {0, 0, "data", 's', F(data), "training JSONL"},
  {0, 0, "field-map", 's', F(field_map), "data fields renamed: prompt=question,completion=answer,... (TARGET=SOURCE)"},
  {0, TN_TO_DATASET, "eval-data", 's', F(eval_data), "eval JSONL (default: --eval-split of the training data)"},
  {0, TN_TO_DATASET, "eval-split", 'f', F(eval_split), "fraction of the training data held out for eval"},
  {0, 0, "out", 's', F(out), "run directory"},
  {0, 0, "chat-format", 's', F(chat_format), "auto | gemma | chatml | llama3"},
  {0, 0, "chat-template", 's', F(chat_template), "a .jinja chat template used instead of the model's"},
  {0, TN_TO_SEQ_LEN, "max-seq-len", 'i', F(max_seq_len), "truncate examples to this many tokens"},
  {1, 0, "batch-size", 'i', F(batch_size), "examples per micro-batch"},
  {1, TN_TO_DATASET, "grad-accum", 'i', F(grad_accum), "micro-batches per optimizer step"},
  {1, 0, "steps", 'i', F(steps), "optimizer steps (0: from --epochs)"},
  {1, TN_TO_DATASET, "epochs", 'i', F(epochs), "passes over the training data"},
  {1, 0, "lr", 'f', F(lr), "peak learning rate"},
  {1, 0, "lr-end", 'f', F(lr_end), "final learning rate of linear/cosine decay"},
  {1, 0, "schedule", 's', F(schedule), "constant | linear | cosine"},
  {1, 0, "warmup-steps", 'i', F(warmup_steps), "linear warmup steps"},
  {1, 0, "weight-decay", 'f', F(weight_decay), "AdamW decoupled weight decay (none on norms/biases)"},
  {1, TN_TO_TUNING, "beta1", 'f', F(beta1), "AdamW beta1"},
  {1, TN_TO_TUNING, "beta2", 'f', F(beta2), "AdamW beta2"},
  {1, TN_TO_TUNING, "adam-eps", 'f', F(adam_eps), "AdamW epsilon"},
  {1, 0, "max-grad-norm", 'f', F(max_grad_norm), "clip the global gradient norm (0 = off)"},
  {1, 0, "lora-rank", 'i', F(lora_rank), "LoRA rank (0 = full fine-tuning)"},
  {1, 0, "lora-alpha", 'f', F(lora_alpha), "LoRA alpha"},
  {1, TN_TO_TUNING, "lora-dropout", 'f', F(lora_dropout), "LoRA dropout"},
  {1, TN_TO_TUNING, "rslora", 'b', F(rslora), "scale alpha/sqrt(r) instead of alpha/r"},
  {1, 0, "lora-targets", 's', F(lora_targets), "module names (q_proj,...) or a regex"},
  {1, TN_TO_DATASET, "eval-every", 'i', F(eval_every), "eval every N steps (and at the end)"},
  {1, 0, "save-every", 'i', F(save_every), "checkpoint every N steps (and at the end)"},
  {1, 0, "keep-last", 'i', F(keep_last), "checkpoints kept (0 = all)"},
  {1, 0, "seed", 'u', F(seed), "seed for data order, initialisation and sampling"},
  {1, 0, "resume", 'b', F(resume), "continue from the newest checkpoint in --out"},
  {1, 0, "precision", 's', F(precision),
   "matmul operands: f32 | bf16 (bf16 operands, f32 accumulation, master weights and optimizer state; as TRL's "
   "bf16=True / torch bf16 autocast; needs AVX-512 BF16 or AMX)"},
  {1, TN_TO_COMPUTE, "bf16-matmul", 'b', F(bf16_matmul), "the same as --precision bf16"},
  {1, TN_TO_COMPUTE, "recompute", 'b', F(recompute),
   "recompute each layer's activations in the backward pass (less memory, ~1/3 more compute)"},
};
#undef F
_Static_assert(sizeof ROWS / sizeof ROWS[0] <= TN_TRAIN_OPTS_MAX_ROWS, "TN_TRAIN_OPTS_MAX_ROWS is too small");

int tn_train_opts_rows(tn_train_opts *o, unsigned has, int section, tn_opt *out) {
  int n = 0;
  for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++)
    if (ROWS[i].section == section && (ROWS[i].need == 0 || (has & ROWS[i].need)))
      out[n++] = (tn_opt){ROWS[i].name, ROWS[i].type, (char *)o + ROWS[i].off, ROWS[i].help};
  return n;
}

tn_status tn_train_opts_load_sft(const tn_train_opts *o, const tn_tokenizer *tok, int V, tn_dataset *train,
                                 tn_dataset *eval) {
  tn_sft_data_opts dopts = {.max_seq_len = o->max_seq_len, .field_map = o->field_map};
  TN_TRY(tn_chat_format_parse(o->chat_format, &dopts.chat));
  TN_TRY(tn_sft_load(train, o->data, tok, &dopts));
  if (o->eval_data) TN_TRY(tn_sft_load(eval, o->eval_data, tok, &dopts));
  else TN_TRY(tn_dataset_split(train, eval, o->eval_split, o->seed));
  for (int i = 0; i < train->n; i++)
    for (int k = 0; k < train->ex[i].n; k++)
      if (train->ex[i].ids[k] >= V)
        return tn_error(TN_ERR_FORMAT, "%s: token id %d is outside the model's vocabulary (%d): tokenizer and model disagree",
                        o->data, train->ex[i].ids[k], V);
  return TN_OK;
}

tn_status tn_train_opts_precision(const tn_train_opts *o) {
  const char *p = o->precision ? o->precision : "f32";
  if (strcmp(p, "f32") && strcmp(p, "bf16"))
    return tn_error(TN_ERR_ARG, "--precision: '%s' is not f32 or bf16", p);
  const bool bf16 = o->bf16_matmul || !strcmp(p, "bf16");
  tn_matmul_set_bf16(bf16);
  if (bf16 && tn_isa_level() < TN_ISA_AVX512BF16)
    tn_warn("--precision bf16: no bf16 arithmetic at ISA level %s (needs avx512bf16 or amx): matmuls stay f32",
            tn_isa_name(tn_isa_level()));
  return TN_OK;
}

long tn_train_opts_total_steps(const tn_train_opts *o, int n_train) {
  long per_step = (long)o->batch_size * o->grad_accum * tn_train_world(); /* the global step */
  long total = o->steps > 0 ? o->steps : (long)ceil((double)o->epochs * n_train / per_step);
  return total > 0 ? total : 1;
}

tn_tparams_opts tn_train_opts_tparams(const tn_train_opts *o, long total_steps) {
  return (tn_tparams_opts){.lora_rank = o->lora_rank, .lora_alpha = o->lora_alpha, .lora_dropout = o->lora_dropout,
                           .rslora = o->rslora, .lora_targets = o->lora_targets, .seed = o->seed, .lr = o->lr,
                           .lr_end = o->lr_end, .weight_decay = o->weight_decay, .beta1 = o->beta1,
                           .beta2 = o->beta2, .adam_eps = o->adam_eps, .schedule = o->schedule,
                           .warmup_steps = o->warmup_steps, .total_steps = total_steps};
}
