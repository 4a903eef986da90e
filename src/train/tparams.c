/* tparams.c - the trainable side every trainer sets up the same way: full
 * fine-tuning (all weights, one flat gradient buffer) or LoRA adapters, AdamW
 * over their rows, the learning-rate schedule, and saving the result as a
 * loadable model folder or a PEFT adapter. */
#include <string.h>
#include "train/train.h"
#include "model/lora.h"

void tn_tparams_opts_default(tn_tparams_opts *o) {
  memset(o, 0, sizeof *o);
  o->lora_alpha = 16.0f;
  o->lr = 1e-4f;
  o->beta1 = 0.9f;
  o->beta2 = 0.999f;
  o->adam_eps = 1e-8f;
  o->schedule = "constant";
  o->total_steps = 1;
}

tn_status tn_tparams_init(tn_tparams *p, tn_model *m, const tn_tparams_opts *o) {
  memset(p, 0, sizeof *p);
  if (o->lora_rank > 0) {
    tn_lora_opts lo;
    tn_lora_opts_default(&lo);
    lo.rank = o->lora_rank;
    lo.alpha = o->lora_alpha;
    lo.dropout = o->lora_dropout;
    lo.rslora = o->rslora;
    if (o->lora_targets) lo.targets = o->lora_targets;
    lo.seed = o->seed;
    TN_TRY(tn_lora_attach(m, &lo, &p->lora));
    TN_TRY(tn_lora_alloc_grads(p->lora));
    p->tr = (tn_trainable){.rows = p->lora->params, .n = p->lora->n_params, .grad = p->lora->gflat,
                           .ngrad = p->lora->n_floats};
  } else {
    TN_TRY(tn_grads_create(&p->grads, m));
    TN_TRY(tn_trainable_full(&p->tr, m, &p->grads));
  }
  tn_adamw_config ac = tn_adamw_defaults();
  ac.beta1 = o->beta1;
  ac.beta2 = o->beta2;
  ac.eps = o->adam_eps;
  ac.weight_decay = o->weight_decay;
  TN_TRY(tn_adamw_init(&p->opt, p->tr.rows, p->tr.n, &ac));
  tn_schedule_kind kind;
  TN_TRY(tn_schedule_kind_parse(o->schedule, &kind));
  long total = o->total_steps > 0 ? o->total_steps : 1;
  p->sched = tn_schedule_make(kind, o->lr, o->warmup_steps, total);
  p->sched.end_value = o->lr_end;
  if (kind == TN_SCHED_COSINE && total <= o->warmup_steps) p->sched.kind = TN_SCHED_CONSTANT;
  return tn_schedule_check(&p->sched);
}

void tn_tparams_free(tn_tparams *p) {
  tn_adamw_free(&p->opt);
  if (p->lora) tn_lora_free(p->lora); /* its rows are the trainable set */
  else tn_trainable_free(&p->tr);
  tn_grads_free(&p->grads);
  memset(p, 0, sizeof *p);
}

tn_status tn_tparams_save(const tn_tparams *p, const tn_model *m, const char *src_model_dir, const char *dir,
                          tn_st_dtype dtype) {
  TN_TRY(tn_mkdirs(dir));
  if (p->lora) return tn_lora_save(p->lora, dir);
  TN_TRY(tn_model_copy_files(src_model_dir, dir));
  return tn_model_save_weights(m, dir, dtype, 1);
}

const char *tn_tparams_weights_file(const tn_tparams *p) {
  return p->lora ? "adapter_model.safetensors" : "model.safetensors";
}

void tn_tparams_zero_grad(tn_tparams *p) { memset(p->tr.grad, 0, p->tr.ngrad * sizeof(float)); }
tn_grads *tn_tparams_grads(tn_tparams *p) { return p->lora ? NULL : &p->grads; }

tn_status tn_tparams_dump_grads(const tn_tparams *p, const char *dir, long step) {
  const tn_trainable *tr = &p->tr;
  tn_st_entry *e = calloc(tr->n, sizeof *e);
  if (!e) return tn_error(TN_ERR_NOMEM, "out of memory (--dump-grads)");
  for (int i = 0; i < tr->n; i++)
    e[i] = (tn_st_entry){.name = tr->rows[i].name, .dtype = TN_ST_F32, .ndim = 1, .shape = {(int64_t)tr->rows[i].n},
                         .data = tr->rows[i].grad};
  char name[64];
  snprintf(name, sizeof name, "step_%ld.safetensors", step);
  tn_status s = tn_mkdirs(dir);
  char *path = s == TN_OK ? tn_path_join(dir, name) : NULL;
  if (s == TN_OK && !path) s = tn_error(TN_ERR_NOMEM, "out of memory (--dump-grads)");
  if (s == TN_OK) s = tn_st_write(path, e, tr->n, NULL);
  free(path);
  free(e);
  return s;
}

/* dir loaded with base dtype bd, then base_adapter (NULL/"": none) folded into f32 projections. */
static tn_status load_merged(tn_model **m, const char *dir, int bd, const char *base_adapter) {
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  lo.base_dtype = bd;
  TN_TRY(tn_model_load_opts(m, dir, &lo));
  if (!base_adapter || !*base_adapter) return TN_OK;
  tn_lora_set *set = NULL;
  tn_status s = tn_model_to_f32(*m);
  if (s == TN_OK) s = tn_lora_load(*m, base_adapter, "base", &set);
  if (s == TN_OK) s = tn_lora_merge(set);
  tn_lora_free(set);
  if (s != TN_OK) {
    tn_error_prefix(s, "--base-adapter %s", base_adapter);
    tn_model_free(*m);
    *m = NULL;
  }
  return s;
}

tn_status tn_tparams_load_model(tn_model **m, const tn_train_opts *o) {
  int bd = TN_F32;
  if (o->base_dtype) TN_TRY(tn_parse_base_dtype(o->base_dtype, &bd));
  if (bd != TN_F32 && o->lora_rank <= 0)
    return tn_error(TN_ERR_ARG, "--base-dtype %s stores frozen weights: it needs LoRA (--lora-rank)", o->base_dtype);
  return load_merged(m, o->model, bd, o->base_adapter);
}

tn_status tn_tparams_load_ref(tn_model **m, const tn_train_opts *o) {
  return load_merged(m, o->model, TN_F32, o->base_adapter);
}
