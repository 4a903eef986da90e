/* tensor.h - the numeric kernels of the decoder, each *_forward with its
 * *_backward. Activations and gradients are f32, row-major. Dimension letters are
 * used the same way everywhere: N rows (tokens, = B*T when training), C model
 * width, H query heads, KV key/value heads, D head dim, F ffn width, V vocab.
 * Backward functions ACCUMULATE into their gradient outputs (+=), as llm.c does;
 * callers zero gradient buffers once per step.
 * Not for: model structure (src/model), losses over sequences (src/train). */
#ifndef TN_TENSOR_H
#define TN_TENSOR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tunic/base.h"

typedef enum { TN_F32 = 0, TN_BF16, TN_F16, TN_NF4 } tn_dtype;
const char *tn_dtype_name(tn_dtype t);
size_t tn_dtype_size(tn_dtype t); /* bytes per element (0 for packed types) */

/* A LoRA adapter on one linear layer: y += scale * (x A^T) B^T.
 * A (r, in), B (out, r). Owned by src/train; the decoder only reads it. */
typedef struct tn_lora {
  int r;
  float scale;
  float *A, *B;       /* (r, in), (out, r) */
  float *dA, *dB;     /* gradients, same shapes (NULL when not training) */
  bool enabled;       /* false: the base layer alone (reference model in DPO/GRPO) */
  /* LoRA dropout on the adapter's input, as PEFT: y += scale * B A dropout(x).
   * Active when train && dropout > 0. No mask is stored: element (i, j) of the
   * call's x (N, in) is kept iff tn_lora_keep(seed, counter, i*in + j, dropout),
   * kept values scaled by 1/(1-dropout); the backward of the same call (same
   * counter) regenerates the mask. The trainer changes counter per forward. */
  float dropout;
  uint64_t seed, counter;
  bool train;
} tn_lora;

/* The dropout mask of tn_lora (counter-based hash, same on every thread count). */
static inline bool tn_lora_keep(uint64_t seed, uint64_t counter, uint64_t idx, float p) {
  uint64_t z = seed ^ (counter * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  z += idx * 0x9e3779b97f4a7c15ull;  /* splitmix64 of (key + idx * golden) */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.0f / 16777216.0f) >= p;  /* 24-bit uniform in [0, 1) */
}

/* A weight matrix W (out, in) as stored by Hugging Face (y = x W^T).
 * Frozen weights may later be bf16 or nf4 (issue 7): the matmul dispatches on dtype. */
typedef struct tn_mat {
  int out, in;
  tn_dtype dtype;
  float *w;           /* (out, in) f32 data when dtype == TN_F32 */
  void *q;            /* packed data for other dtypes */
  tn_lora *lora;      /* optional adapter */
} tn_mat;

/* ---- matmul ---- */
/* y (N, out) = x (N, in) W^T [+ bias (out)] [+ LoRA]; y is overwritten. */
void tn_linear_forward(float *y, const float *x, const tn_mat *W, const float *bias, int N);
/* y (N, out) += the delta of the adapter W->lora alone, scale * (x A^T) B^T (what tn_linear_forward adds
 * for an enabled adapter), whatever W->lora->enabled says: several adapters in one forward call
 * (model/lora.h, tn_state_set_adapter) add each row group's own. */
void tn_linear_lora(float *y, const float *x, const tn_mat *W, int N);
/* Fused decoding: inside a parallel region, each of nparts threads calls
 * tn_linear_part with its part to compute outputs [o0, o1) of tn_part_range(out)
 * (bias included), the same numbers as tn_linear_forward. Only for weights
 * without an enabled adapter: f32 with N <= 32 rows, bf16 / nf4 (the GEMV of
 * quant.c) with N <= 8 (tn_linear_part_ok). */
