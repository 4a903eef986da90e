/* load.c - what an inference program loads (generate.h, tn_infer_load): the model (base and head
 * dtypes), its tokenizer (or another, with a chat template file in place of its own) and PEFT
 * adapters by the command line's spec, one path for the CLI's inference commands and for the
 * judge model, with the same errors. Not for: merging an adapter into a model to save it
 * (model/merged.c), the trainers' model (train/tparams.c). */
#include <stdlib.h>
#include "generate/generate.h"
#include "model/lora.h"

tn_status tn_infer_load_tokenizer(const tn_infer_spec *sp, unsigned how, tn_tokenizer **out) {
  *out = NULL;
  if (!(how & (TN_INFER_TOKENIZER | TN_INFER_TOKENIZER_TRY))) return TN_OK;
  tn_status s = tn_tokenizer_load(sp->tokenizer ? sp->tokenizer : sp->model, out);
  if (s != TN_OK && !(how & TN_INFER_TOKENIZER)) { /* tried: the caller works on ids without it */
    *out = NULL;
    tn_error_clear();
    return TN_OK;
  }
  if (s == TN_OK && sp->chat_template) s = tn_tokenizer_set_chat_template(*out, sp->chat_template);
  if (s != TN_OK) { tn_tokenizer_free(*out); *out = NULL; }
  return s;
}

tn_status tn_infer_load(const tn_infer_spec *sp, unsigned how, tn_infer_loaded *out) {
  *out = (tn_infer_loaded){0};
  if (!sp->model) return tn_error(TN_ERR_ARG, "--model is required");
  if (sp->adapter_name && !sp->adapter) return tn_error(TN_ERR_ARG, "--adapter-name needs --adapter");
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  tn_status s = tn_parse_base_dtype(sp->base_dtype ? sp->base_dtype : "auto", &lo.base_dtype);
  if (s == TN_OK) s = tn_parse_head_dtype(sp->head_dtype ? sp->head_dtype : "auto", &lo.head_dtype);
  if (s == TN_OK) s = tn_model_load_opts(&out->model, sp->model, &lo);
  if (s == TN_OK) s = tn_infer_load_tokenizer(sp, how, &out->tok);
  if (s == TN_OK && sp->adapter) s = tn_lora_load_spec(out->model, sp->adapter, sp->adapter_name, &out->loras, &out->n_loras);
  if (s != TN_OK) tn_infer_loaded_free(out);
  return s;
}

void tn_infer_loaded_free(tn_infer_loaded *l) {
  tn_lora_sets_free(l->loras, l->n_loras);
  tn_tokenizer_free(l->tok);
  tn_model_free(l->model);
  *l = (tn_infer_loaded){0};
}
