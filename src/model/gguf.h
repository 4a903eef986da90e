/* gguf.h - GGUF export (issue 21): a tn_model (f32 weights, adapters merged by the caller)
 * with its tokenizer and chat template, written as one GGUF v3 file under the tensor names and
 * metadata keys llama.cpp reads for the llama, qwen2, qwen3 and gemma3 architectures, and the
 * ggml block quantisations q8_0 and q4_0 (the reference formulas, bit for bit).
 * Not for: reading GGUF files, k-quants, merging adapters (src/train/lora.c). */
#ifndef TN_GGUF_H
#define TN_GGUF_H
#include <stdint.h>
#include "model/model.h"

typedef enum { TN_GGUF_F32, TN_GGUF_BF16, TN_GGUF_Q8_0, TN_GGUF_Q4_0 } tn_gguf_type;

typedef struct {
  tn_gguf_type type;  /* the matrices' storage; norms and biases stay f32 */
  const char *name;   /* general.name, may be NULL */
  int add_bos;        /* 1: the tokenizer prepends bos (its post-processor), 0: not, -1: unknown */
} tn_gguf_opts;

/* "f32" | "bf16" | "q8_0" | "q4_0"; TN_ERR_ARG naming the value otherwise. */
tn_status tn_gguf_parse_type(const char *s, tn_gguf_type *out);
/* Write m (every weight f32: see tn_model_to_f32) and the tokenizer files of tok_dir
 * (tokenizer.json, tokenizer_config.json, chat_template.jinja) to path (temp, fsync, rename).
 * Errors name the file and field that cannot be expressed in GGUF for llama.cpp. */
tn_status tn_gguf_export(const tn_model *m, const char *tok_dir, const char *path, const tn_gguf_opts *o);

/* ggml's block formats (32 values per block): q8_0 = {fp16 d; int8 qs[32]} (34 bytes),
 * q4_0 = {fp16 d; uint8 qs[16]} (18 bytes), the reference quantisers of ggml-quants.c.
 * k must be a multiple of 32. */
void tn_quantize_q8_0(const float *x, uint8_t *y, int64_t k);
void tn_quantize_q4_0(const float *x, uint8_t *y, int64_t k);
/* IEEE half from float, round to nearest even (subnormals, inf, nan as F16C's vcvtps2ph). */
uint16_t tn_fp16_from_f32(float f);
#endif