bool tn_linear_part_ok(const tn_mat *W, int N);
void tn_part_range(int out, int part, int nparts, int *o0, int *o1);
void tn_linear_part(float *y, const float *x, const tn_mat *W, const float *bias, int N, int part, int nparts);
/* The same numbers for an explicit output range [o0, o1) (any split gives the same values). */
void tn_linear_rows(float *y, const float *x, const tn_mat *W, const float *bias, int N, int o0, int o1);
/* Prefetch into L2 the first `bytes` of the weights of outputs [o0, o1) (f32; no-op otherwise):
 * a thread about to wait at a barrier starts its next weight stream early. */
void tn_linear_prefetch(const tn_mat *W, int o0, int o1, size_t bytes);
/* Fused prefill: outputs [o0, o1) of y (N, out) = x W^T [+ bias] for any N, on the calling
 * thread (packed register-blocked GEMM; each output one FMA chain over `in`, so the same
 * value whatever N or the column split). f32 weights without an enabled adapter
 * (tn_linear_cols_ok). tn_cols_range cuts `out` at multiples of 16. `next` (or NULL): the
 * matrix this thread multiplies next, from output next_o0, whose first weights are
 * prefetched into L2 during the last panel. */
bool tn_linear_cols_ok(const tn_mat *W);
void tn_cols_range(int out, int part, int nparts, int *o0, int *o1);
void tn_linear_cols(float *y, const float *x, const tn_mat *W, const float *bias, int N, int o0, int o1,
                    const tn_mat *next, int next_o0);
/* dx (N, in) += dy W [+ LoRA path] if dx; dW (out, in) += dy^T x if dW (NULL: frozen
 * base); dbias (out) += column sums of dy if dbias. With an enabled adapter,
 * W->lora->dA (r, in) and dB (out, r) accumulate when not NULL. The (N, r)
 * temporaries live in a per-thread scratch reused across calls. */
void tn_linear_backward(float *dx, float *dW, float *dbias, const float *dy, const float *x,
                        const tn_mat *W, int N);

/* ---- RMSNorm over the last dim C: y = x / sqrt(mean(x^2) + eps) * (w or 1+w) ----
 * rstd (N) is written when not NULL (saved for backward). */
void tn_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int C,
                        float eps, bool plus_one);
void tn_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         const float *rstd, int N, int C, bool plus_one);

/* ---- RoPE, Hugging Face "rotate_half" layout: pairs (i, i + D/2) ----
 * x (N, nh, D) rotated in place at positions pos (N); cos/sin tables (maxT, D/2). */
void tn_rope_forward(float *x, const int *pos, const float *cos, const float *sin, int N, int nh, int D);
/* Backward is the rotation by -angle, in place on dx. */
void tn_rope_backward(float *dx, const int *pos, const float *cos, const float *sin, int N, int nh, int D);
/* Fill cos/sin (maxT, D/2) the way HF computes them in f32 from inv_freq (D/2). */
void tn_rope_tables(float *cos, float *sin, const float *inv_freq, int maxT, int D);

/* ---- activations (elementwise) ---- */
typedef enum { TN_ACT_SILU = 0, TN_ACT_GELU_TANH } tn_act;
/* h (N*F) = act(gate) * up */
void tn_glu_forward(float *h, const float *gate, const float *up, size_t n, tn_act act);
void tn_glu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up,
                     size_t n, tn_act act);

/* ---- attention ----
 * Rows i = 0..N-1 are queries q (N, H, D). Row i attends to the keys of its
 * sequence at positions lo_i..pos_i, where lo_i = max(0, pos_i - window + 1)
 * for window > 0, else 0. Keys/values of sequence s at position t live at
 * k + s*seq_stride + t*KV*D (same for v), already rotated.
 * out (N, H, D). att (N, H, Tmax) saves probabilities for backward (or NULL).
 * scale multiplies q.k; softcap > 0 applies cap*tanh(s/cap) before softmax. */
