/* mm_bf16.c - bf16 matmuls for f32 operands (the --bf16-matmul mode of training,
 * like torch's bf16 autocast): both operands rounded to bf16, f32 accumulation.
 * Not for: frozen bf16/nf4 weights (quant.c). */
#include <stdatomic.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

static atomic_int g_bf16;

void tn_matmul_set_bf16(bool on) { atomic_store(&g_bf16, on ? 1 : 0); }
bool tn_matmul_bf16(void) { return atomic_load_explicit(&g_bf16, memory_order_relaxed) != 0; }
