/* lora.h (train) - training a LoRA adapter set (model/lora.h): its gradient buffer and optimizer
 * rows, and the gradients written for debugging.
 * Not for: loading, activating, merging or saving adapters (model/lora.h). */
#ifndef TN_TRAIN_LORA_H
#define TN_TRAIN_LORA_H
#include "model/lora.h"
#include "train/optim.h"

/* Gradients dA/dB in one flat buffer + the optimizer table (idempotent). */
tn_status tn_lora_alloc_grads(tn_lora_set *s);
void tn_lora_zero_grads(tn_lora_set *s);

/* The gradients under the PEFT tensor names (a debugging aid, tunic logits --lora-grads). */
tn_status tn_lora_save_grads(const tn_lora_set *s, const char *path);
#endif