typedef struct {
  int N, H, KV, D, Tmax;  /* Tmax: capacity per sequence (att row stride) */
  size_t seq_stride;      /* floats between sequences in k/v */
  const int *pos, *seq;   /* (N) */
  int window;             /* 0: full causal */
  float scale, softcap;
  /* shared prompt prefixes (decoding G samples of one prompt), or NULL: positions
   * t < pfx_len[s] of sequence s are read from sequence pfx_src[s] (indexed by
   * sequence slot; forward only) */
  const int *pfx_src, *pfx_len;
  /* inference: rows outside long runs may go through the grouped decode kernel (its
   * summation order differs from the per-row path's, so training, whose backward may
   * recompute a layer with probabilities kept, leaves it off) */
  bool grouped;
} tn_attn_shape;
void tn_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const tn_attn_shape *s);
/* dq (N,H,D) +=; dk, dv (laid out like k, v) +=. Needs att from the forward. */
/* The same forward without probabilities, from inside a parallel region: each of
 * nparts threads calls it with its part and does the tasks of the kv heads
 * [tn_kv_range(KV, part, nparts)) (so a caller may project, rotate and cache exactly
 * those heads' q/k/v just before, without a barrier); the caller synchronises
 * afterwards. Same numbers. */
/* part `part` of `nparts` of [0, n), cut at multiples of `unit` (the last part ends at n) */
static inline void tn_split_range(int n, int unit, int part, int nparts, int *a, int *b) {
  const int units = (n + unit - 1) / unit;
  *a = (int)((long)units * part / nparts) * unit;
  *b = (int)((long)units * (part + 1) / nparts) * unit;
  if (*a > n) *a = n;
  if (*b > n) *b = n;
}
static inline void tn_kv_range(int KV, int part, int nparts, int *kh0, int *kh1) {
  tn_split_range(KV, 1, part, nparts, kh0, kh1);
}
void tn_attention_forward_part(float *out, const float *q, const float *k, const float *v, const tn_attn_shape *s,
                               int part, int nparts);
void tn_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                           const float *q, const float *k, const float *v, const tn_attn_shape *s);

/* ---- misc ---- */
void tn_softcap_forward(float *x, size_t n, float cap);           /* x = cap*tanh(x/cap), in place */
void tn_softcap_backward(float *dx, const float *y, size_t n, float cap); /* dx *= 1-(y/cap)^2 */
void tn_add_inplace(float *y, const float *x, size_t n);          /* y += x */
void tn_scale_inplace(float *y, float a, size_t n);
/* log-softmax helpers over V for one row: returns logsumexp */
float tn_logsumexp(const float *x, int V);
/* e (V) = exp(x - max x) with a vectorised expf (~2 ulp), for the sampler; returns
 * max x and *sum = the sum of e (double, a fixed order: sums of 16-element blocks,
 * which also land in bsum (ceil(V/16)) when not NULL, added in order). */
float tn_exp_shifted(float *e, float *bsum, const float *x, int V, double *sum);

/* ---- cross-entropy over V classes, one row per token ----
 * loss_rows (N) = logsumexp(logits_i) - logits_i[target_i]; rows with target < 0
 * are ignored (loss 0). */
void tn_xent_forward(float *loss_rows, const float *logits, const int *targets, int N, int V);
/* dlogits (N, V) = (softmax(logits_i) - onehot(target_i)) * row_weight_i
 * (row_weight NULL: 1). OVERWRITES dlogits (unlike the other backwards): it is
 * the start of the backward pass. Ignored rows (target < 0) get zeros. dlogits
 * may alias logits (computed in place). */
void tn_xent_backward(float *dlogits, const float *logits, const int *targets,
                      const float *row_weight, int N, int V);
/* Both at once (one read of the logits fewer); either output may be NULL. */
void tn_xent_forward_backward(float *loss_rows, float *dlogits, const float *logits,
                              const int *targets, const float *row_weight, int N, int V);

/* ---- frozen low-precision weights (issue 7, quant.c) ----
 * A tn_mat with dtype TN_BF16 holds q = uint16_t (out, in) row-major bf16 (round to
 * nearest even from f32); with TN_NF4, q = tn_nf4 * in bitsandbytes' layout over the
 * flattened (out, in) matrix. Such weights are frozen: tn_linear_backward takes
 * dW == NULL for them and computes the input gradient dx += dy W only. */
