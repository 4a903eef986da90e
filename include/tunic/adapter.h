/* tunic/adapter.h - LoRA adapters in Hugging Face PEFT's format on a loaded model (public API).
 * An adapter is loaded for one model (adapter_config.json + adapter_model.safetensors, made by
 * PEFT or tunic); several may be loaded side by side and exactly one (or none) is active: the
 * forward pass, generation and the trainers see the model with the active adapter applied.
 * Switching copies nothing (the model's matrices point at the adapter's). Merging folds an
 * adapter into the model's f32 weights (W += scale * B A), after which the model no longer
 * needs it. An adapter must be freed before its model.
 * Training adapters: tunic/train.h (tn_sft_run and the other trainers with lora_rank > 0). */
#ifndef TUNIC_ADAPTER_H
#define TUNIC_ADAPTER_H
#include <stdbool.h>
#include "tunic/base.h"
#include "tunic/model.h"

typedef struct tn_lora_set tn_adapter;

/* Load DIR for m under NAME (NULL: "default"); not active until tn_adapter_activate. Errors
 * name the file and field (unsupported PEFT features, shapes that do not fit the model). */
TN_API tn_status tn_adapter_load(tn_model *m, const char *dir, const char *name, tn_adapter **out);
/* Make a the model's active adapter (replacing any other). */
TN_API void tn_adapter_activate(tn_adapter *a);
/* Back to the base model (a stays loaded). */
TN_API void tn_adapter_deactivate(tn_adapter *a);
TN_API bool tn_adapter_is_active(const tn_adapter *a);
TN_API const char *tn_adapter_name(const tn_adapter *a);
TN_API int tn_adapter_rank(const tn_adapter *a);
/* Fold a into the model's weights (the model must hold f32 projections: loaded without
 * --base-dtype bf16/nf4); a is then inactive and cannot be merged again. */
TN_API tn_status tn_adapter_merge(tn_adapter *a);
/* Write DIR/adapter_config.json + DIR/adapter_model.safetensors (PEFT's names, F32), each
 * atomically; DIR is created. */
TN_API tn_status tn_adapter_save(const tn_adapter *a, const char *dir);
/* Deactivate and free (NULL is fine). */
TN_API void tn_adapter_free(tn_adapter *a);

/* ---- a merged model on disk (`tunic merge`) ----
 * tn_merge_save loads MODEL_DIR, merges the PEFT adapter ADAPTER_DIR into its projections
 * (W + scale * B A) and writes OUT_DIR as a plain Hugging Face checkpoint: config.json
 * (torch_dtype = the written dtype, no quantization_config), generation_config.json and the
 * tokenizer files copied when present, model.safetensors (or model-*-of-*.safetensors with an
 * index when shards > 1). Each file is written atomically; OUT_DIR is created. The embedding and
 * LM head keep the checkpoint's values (no adapter changes them). */
typedef struct {
  const char *base_dtype; /* the weights the adapter is merged onto: "f32" (the checkpoint's own), "bf16"
                             (bf16-rounded), "nf4" (NF4-dequantised: an adapter trained with QLoRA) or
                             "auto" (default: nf4 for bitsandbytes 4-bit checkpoints, else f32) */
  const char *dtype;      /* written dtype: "f32" | "bf16" | "f16"; NULL (default): the config's torch_dtype,
                             f32 when it names none of those */
  int shards;             /* safetensors files (default 1) */
} tn_merge_opts;
TN_API void tn_merge_opts_default(tn_merge_opts *o);
/* What a merge did. The strings are static (never freed). */
typedef struct {
  const char *base_dtype; /* what the adapter was merged onto: "f32" | "bf16" | "nf4" */
  const char *dtype;      /* the dtype written: "f32" | "bf16" | "f16" */
  int modules;            /* adapted modules merged */
  bool had_quant_config;  /* the source config.json had a quantization_config (dropped) */
} tn_merge_info;
/* O NULL: the defaults; INFO may be NULL. Errors name the file (missing config, adapter that
 * does not fit the model) or the option (unknown dtype). */
TN_API tn_status tn_merge_save(const char *model_dir, const char *adapter_dir, const char *out_dir,
                               const tn_merge_opts *o, tn_merge_info *info);
#endif
