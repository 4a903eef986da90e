/* model.h - the decoder shared by every family, configured by a table of
 * differences (norm style, biases, qk-norm, activation, embedding scale, tied
 * head, sliding window, soft-caps, RoPE bases), not by a copy per family.
 * Weights (read-only, shareable between generators and a trainer) are separate
 * from per-call state (tn_state: KV cache, activations, RoPE tables).
 * Not for: sampling (src/generate), losses and optimizers (src/train). */
#ifndef TN_MODEL_H
#define TN_MODEL_H
#include <stdbool.h>
#include "base/base.h"
#include "model/safetensors.h"
#include "tensor/tensor.h"
#include "tunic/model.h"

typedef enum { TN_ARCH_LLAMA, TN_ARCH_QWEN2, TN_ARCH_QWEN3, TN_ARCH_GEMMA3 } tn_arch;
typedef enum { TN_ROPE_DEFAULT, TN_ROPE_LINEAR, TN_ROPE_LLAMA3 } tn_rope_type;

typedef struct {
  tn_rope_type type;
  float theta, factor;              /* base; scaling factor (linear, llama3) */
  float low_freq_factor, high_freq_factor;
  int original_max_pos;             /* llama3 */
} tn_rope_cfg;

#define TN_MAX_EOS 8
typedef struct {
  tn_arch arch;
  char model_type[32];
  int V, C, L, H, KV, D, F;         /* vocab, hidden, layers, heads, kv heads, head dim, ffn */
  int max_pos;
  float eps;
  /* the table of differences */
  bool norm_plus_one;               /* gemma: x * (1 + w) */
  bool sandwich_norms;              /* gemma: post-attention and post-feedforward norms */
  bool qk_norm;                     /* qwen3, gemma3 */
  bool qkv_bias, o_bias, mlp_bias;  /* qwen2: qkv; llama: attention_bias / mlp_bias */
  tn_act act;
  float embed_scale;                /* gemma: sqrt(C) (rounded to the checkpoint dtype) */
  bool tied;
  float attn_scale;                 /* 1/sqrt(D), or query_pre_attn_scalar^-1/2 */
  float final_softcap, attn_softcap;/* 0 = off */
  int window;                       /* sliding window (tokens), 0 = none */
  bool *layer_local;                /* (L) true: sliding-window layer */
  tn_rope_cfg rope, rope_local;     /* global layers; local (sliding) layers */
  tn_st_dtype dtype;                /* torch_dtype of the checkpoint */
  int bos_id, pad_id, n_eos, eos_ids[TN_MAX_EOS];
} tn_config;

/* Parse DIR/config.json (and generation_config.json for stop ids). Refuses any
 * model_type or field value it cannot honour, naming the file and the field. */
tn_status tn_config_load(tn_config *c, const char *dir);
void tn_config_free(tn_config *c);
/* RoPE inverse frequencies (D/2) for a layer's rope config, as HF computes them. */
void tn_rope_inv_freq(float *inv, const tn_rope_cfg *r, int D);

typedef struct {
  float *attn_norm, *attn_post_norm, *mlp_norm, *mlp_post_norm; // (C) each; post: gemma only
  tn_mat wq, wk, wv, wo;            // (H*D, C), (KV*D, C), (KV*D, C), (C, H*D)
  float *bq, *bk, *bv, *bo;         // (H*D), (KV*D), (KV*D), (C) or NULL
  float *q_norm, *k_norm;           // (D) or NULL
  tn_mat gate, up, down;            // (F, C), (F, C), (C, F)
  float *bgate, *bup, *bdown;       // mlp biases or NULL
} tn_layer;

typedef struct {
  float *embed;                     // (V, C) f32, or NULL when stored bf16 (embed_bf16)
  tn_layer *layers;                 // (L)
  float *final_norm;                // (C)
  tn_mat head;                      // (V, C); .w == embed when tied; bf16: .q (== embed_bf16 when tied)
  uint16_t *embed_bf16;             // (V, C) the embedding table in bf16 (issue 7), else NULL
} tn_weights;

/* The parameter table: every tensor of the checkpoint with its HF name, shape and
 * the address of the pointer that holds its data inside a tn_weights. The same
 * table carves gradient buffers (a second tn_weights) out of one flat array. */