typedef struct tn_nf4 {
  int64_t n;            /* elements (out * in) */
  int blocksize;        /* elements per absmax block (bnb default 64) */
  int64_t nblocks;      /* ceil(n / blocksize) */
  uint8_t *codes;       /* ((n + 1) / 2) two codes per byte, FIRST element in the HIGH nibble */
  float *absmax;        /* (nblocks) max |x| per block, when !nested */
  bool nested;          /* double quantisation of the absmax (bnb compress_statistics) */
  uint8_t *qabsmax;     /* (nblocks) 8-bit codes of absmax - offset, when nested */
  float *absmax2;       /* (nblocks2) absmax of each block of blocksize2 centred absmax values */
  int blocksize2;       /* 256 */
  int64_t nblocks2;
  float offset;         /* mean of the absmax, subtracted before the 8-bit quantisation */
  float code[16];       /* NF4 values (bnb quant_map) */
  float code2[256];     /* 8-bit dynamic map (bnb nested_quant_map) */
  void *mem;            /* owned storage when made by tn_nf4_alloc, else NULL */
} tn_nf4;

extern const float tn_nf4_values[16];       /* bnb's NF4 code values, code 0..15 */
/* NF4 code of a normalised value x (x / absmax): bnb's dQuantizeNF4 decision tree
 * (strict '>' against the midpoints between neighbouring codes; NaN -> 0). */
uint8_t tn_nf4_code(float x);
/* bnb create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) in f32, with
 * torch.linspace as current PyTorch computes it on CPU (scalar, two-sided). */
void tn_dynamic_map(float code[256]);
/* bnb dQuantize<0>: the code of x in a sorted 256-entry map (binary search + midpoint). */
uint8_t tn_dynamic_code(const float code[256], float x);
/* Bytes of array storage for n elements (64-byte aligned parts). */
size_t tn_nf4_bytes(int64_t n, int blocksize, bool nested);
/* Set up q for n elements with its arrays carved from mem (tn_nf4_bytes bytes,
 * 64-byte aligned); code/code2 get the standard tables. TN_ERR_ARG on bad sizes. */
tn_status tn_nf4_init(tn_nf4 *q, int64_t n, int blocksize, bool nested, void *mem);
tn_status tn_nf4_alloc(tn_nf4 *q, int64_t n, int blocksize, bool nested); /* owns q->mem */
void tn_nf4_free(tn_nf4 *q);
/* bnb quantize_4bit(x, blocksize, compress_statistics=nested, quant_type="nf4") into an
 * initialised q: absmax per block, code = tree(x * (1 / absmax)); nested: offset =
 * mean(absmax) (correctly rounded f32), absmax - offset quantised blockwise (256) with
 * the dynamic map. */
void tn_nf4_quantize(tn_nf4 *q, const float *x);
/* Absmax of block b as dequantisation uses it (nested: code2[q] * absmax2 + offset). */
float tn_nf4_absmax(const tn_nf4 *q, int64_t b);
/* out[i - e0] = code[c_i] * absmax(block of i) for elements i in [e0, e1). */
void tn_nf4_dequantize(float *out, const tn_nf4 *q, int64_t e0, int64_t e1);
void tn_bf16_from_f32(uint16_t *dst, const float *src, size_t n);   /* round to nearest even */
/* Rows [r0, r1) of any weight (f32, bf16, nf4) as f32 into out ((r1 - r0), in). */
void tn_mat_rows_f32(float *out, const tn_mat *W, int r0, int r1);
size_t tn_mat_bytes(const tn_mat *W);  /* bytes the weight's storage takes */
/* The base matmul of a non-f32 weight (called by tn_linear_*): y (N, out) = x W^T
 * (overwritten), and dx (N, in) += dy W. */
