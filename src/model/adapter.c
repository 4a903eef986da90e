/* adapter.c - the public adapter API (tunic/adapter.h) over the LoRA sets of lora.c.
 * Not for: creating or training adapters (lora.c, the trainers). */
#include "tunic/adapter.h"
#include "model/lora.h"

tn_status tn_adapter_load(tn_model *m, const char *dir, const char *name, tn_adapter **out) {
  if (!m || !dir || !out) return tn_error(TN_ERR_ARG, "tn_adapter_load: NULL argument");
  return tn_lora_load(m, dir, name, out);
}
void tn_adapter_activate(tn_adapter *a) { if (a) tn_lora_activate(a); }
void tn_adapter_deactivate(tn_adapter *a) { if (a) tn_lora_deactivate(a); }
bool tn_adapter_is_active(const tn_adapter *a) { return a && tn_lora_is_active(a); }
const char *tn_adapter_name(const tn_adapter *a) { return a ? a->name : NULL; }
int tn_adapter_rank(const tn_adapter *a) { return a ? a->rank : 0; }
tn_status tn_adapter_merge(tn_adapter *a) {
  if (!a) return tn_error(TN_ERR_ARG, "tn_adapter_merge: NULL adapter");
  return tn_lora_merge(a);
}
tn_status tn_adapter_save(const tn_adapter *a, const char *dir) {
  if (!a || !dir) return tn_error(TN_ERR_ARG, "tn_adapter_save: NULL argument");
  return tn_lora_save(a, dir);
}
void tn_adapter_free(tn_adapter *a) { tn_lora_free(a); }