typedef struct {
  char name[112];
  int ndim;
  int64_t shape[2];
  size_t numel;
  float **ptr;                      /* where the data pointer lives in the tn_weights */
  bool is_norm, is_bias;
  tn_mat *mat;                      /* the projection matrix (q,k,v,o,gate,up,down) this entry
                                       is the weight of, else NULL: these may be bf16/nf4 */
  bool in_qbuf;                     /* stored outside the flat f32 buffer (the bf16 embedding or
                                       LM head of a model loaded with a bf16/nf4 base); *ptr NULL */
} tn_weight_entry;
/* Build the table for config c over weights w (sets the tn_mat dims; data pointers untouched). */
tn_status tn_weight_table(const tn_config *c, tn_weights *w, tn_weight_entry **out, int *n);

struct tn_model {
  tn_config cfg;
  tn_weights w;
  tn_weight_entry *params;
  int n_params;
  size_t n_floats;                  /* total parameter count */
  float *owned;                     /* one flat f32 buffer holding every parameter */
  char *dir;
  /* issue 7: the projection matrices may be stored as bf16 or nf4 (then they are not
   * in `owned`; n_floats counts only what `owned` holds) */
  tn_dtype base_dtype;              /* storage of the projections: TN_F32, TN_BF16, TN_NF4 */
  void *qbuf;                       /* one allocation holding every bf16/nf4 matrix */
  size_t qbuf_bytes;
  tn_nf4 *nf4;                      /* (n_nf4) NF4 states, pointed to by tn_mat.q */
  int n_nf4;
};

/* ---- loading with a storage dtype for the frozen projections (issue 7) ----
 * q,k,v,o,gate,up,down weights become bf16 (round to nearest even) or NF4
 * (bitsandbytes quantize_4bit, blocksize 64, double quantisation by default).
 * With a bf16 or nf4 base the embedding table and the LM head (one tensor when tied)
 * are stored bf16, as bitsandbytes leaves them in 16 bits: the head is the largest
 * matrix read per decoded token (qwen2.5-0.5b: 136 M of 494 M parameters). They are
 * frozen there (full fine-tuning needs an f32 base; LoRA never adapts them). Norms
 * and biases stay f32. Checkpoints saved by bitsandbytes (config.json
 * quantization_config: load_in_4bit, nf4) are read as they are stored (auto/nf4) or
 * dequantised (f32/bf16). */
#define TN_DTYPE_AUTO (-1)
typedef struct {
  int base_dtype;                   /* TN_F32, TN_BF16, TN_NF4 or TN_DTYPE_AUTO: f32, or nf4
                                       for bitsandbytes 4-bit checkpoints */
  int nf4_blocksize;                /* 64 */
  bool nf4_double_quant;            /* true */
  int head_dtype;                   /* embedding + LM head: TN_F32, TN_BF16 or TN_DTYPE_AUTO
                                       (default): bf16 when the projections are bf16 or nf4,
                                       except a bitsandbytes checkpoint read as nf4 follows its
                                       bnb_4bit_compute_dtype (float32 or absent: f32) */
} tn_load_opts;
void tn_load_opts_default(tn_load_opts *o);
/* "f32" | "bf16" | "nf4" | "auto" -> base_dtype; TN_ERR_ARG naming the value otherwise. */
tn_status tn_parse_base_dtype(const char *s, int *out);
/* "f32" | "bf16" | "auto" -> head_dtype (--head-dtype); TN_ERR_ARG naming the value otherwise. */
tn_status tn_parse_head_dtype(const char *s, int *out);
tn_status tn_model_load_opts(tn_model **out, const char *dir, const tn_load_opts *o);
/* Bytes taken by the projection matrices and their parameter count. */
void tn_model_frozen_bytes(const tn_model *m, size_t *bytes, size_t *params);
/* Bytes and parameter count of every weight (embedding and head once when tied). */
void tn_model_weight_bytes(const tn_model *m, size_t *bytes, size_t *params);
/* x (N, C) = embedding rows of tok (N) times the config's embed_scale, from the f32 or
 * bf16 table. */
void tn_embed_rows(const tn_model *m, float *x, const int *tok, int N);
/* Every bf16/nf4 tensor of m converted to f32 in place (the values the low-precision
 * model computes with: NF4 dequantised, bf16 widened), so that m is a plain f32 model
 * (merging, saving). */