void tn_qlinear_forward(float *y, const float *x, const tn_mat *W, int N);
void tn_qlinear_backward_dx(float *dx, const float *dy, const tn_mat *W, int N);
/* The GEMV (N <= 8, tn_qlinear_part_ok) on output columns [o0, o1) only, on the calling
 * thread (tn_linear_part): bitwise the same columns as tn_qlinear_forward. */
bool tn_qlinear_part_ok(const tn_mat *W, int N);
void tn_qlinear_rows(float *y, const float *x, const tn_mat *W, int N, int o0, int o1);
/* Kernel paths, chosen at run time by tn_isa_level() (base.h): AMX (bf16 GEMM on tdpbf16ps
 * tiles, else as AVX-512 BF16), AVX-512 BF16 (vdpbf16ps GEMM + AVX-512 GEMV), AVX-512F (GEMV;
 * GEMM via f32 tiles), portable C (also at the avx2 level). */
void tn_quant_scratch_release(void);  /* the calling thread's quant scratch */

/* ---- bf16 matmuls for f32 weights (mm_bf16.c), like torch's bf16 autocast ----
 * Process-wide switch (as torch.set_float32_matmul_precision): when on, the big
 * f32 matmuls of tn_linear_forward (N > 32 rows: fewer are decode steps, where packing W
 * costs more than the product) / tn_linear_backward (N > 8 rows), LoRA's products (N > 8),
 * attention's per-head products, the training LM head and NF4 / frozen-weight products
 * (quant.c) round both operands to bf16 (nearest even) and accumulate in f32, on AMX or
 * AVX-512 BF16 (tn_isa_level). Off by default; norms, softmax and everything else stay f32. */
void tn_matmul_set_bf16(bool on);
bool tn_matmul_bf16(void);
/* C (M, N) = op(A) op(B) (beta 0) or C += op(A) op(B) (beta 1), row-major as cblas_sgemm
 * (op(A) = A (M, K) or, transA, A^T with A (K, M); op(B) = B (K, N) or, transB, B^T with
 * B (N, K)), operands rounded to bf16, f32 accumulation, on AMX tiles (tn_isa_level() amx)
 * or vdpbf16ps (avx512bf16). Returns false (C untouched) below the avx512bf16 level or when
 * beta is not 0/1: the caller computes in f32 instead. Call outside OpenMP parallel regions. */
bool tn_gemm_bf16(bool transA, bool transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc);
bool tn_amx_available(void);
/* which bf16 GEMM the current ISA level runs: "amx (tdpbf16ps)", "avx512bf16 (vdpbf16ps)"
 * or "f32 (no bf16 arithmetic)" (benchmark headers, warnings) */
const char *tn_gemm_bf16_path(void);
/* C = alpha op(A) op(B) (+ C): alpha multiplies op(A) before its rounding to bf16. */
bool tn_gemm_bf16_ex(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);
/* tn_gemm_bf16 on the calling thread alone, usable inside parallel regions, with
 * C = alpha op(A) op(B) (+ C): alpha multiplies op(A) before its rounding to bf16. */
bool tn_gemm_bf16_serial(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);
/* op(B) (K, N) packed once in bf16 for several tn_gemm_bf16_packed calls (e.g. the LM
 * head's weight over row chunks); zero-initialise, reuse (grows as needed), free. */
typedef struct {
  uint32_t *p;
  size_t cap;
  int N, K;
} tn_bf16_packed;
bool tn_bf16_pack_b(tn_bf16_packed *pk, bool transB, int N, int K, const float *B, int ldb);
bool tn_gemm_bf16_packed(bool transA, int M, const float *A, int lda, const tn_bf16_packed *pk, float beta, float *C,
                         int ldc);
void tn_bf16_packed_free(tn_bf16_packed *pk);
void tn_mm_bf16_scratch_release(void); /* the calling thread's packing buffer */

/* Free the calling thread's kernel scratch buffers (they are kept and reused
 * across calls otherwise; call at thread exit or at the end of a program). */
void tn_tensor_scratch_release(void);

#endif
