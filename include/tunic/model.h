/* tunic/model.h - loading Hugging Face checkpoints (public API). */
#ifndef TUNIC_MODEL_H
#define TUNIC_MODEL_H
#include "tunic/base.h"
typedef struct tn_model tn_model;
/* Load config.json + model.safetensors (or shards) from DIR. */
TN_API tn_status tn_model_load(tn_model **out, const char *dir);
TN_API void tn_model_free(tn_model *m);
#endif