tn_status tn_model_to_f32(tn_model *m);

/* ---- per-call state: KV cache and activations ----
 * S sequences (slots) of capacity T tokens each. In training mode every layer
 * keeps its activations for the backward pass; otherwise one scratch set is
 * reused by all layers. Rows of one forward call may belong to any slots. */
typedef struct {
  float *x_in;      // (N, C) residual stream entering the layer
  float *xn;        // (N, C) normed input of attention
  float *rstd_att;  // (N)
  float *q;         // (N, H, D) after q-norm and RoPE
  float *qn_pre;    // (N, H, D) q before q-norm (qk_norm only), saved for backward
  float *kn_pre;    // (N, KV, D) k before k-norm
  float *rstd_q, *rstd_k; // (N*H), (N*KV)
  float *att;       // (N, H, T) probabilities (training only)
  float *ao;        // (N, H, D) attention output before o_proj
  float *o;         // (N, C) o_proj output (before the post norm, gemma)
  float *rstd_opost;// (N)
  float *x_mid;     // (N, C) residual after attention
  float *xn2;       // (N, C) normed input of the MLP
  float *rstd_mlp;  // (N)
  float *g, *u;     // (N, F) gate and up projections
  float *h;         // (N, F) act(g) * u
  float *m;         // (N, C) down-projection output (before post norm, gemma)
  float *rstd_mpost;// (N)
} tn_layer_acts;

typedef struct tn_state {
  int S, T;                 /* slots, capacity per slot */
  int Nmax;                 /* max rows per forward call */
  bool train;
  float *k, *v;             // (L, S, T, KV, D) caches (in training: this batch's keys/values)
  int *len;                 // (S) tokens currently cached per slot
  int *pfx_src, *pfx_len;   // (S) shared prompt prefixes: positions < pfx_len[s] of slot s
                            // are read from slot pfx_src[s] (tn_state_share_prefix)
  bool pfx_any;             /* some slot shares a prefix */
  float *cos_g, *sin_g, *cos_l, *sin_l; // (T, D/2) RoPE tables for global / local layers
  tn_layer_acts *acts;      // (L) views; all alias one scratch set unless train
  float *x_out;             // (N, C) residual after the last layer
  float *xf;                // (N, C) after the final norm
  float *rstd_f;            // (N)
  float *vr;                // (N, KV*D) value rows of this call (scratch)
  float *tmp;               // (N, max(C, H*D)) scratch
  float *xg;                // (N, C) rows gathered for the head
  float *buf;               /* the single allocation behind everything above */
  size_t buf_floats;
  bool recompute;           /* train only: acts[l] keeps x_in; the rest is one shared set,
                               recomputed layer by layer by the backward pass */
  struct tn_lora_rows *ad;  /* per-slot adapters (model/lora.h: tn_state_set_adapter), NULL: none */
} tn_state;

tn_status tn_state_create(tn_state **out, const tn_model *m, int S, int T, int Nmax, bool train);
/* Options of a state beyond tn_state_create's (zero-initialise for the defaults). */
typedef struct {
  bool recompute;           /* activation recomputation (train): keep only each layer's input
                               x_in (N, C) and recompute the rest in the backward pass: less
                               memory for one more forward of every layer */
} tn_state_opts;
tn_status tn_state_create_opts(tn_state **out, const tn_model *m, int S, int T, int Nmax, bool train,
                               const tn_state_opts *o);
/* Layer l of a forward call (tn_forward runs every layer; the backward pass runs it
 * again with write_out false when the state recomputes). keep_att: save the
 * attention probabilities (training without recompute, or the recomputation). */
void tn_layer_forward(const tn_model *m, tn_state *st, int l, int N, const int *pos, const int *seq, bool keep_att,
                      bool write_out);
void tn_state_free(tn_state *st);
size_t tn_state_kv_stride(const tn_model *m, const tn_state *st); /* floats per (layer, slot) */
/* Copy slot src's cache (first n tokens) into slot dst (prefix sharing for n samples). */
void tn_state_copy_slot(const tn_model *m, tn_state *st, int dst, int src, int n);
/* Let slot dst read the first n tokens of slot src's cache in place instead of a copy
 * (the G samples of one prompt share its prefill; attention then reads each prefix
 * key once for the G rows). src must hold those n tokens and keep them while dst uses
 * them; dst's own tokens start at position n. A forward row writing a shared position
 * (dst below n, or src below n while dst uses it) first turns the sharing into a copy. */
