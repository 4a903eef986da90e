/* lora_grads.c - the gradient side of a LoRA set being trained (train/lora.h): one flat
 * gradient buffer in the adapter's layout, the optimizer rows under PEFT's names, and the
 * gradients written as safetensors for debugging.
 * Not for: the adapter itself (model/lora.c). */
#include <stdlib.h>
#include <string.h>
#include "train/lora.h"

tn_status tn_lora_alloc_grads(tn_lora_set *s) {
  if (s->gflat) return TN_OK;
  s->gflat = tn_alloc((s->n_floats ? s->n_floats : 1) * sizeof(float));
  s->params = calloc(2 * (size_t)(s->n > 0 ? s->n : 1), sizeof *s->params);
  if (!s->gflat || !s->params) {
    tn_free(s->gflat);
    free(s->params);
    s->gflat = NULL;
    s->params = NULL;
    return tn_error(TN_ERR_NOMEM, "out of memory (LoRA gradients)");
  }
  for (int i = 0; i < s->n; i++) {
    tn_lora_module *md = &s->mods[i];
    md->lora.dA = s->gflat + (md->lora.A - s->flat);
    md->lora.dB = s->gflat + (md->lora.B - s->flat);
    s->params[2 * i] = (tn_param){md->name_a, md->lora.A, md->lora.dA, (size_t)md->lora.r * md->mat->in, true};
    s->params[2 * i + 1] = (tn_param){md->name_b, md->lora.B, md->lora.dB, (size_t)md->mat->out * md->lora.r, true};
  }
  s->n_params = 2 * s->n;
  return TN_OK;
}

void tn_lora_zero_grads(tn_lora_set *s) {
  if (s->gflat) memset(s->gflat, 0, s->n_floats * sizeof(float));
}

tn_status tn_lora_save_grads(const tn_lora_set *s, const char *path) {
  if (!s->gflat) return tn_error(TN_ERR_ARG, "adapter '%s' has no gradients", s->name);
  tn_st_entry *e;
  TN_TRY(tn_lora_entries(s, s->gflat, &e));
  tn_status st = tn_st_write(path, e, 2 * s->n, "{\"format\":\"pt\"}");
  free(e);
  return st;
}