void tn_state_share_prefix(const tn_model *m, tn_state *st, int dst, int src, int n);
/* Training states: the rows of one forward/backward call may share prompt prefixes
 * (GRPO's G completions of a prompt): tn_state_train_prefix(st, dst, src, n) says the
 * first n positions of slot dst are the rows of slot src in the same call, so their
 * projections, norms and MLP run once. Each layer copies those keys/values into dst
 * before attention, and the backward pass adds dst's key/value gradients below n back
 * into src's: the numbers of computing every sequence whole, up to summation order.
 * tn_state_train_prefix_clear drops all of them (before laying out a new batch). */
void tn_state_train_prefix(tn_state *st, int dst, int src, int n);
void tn_state_train_prefix_clear(tn_state *st);
/* Whether trainers share prompts this way (GRPO's G completions, DPO's chosen/rejected):
 * true unless TN_NO_SHARED_PREFIX is set to something other than "" or "0", which makes
 * them compute every sequence whole (for comparisons). */
bool tn_train_prefix_sharing(void);

/* One forward call over N rows: row i is token tok[i] of slot seq[i] at position
 * pos[i]; its key/value are written into the slot's cache and it attends to the
 * slot's cached positions up to pos[i]. All rows of a slot must arrive in
 * position order, earlier positions already cached or in this call.
 * logits (n_out, V) are computed for rows out_rows[0..n_out) (all rows when
 * out_rows == NULL and n_out == N). Returns TN_ERR_LIMIT if a position >= T. */
tn_status tn_forward(const tn_model *m, tn_state *st, int N, const int *tok, const int *pos,
                     const int *seq, float *logits, const int *out_rows, int n_out);
/* Decoding a few rows (<= 8, inference, f32 projections without adapters) runs as one
 * parallel region per forward, with the same numbers as the per-kernel path; off
 * selects the per-kernel path (also TN_NO_FUSED_DECODE=1 in the environment). */
void tn_forward_set_fused(bool on);
/* Free the calling thread's buffers of the fused paths (before a thread that ran forwards exits). */
void tn_forward_thread_release(void);
/* Prefill (> 8 rows, inference, f32 projections without adapters, AVX-512) likewise runs
 * as one parallel region on the packed GEMM; the numbers differ from the per-kernel path
 * (sgemm) by float rounding only and do not depend on the thread count or the batch;
 * off selects the per-kernel path (also TN_NO_FUSED_PREFILL=1 in the environment). */
void tn_forward_set_fused_prefill(bool on);

/* ---- checkpoints ---- */
/* Random init in the exact HF layout (config.json, model.safetensors, generation_config.json). */
typedef struct {
  const char *arch, *size, *dtype;  /* dtype: "f32" | "bf16" | "f16" */
  int vocab, shards;
  uint64_t seed;
  const char *override_json;        /* merged into config.json, may be NULL */
} tn_init_opts;
tn_status tn_model_init_dir(const char *out_dir, const tn_init_opts *o);
/* Embedding rows of a tiny model with the byte tokenizer (tn_write_byte_tokenizer,
 * include/tunic/tokenizer.h: 261 ids, padded). */
#define TN_BYTE_TOKENIZER_VOCAB 264
/* A model with config c and zeroed weights in one flat buffer (for init and tests). */
tn_status tn_model_alloc(tn_model **out, const tn_config *c);
/* Write the weights as model.safetensors (or `shards` shards) in DIR, converting to dtype. */
tn_status tn_model_save_weights(const tn_model *m, const char *out_dir, tn_st_dtype dtype, int shards);
/* Copy the files that make a weights folder a usable model (config.json,
 * generation_config.json, tokenizer files) from one folder to another; those
 * absent in `from` are skipped, config.json is required. */
tn_status tn_model_copy_files(const char *from, const char *to);
/* Any weight-shaped set (e.g. gradients) to one safetensors file under the HF names. */
tn_status tn_weights_save_file(const tn_config *c, tn_weights *w, const char *path, tn_st_dtype dtype);
#endif
