/* quant.c - frozen weights in low precision (issue 7): NF4 exactly as bitsandbytes
 * defines it (quantize_4bit / dequantize_4bit, blocksize, double quantisation of the
 * absmax with the 8-bit dynamic map), bf16 conversion, and the matmul kernels for
 * bf16 and NF4 weights: forward y = x W^T and input gradient dx += dy W.
 *
 * Kernel paths (chosen at run time, tn_isa_level, base/isa.c):
 *  - N <= 8 rows (decoding): a GEMV that streams the packed weight once, x in f32, with
 *    a software prefetch ahead of the stream (it reaches the read bandwidth; without it
 *    the bf16 and NF4 GEMVs fell 20-40% short). NF4: 128 weights per 64-byte load, one
 *    shift + one vpermps of the 16-entry code table per 16 weights, the block absmax
 *    applied per group (nf4_fast_rows; the weights are the exact dequantised values).
 *    bf16: widened to f32 by a shift / a mask and f32 FMAs (exact products; as fast as
 *    vdpbf16ps here, which would round x to bf16), one row at a time with two
 *    accumulators (blocks of 4 rows measured slower). AVX-512F, or plain C.
 *  - N > 8, bf16, AMX (Sapphire Rapids): W widened to f32 in ~16 MB tiles of rows and
 *    multiplied by mm_bf16.c's tdpbf16ps GEMM (x rounded to bf16, W packed back to the
 *    same bf16 values): measured 655 GFLOP/s on one core against 60 for the vdpbf16ps
 *    GEMM and 147 for f32 tiles + sgemm.
 *  - N > 8, bf16, AVX-512 BF16 without AMX: vdpbf16ps GEMM; x is rounded to bf16, W is
 *    packed per 64-row block into pair-interleaved panels in a per-thread buffer.
 *  So with AVX-512 BF16 or AMX a bf16 forward of more than 8 rows rounds x to bf16 (as oneDNN /
 *  PyTorch bf16 matmuls do); decoding, input gradients and NF4 stay f32 throughout.
 *  - otherwise (NF4 GEMM, every input gradient, CPUs without the instructions): W is
 *    dequantised in tiles of rows into a cache-sized f32 buffer and OpenBLAS runs the
 *    GEMM on the tile; NF4 results are therefore exact f32 GEMMs of the dequantised
 *    weights.
 * Not for: f32 weights (linear.c), LoRA, loading checkpoints (src/model). */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"
#include "tensor/tensor.h"

#define TN_T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define TN_T_BF16 __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl,avx512dq")))

/* ---------------------------------------------------------------- NF4 format ---- */

/* bitsandbytes functional.get_4bit_type("nf4") / CUDA nf4_dequantization_lut */
const float tn_nf4_values[16] = {
  -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
  -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
  0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
  0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

/* The thresholds of bnb's dQuantizeNF4 tree (csrc/kernels.cu), in increasing order:
 * the tree returns the number of thresholds t with x > t. */
static const float nf4_thr[15] = {
  -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
  -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
  0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
  0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

uint8_t tn_nf4_code(float x) {
  unsigned c = 0;
  for (int i = 0; i < 15; i++) c += x > nf4_thr[i];
  return (uint8_t)c;
}

/* torch.linspace(start, end, steps) in f32 as current PyTorch CPU computes it:
 * step = (end - start) / (steps - 1); first half start + step*i, second half
 * end - step*(steps - 1 - i). */
static void linspace_f32(float *out, float start, float end, int steps) {
  const float step = (end - start) / (float)(steps - 1);
  const int half = steps / 2;
  for (int i = 0; i < steps; i++) out[i] = i < half ? start + step * (float)i : end - step * (float)(steps - i - 1);
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

void tn_dynamic_map(float code[256]) {
  /* signed, max_exponent_bits 7, total_bits 8: for i in 0..6, 2^i + 1 linspace
   * boundaries in [0.1, 1], their midpoints scaled by 10^(i-6) (the Python scalar
   * becomes an f32 in torch's multiply), both signs; then 0 and 1; sorted. */
  float data[256], b[65];
  int k = 0;
  for (int i = 0; i < 7; i++) {
    const int items = (1 << i) + 1;
    linspace_f32(b, 0.1f, 1.0f, items);
    const float scale = (float)pow(10.0, (double)(i - 6));
    for (int j = 0; j + 1 < items; j++) {
      const float mean = (b[j] + b[j + 1]) / 2.0f;
      data[k++] = scale * mean;
      data[k++] = -scale * mean;
    }
  }
  data[k++] = 0.0f;
  data[k++] = 1.0f;
  qsort(data, 256, sizeof(float), cmp_float);
  memcpy(code, data, sizeof data);
}

uint8_t tn_dynamic_code(const float code[256], float x) {
  /* bitsandbytes csrc/kernels.cu dQuantize<STOCHASTIC=0>, line for line */
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f, val = code[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) {
    float mid = (upper + val) * 0.5f;
    return (uint8_t)(x > mid ? upper_pivot : pivot);
  }
  float mid = (lower + val) * 0.5f;
  return (uint8_t)(x < mid ? lower_pivot : pivot);
}

static size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t tn_nf4_bytes(int64_t n, int blocksize, bool nested) {
  if (n <= 0 || blocksize <= 0) return 0;
  const int64_t nb = (n + blocksize - 1) / blocksize, nb2 = (nb + 255) / 256;
  size_t s = al64((size_t)(n + 1) / 2);
  if (nested) s += al64((size_t)nb) + al64((size_t)nb2 * 4);
  else s += al64((size_t)nb * 4);
  return s;
}

tn_status tn_nf4_init(tn_nf4 *q, int64_t n, int blocksize, bool nested, void *mem) {
  memset(q, 0, sizeof *q);
  if (n <= 0 || blocksize < 2 || (blocksize & 1))
    return tn_error(TN_ERR_ARG, "nf4: need n > 0 and an even blocksize >= 2 (got n %lld, blocksize %d)", (long long)n,
                    blocksize);
  q->n = n;
  q->blocksize = blocksize;
  q->nblocks = (n + blocksize - 1) / blocksize;
  q->nested = nested;
  q->blocksize2 = 256;
  q->nblocks2 = (q->nblocks + 255) / 256;
  memcpy(q->code, tn_nf4_values, sizeof q->code);
  tn_dynamic_map(q->code2);
  unsigned char *p = mem;
  q->codes = p;
  p += al64((size_t)(n + 1) / 2);
  if (nested) {
    q->qabsmax = p;
    p += al64((size_t)q->nblocks);
    q->absmax2 = (float *)p;
  } else {
    q->absmax = (float *)p;
  }
  return TN_OK;
}

tn_status tn_nf4_alloc(tn_nf4 *q, int64_t n, int blocksize, bool nested) {
  void *mem = tn_alloc(tn_nf4_bytes(n, blocksize, nested));
  if (!mem) return TN_ERR_NOMEM;
  tn_status s = tn_nf4_init(q, n, blocksize, nested, mem);
  if (s != TN_OK) { tn_free(mem); return s; }
  q->mem = mem;
  return TN_OK;
}

void tn_nf4_free(tn_nf4 *q) {
  if (!q) return;
  tn_free(q->mem);
  memset(q, 0, sizeof *q);
}

void tn_nf4_quantize(tn_nf4 *q, const float *x) {
  const int64_t n = q->n, bs = q->blocksize, nb = q->nblocks;
  float *am = q->nested ? malloc(sizeof(float) * nb) : q->absmax;
  if (!am) abort(); /* nblocks floats, load time only */
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < nb; b++) {
    const int64_t e0 = b * bs, e1 = e0 + bs < n ? e0 + bs : n;
    float m = -3.402823466e38f; /* -FLT_MAX, then fmaxf as the CUDA kernel */
    for (int64_t i = e0; i < e1; i++) m = fmaxf(m, fabsf(x[i]));
    am[b] = m;
    const float r = 1.0f / m;
    /* blocks start on even elements when bs is even, so bytes are whole */
    for (int64_t i = e0; i < e1; i += 2) {
      unsigned hi = tn_nf4_code(x[i] * r);
      unsigned lo = i + 1 < e1 ? tn_nf4_code(x[i + 1] * r) : tn_nf4_code(0.0f * r);  /* bnb pads with 0.0 */
      q->codes[i / 2] = (uint8_t)(hi << 4 | lo);
    }
  }
  if (!q->nested) return;
  /* offset = absmax.mean(): the correctly rounded mean (sum in double) */
  double s = 0;
  for (int64_t b = 0; b < nb; b++) s += am[b];
  q->offset = (float)(s / (double)nb);
  for (int64_t b = 0; b < nb; b++) am[b] -= q->offset;
  /* quantize_blockwise(absmax - offset, blocksize=256) with the dynamic map */
  for (int64_t b2 = 0; b2 < q->nblocks2; b2++) {
    const int64_t e0 = b2 * 256, e1 = e0 + 256 < nb ? e0 + 256 : nb;
    float m = -3.402823466e38f;
    for (int64_t i = e0; i < e1; i++) m = fmaxf(m, fabsf(am[i]));
    q->absmax2[b2] = m;
    const float r = 1.0f / m;
    for (int64_t i = e0; i < e1; i++) q->qabsmax[i] = tn_dynamic_code(q->code2, am[i] * r);
  }
  free(am);
}

float tn_nf4_absmax(const tn_nf4 *q, int64_t b) {
  if (!q->nested) return q->absmax[b];
  /* dequantize_blockwise: code2[q] * absmax2 (f32), then += offset (f32) */
  float a = q->code2[q->qabsmax[b]] * q->absmax2[b / 256]; /* blocksize2 is always 256 */
  __asm__("" : "+x"(a)); /* the product rounded to f32 on its own: never an FMA with the add */
  return a + q->offset;
}

/* am[i] = tn_nf4_absmax(q, b0 + i) for i < nb: the product rounded on its own, then the
 * add (as bitsandbytes' two operations; the asm keeps the compiler from fusing them into an
 * FMA wherever this is inlined or compiled, so it is bit-identical to tn_nf4_absmax) */
__attribute__((noinline)) static void nf4_row_absmax(float *am, const tn_nf4 *q, int64_t b0, int nb) {
  if (!q->nested) {
    memcpy(am, q->absmax + b0, sizeof(float) * (size_t)nb);
    return;
  }
  for (int i = 0; i < nb; i++) {
    const int64_t b = b0 + i;
    float a = q->code2[q->qabsmax[b]] * q->absmax2[b / 256];
    __asm__("" : "+x"(a));
    am[i] = a + q->offset;
  }
}

static inline unsigned nib(const uint8_t *codes, int64_t i) {
  return i & 1 ? codes[i >> 1] & 15u : codes[i >> 1] >> 4;
}

static void nf4_deq_portable(float *out, const tn_nf4 *q, int64_t e0, int64_t e1) {
  const int64_t bs = q->blocksize;
  int64_t i = e0;
  while (i < e1) {
    const int64_t b = i / bs, end = (b + 1) * bs < e1 ? (b + 1) * bs : e1;
    const float a = tn_nf4_absmax(q, b);
    for (; i < end; i++) out[i - e0] = q->code[nib(q->codes, i)] * a;
  }
}

/* 32 NF4 codes (16 bytes) -> two vectors of code[c] * absmax (lut = scaled table) */
TN_T_AVX512 static inline void nf4_decode32(const uint8_t *c, __m512 lut, __m512 *w0, __m512 *w1) {
  const __m128i v = _mm_loadu_si128((const __m128i *)c);
  const __m128i hi = _mm_srli_epi16(v, 4); /* vpermps reads index bits 3..0 only */
  *w0 = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(hi, v)), lut);
  *w1 = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi8(hi, v)), lut);
}

TN_T_AVX512 static void nf4_deq_avx512(float *out, const tn_nf4 *q, int64_t e0, int64_t e1) {
  const int64_t bs = q->blocksize;
  if (bs % 32) { nf4_deq_portable(out, q, e0, e1); return; }
  const __m512 lut = _mm512_loadu_ps(q->code);
  int64_t i = e0;
  while (i < e1) {
    const int64_t b = i / bs, bend = (b + 1) * bs < e1 ? (b + 1) * bs : e1;
    const float a = tn_nf4_absmax(q, b);
    if (i == b * bs && bend == (b + 1) * bs) { /* whole block */
      const __m512 ls = _mm512_mul_ps(lut, _mm512_set1_ps(a));
      for (int64_t k = 0; k < bs; k += 32) {
        __m512 w0, w1;
        nf4_decode32(q->codes + (i + k) / 2, ls, &w0, &w1);
        _mm512_storeu_ps(out + (i - e0) + k, w0);
        _mm512_storeu_ps(out + (i - e0) + k + 16, w1);
      }
      i = bend;
    } else {
      for (; i < bend; i++) out[i - e0] = q->code[nib(q->codes, i)] * a;
    }
  }
}


void tn_nf4_dequantize(float *out, const tn_nf4 *q, int64_t e0, int64_t e1) {
  if (tn_isa_level() >= TN_ISA_AVX512) nf4_deq_avx512(out, q, e0, e1);
  else nf4_deq_portable(out, q, e0, e1);
}

/* ------------------------------------------------------------------ bf16 ---- */

void tn_bf16_from_f32(uint16_t *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > 262144)
  for (size_t i = 0; i < n; i++) dst[i] = tn_f32_to_bf16(src[i]);
}

static inline float bf16f(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

TN_T_AVX512 static void bf16_rows_avx512(float *out, const uint16_t *src, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
    _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
  }
  for (; i < n; i++) out[i] = bf16f(src[i]);
}

void tn_mat_rows_f32(float *out, const tn_mat *W, int r0, int r1) {
  const size_t in = (size_t)W->in, n = (size_t)(r1 - r0) * in;
  switch (W->dtype) {
  case TN_F32: memcpy(out, W->w + (size_t)r0 * in, n * sizeof(float)); break;
  case TN_BF16: {
    const uint16_t *s = (const uint16_t *)W->q + (size_t)r0 * in;
    if (tn_isa_level() >= TN_ISA_AVX512) bf16_rows_avx512(out, s, n);
    else for (size_t i = 0; i < n; i++) out[i] = bf16f(s[i]);
    break;
  }
  case TN_NF4: tn_nf4_dequantize(out, W->q, (int64_t)r0 * in, (int64_t)r1 * in); break;
  default: memset(out, 0, n * sizeof(float)); break; /* f16 weights are converted at load */
  }
}

size_t tn_mat_bytes(const tn_mat *W) {
  const size_t n = (size_t)W->out * W->in;
  switch (W->dtype) {
  case TN_F32: return n * 4;
  case TN_BF16: case TN_F16: return n * 2;
  case TN_NF4: {
    const tn_nf4 *q = W->q;
    return tn_nf4_bytes(q->n, q->blocksize, q->nested);
  }
  }
  return 0;
}

/* ---------------------------------------------------------------- scratch ---- */

enum { SCR_TILE = 0, SCR_XB, SCR_PANEL, SCR_N };
static _Thread_local struct { void *p; size_t cap; } scr[SCR_N];

static void *scratch(int slot, size_t bytes) {
  if (bytes <= scr[slot].cap) return scr[slot].p;
  size_t cap = bytes + bytes / 4 + 64;
  void *p = NULL;
  if (posix_memalign(&p, 64, cap) != 0) abort(); /* kernels return void: OOM here is fatal */
  free(scr[slot].p);
  scr[slot].p = p;
  scr[slot].cap = cap;
  return p;
}

void tn_quant_scratch_release(void) {
  for (int i = 0; i < SCR_N; i++) {
    free(scr[i].p);
    scr[i].p = NULL;
    scr[i].cap = 0;
  }
}

/* ------------------------------------------------------------- GEMV, N <= 8 ---- */

#define GEMV_MAXN 8
/* software prefetch distance of the GEMVs' weight streams (rows are contiguous, so
 * this runs into the next rows): the hardware prefetcher alone leaves the bf16 and
 * NF4 GEMVs (fewer bytes per instruction than f32) short of the read bandwidth.
 * bf16 prefetches into L2 (T1; measured a few % faster than T0 on qwen05b decode). */
#ifndef TN_PF_BYTES
#define TN_PF_BYTES 6144
#endif

/* portable: dequantise one row at a time into a row buffer r (in), then dot; rows
 * [o0, o1). One compiled copy (noinline) for the per-kernel and the fused paths, so
 * both sum in the same order. */
__attribute__((noinline)) static void portable_rows(float *y, const float *x, const tn_mat *W, int N, int o0,
                                                    int o1, float *r) {
  const int in = W->in, out = W->out;
  for (int o = o0; o < o1; o++) {
    tn_mat_rows_f32(r, W, o, o + 1);
    for (int n = 0; n < N; n++) {
      const float *xn = x + (size_t)n * in;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int k = 0; k < in; k++) s += r[k] * xn[k];
      y[(size_t)n * out + o] = s;
    }
  }
}

static void gemv_portable(float *y, const float *x, const tn_mat *W, int N) {
  const int in = W->in, out = W->out;
  const int nt = omp_get_max_threads();
  float *rows = scratch(SCR_TILE, sizeof(float) * (size_t)nt * ((in + 15) & ~15));
#pragma omp parallel num_threads(nt) if ((size_t)out * in * N > ((size_t)1 << 19))
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int o0 = (int)((long)out * t / n), o1 = (int)((long)out * (t + 1) / n);
    portable_rows(y, x, W, N, o0, o1, rows + (size_t)t * ((in + 15) & ~15));
  }
}

static void gemv_portable_dx(float *dx, const float *dy, const tn_mat *W, int N);

/* x (N, in) -> xe (N, in) for bf16_gemv_rows: per whole 32-group the even elements,
 * then the odd ones (xe[k + d] = x[k + 2d], xe[k + 16 + d] = x[k + 2d + 1]); the rest as is */
static void bf16_deinterleave_x(float *xe, const float *x, int N, int in) {
  const int k32 = in & ~31;
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * in;
    float *d = xe + (size_t)n * in;
    for (int k = 0; k < k32; k += 32)
      for (int j = 0; j < 16; j++) {
        d[k + j] = xr[k + 2 * j];
        d[k + 16 + j] = xr[k + 2 * j + 1];
      }
    memcpy(d + k32, xr + k32, sizeof(float) * (size_t)(in - k32));
  }
}

/* bf16 GEMV: each weight row widened to f32 (a shift of the zero-extended halves) and
 * FMA'd with x kept in f32, so the result is an f32 product of the bf16 weights (no
 * rounding of x; the same numbers for any batch size N <= 8). Two accumulators per
 * input over 32-weight steps hide the FMA latency (a 32-weight load is split into
 * the even weights, shifted up, and the odd ones, masked: x is de-interleaved to match); a software prefetch keeps the stream
 * at the read bandwidth (vdpbf16ps, which needs x rounded to bf16, was no faster at
 * these batch sizes: the GEMV is memory-bound). */
TN_T_AVX512 static inline __attribute__((always_inline)) void bf16_gemv_rows(float *y, const float *xe,
                                                                              const tn_mat *W, const int N, int o0,
                                                                              int o1) {
  const int in = W->in, out = W->out;
  const uint16_t *Wq = W->q;
  const int k32 = in & ~31, k16 = in & ~15;
  const __mmask16 tm = (__mmask16)((1u << (in - k16)) - 1);
  for (int o = o0; o < o1; o++) {
    const uint16_t *w = Wq + (size_t)o * in;
    __m512 acc[GEMV_MAXN], acc2[GEMV_MAXN];
    for (int n = 0; n < N; n++) acc[n] = acc2[n] = _mm512_setzero_ps();
    for (int k = 0; k < k32; k += 32) {
      _mm_prefetch((const char *)(w + k) + TN_PF_BYTES, _MM_HINT_T1);
      const __m512i wv = _mm512_loadu_si512((const void *)(w + k));
      /* low halves of the dwords are the even weights: shift them up; the high halves
       * (odd weights) are bf16 already once the low half is masked off */
      const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(wv, 16));
      const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(wv, _mm512_set1_epi32((int)0xffff0000u)));
      for (int n = 0; n < N; n++) {
        acc[n] = _mm512_fmadd_ps(we, _mm512_loadu_ps(xe + (size_t)n * in + k), acc[n]);
        acc2[n] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(xe + (size_t)n * in + k + 16), acc2[n]);
      }
    }
    for (int k = k32; k < k16; k += 16) {
      const __m512 wf = _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + k))), 16));
      for (int n = 0; n < N; n++) acc[n] = _mm512_fmadd_ps(wf, _mm512_loadu_ps(xe + (size_t)n * in + k), acc[n]);
    }
    if (tm) {
      const __m512 wf = _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(tm, w + k16)), 16));
      for (int n = 0; n < N; n++)
        acc[n] = _mm512_fmadd_ps(wf, _mm512_maskz_loadu_ps(tm, xe + (size_t)n * in + k16), acc[n]);
    }
    for (int n = 0; n < N; n++) y[(size_t)n * out + o] = _mm512_reduce_add_ps(_mm512_add_ps(acc[n], acc2[n]));
  }
}

/* x (N, K) f32 -> xb (N, ceil(K/2)) bf16 pairs, round to nearest even, zero pad */
TN_T_BF16 static void x_to_bf16(uint32_t *xb, const float *x, int N, int K) {
  const int P = (K + 1) / 2;
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * K;
    uint16_t *d = (uint16_t *)(xb + (size_t)n * P);
    int k = 0;
    for (; k + 32 <= K; k += 32) {
      __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + k + 16), _mm512_loadu_ps(xr + k));
      _mm512_storeu_si512((void *)(d + k), (__m512i)v);
    }
    for (; k < K; k++) d[k] = tn_f32_to_bf16(xr[k]);
    if (K & 1) d[K] = 0;
  }
}

TN_T_AVX512 static inline __attribute__((always_inline)) void nf4_gemv_rows(float *y, const float *x,
                                                                             const tn_mat *W, const int N, int o0,
                                                                             int o1) {
  const tn_nf4 *q = W->q;
  const int in = W->in, out = W->out, bs = q->blocksize, nbr = in / bs;
  const __m512 lut = _mm512_loadu_ps(q->code);
  for (int o = o0; o < o1; o++) {
    const uint8_t *c = q->codes + (size_t)o * in / 2;
    const int64_t b0 = (int64_t)o * nbr;
    __m512 acc[GEMV_MAXN];
    for (int n = 0; n < N; n++) acc[n] = _mm512_setzero_ps();
    for (int b = 0; b < nbr; b++) {
      const __m512 ls = _mm512_mul_ps(lut, _mm512_set1_ps(tn_nf4_absmax(q, b0 + b)));
      for (int k = b * bs; k < (b + 1) * bs; k += 32) {
        __m512 w0, w1;
        nf4_decode32(c + k / 2, ls, &w0, &w1);
        for (int n = 0; n < N; n++) {
          const float *xk = x + (size_t)n * in + k;
          acc[n] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xk), acc[n]);
          acc[n] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xk + 16), acc[n]);
        }
      }
    }
    for (int n = 0; n < N; n++) y[(size_t)n * out + o] = _mm512_reduce_add_ps(acc[n]);
  }
}

/* NF4 GEMV, fast path: a row's codes read 64 bytes (128 weights) at a time as 16
 * dwords; dword d holds elements 8d..8d+7 of the group, nibble j (bits 4j..4j+3) being
 * element 8d + (j ^ 1) (first element in the high nibble). vpermps reads only index bits
 * 3..0, so lut[v >> 4j] (a shift and one permute) decodes nibble j of all 16 dwords;
 * x is permuted once per call to match: xs[k0 + g*128 + 16j + d] = x[k0 + g*128 + 8d + (j ^ 1)].
 * Per 16 weights: <= 1 shift, 1 permute, 1 FMA (the unpack/widen of the plain decode
 * costs 3 more shuffles per 16). The block scales (absmax, decoded once per row) are
 * applied per group: acc += blk * absmax, blk = sum of code * x over the group (lanes
 * 0-7 are one block, 8-15 the next when the blocksize is 64).
 * Groups start on block boundaries of the flattened matrix. With blocksize 64 a row may
 * start 32 elements into a block (in % 64 == 32): such rows (phase 1) take their first
 * 32 weights, and every row its last (in - k0) % 128, in 32-weight chunks by the plain
 * decode (nf4_decode32, one block each) on x in its own order; x is permuted once per
 * phase present. Blocksizes that are multiples of 128 need rows of whole blocks. */
#define XS_G 128
static bool nf4_fast_ok(const tn_nf4 *q, int in) {
  return (q->blocksize == 64 && in % 32 == 0) || (q->blocksize % XS_G == 0 && in % q->blocksize == 0);
}

/* x (N, in) -> xs (N, in) for rows of phase k0 (0 or 32: elements before the first group) */
static void nf4_permute_x(float *xs, const float *x, int N, int in, int k0) {
  const int ng = (in - k0) / XS_G;
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * in;
    float *d = xs + (size_t)n * in;
    memcpy(d, xr, sizeof(float) * (size_t)k0);
    for (int g = 0; g < ng; g++)
      for (int j = 0; j < 8; j++)
        for (int l = 0; l < 16; l++) d[k0 + g * XS_G + 16 * j + l] = xr[k0 + g * XS_G + 8 * l + (j ^ 1)];
    const int e = k0 + ng * XS_G;
    memcpy(d + e, xr + e, sizeof(float) * (size_t)(in - e));
  }
}

TN_T_AVX512 static inline __attribute__((always_inline)) void nf4_chunk32(__m512 *acc, const float *xs, int in, int k,
                                                                           const uint8_t *c, __m512 lut, float a,
                                                                           const int N) {
  __m512 w0, w1;
  nf4_decode32(c + k / 2, _mm512_mul_ps(lut, _mm512_set1_ps(a)), &w0, &w1);
  for (int n = 0; n < N; n++) {
    const float *xk = xs + (size_t)n * in + k;
    acc[n] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xk), acc[n]);
    acc[n] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xk + 16), acc[n]);
  }
}

/* xs2[p]: x permuted for phase p (0: rows starting on a block boundary, 1: 32 elements in) */
TN_T_AVX512 static inline __attribute__((always_inline)) void nf4_fast_rows(float *y, float *const *xs2,
                                                                             const tn_mat *W, const int N, int o0,
                                                                             int o1, float *am) {
  const tn_nf4 *q = W->q;
  const int in = W->in, out = W->out, bs = q->blocksize;
  const __m512 lut = _mm512_loadu_ps(q->code);
  for (int o = o0; o < o1; o++) {
    const int64_t e0 = (int64_t)o * in, b0 = e0 / bs;
    const int k0 = (int)(e0 % bs) ? bs - (int)(e0 % bs) : 0; /* 0 or 32 (blocksize 64) */
    const int ng = (in - k0) / XS_G;
    const float *xs = xs2[k0 ? 1 : 0];
    const uint8_t *c = q->codes + e0 / 2;
    nf4_row_absmax(am, q, b0, (int)((e0 + in - 1) / bs - b0 + 1));
    __m512 acc[GEMV_MAXN];
    for (int n = 0; n < N; n++) acc[n] = _mm512_setzero_ps();
    if (k0) nf4_chunk32(acc, xs, in, 0, c, lut, am[0], N);
    /* r: the row-relative block of the group's first weight, kept by increments (a
     * division by the run-time blocksize per group cost as much as the group) */
    int r = k0 ? 1 : 0, gi = 0;
    const int gpb = bs / XS_G; /* groups per block when the blocksize is a multiple of 128 */
    for (int g = 0; g < ng; g++) {
      const int k = k0 + g * XS_G;
      _mm_prefetch((const char *)(c + k / 2) + TN_PF_BYTES, _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512((const void *)(c + k / 2));
      __m512 blk[GEMV_MAXN], blk2[GEMV_MAXN];
      for (int n = 0; n < N; n++) blk[n] = blk2[n] = _mm512_setzero_ps();
#define NF4_NIB(j, B)                                                                         \
  do {                                                                                        \
    const __m512 w = _mm512_permutexvar_ps((j) ? _mm512_srli_epi32(v, 4 * (j)) : v, lut);     \
    for (int n = 0; n < N; n++)                                                               \
      B[n] = _mm512_fmadd_ps(w, _mm512_loadu_ps(xs + (size_t)n * in + k + 16 * (j)), B[n]);   \
  } while (0)
      NF4_NIB(0, blk); NF4_NIB(1, blk2); NF4_NIB(2, blk); NF4_NIB(3, blk2);
      NF4_NIB(4, blk); NF4_NIB(5, blk2); NF4_NIB(6, blk); NF4_NIB(7, blk2);
#undef NF4_NIB
      const __m512 sc = bs == 64 ? _mm512_insertf32x8(_mm512_set1_ps(am[r]), _mm256_set1_ps(am[r + 1]), 1)
                                 : _mm512_set1_ps(am[r]);
      for (int n = 0; n < N; n++) acc[n] = _mm512_fmadd_ps(_mm512_add_ps(blk[n], blk2[n]), sc, acc[n]);
      if (bs == 64) r += 2;
      else if (++gi == gpb) {
        gi = 0;
        r++;
      }
    }
    for (int k = k0 + ng * XS_G; k < in; k += 32) /* tail: 32-weight chunks, one block each */
      nf4_chunk32(acc, xs, in, k, c, lut, am[(e0 + k) / bs - b0], N);
    for (int n = 0; n < N; n++) y[(size_t)n * out + o] = _mm512_reduce_add_ps(acc[n]);
  }
}

TN_T_AVX512 static void nf4_fast_gemv(float *y, float *const *xs, const tn_mat *W, int N, int o0, int o1, float *am) {
  switch (N) {
  case 1: nf4_fast_rows(y, xs, W, 1, o0, o1, am); break;
  case 2: nf4_fast_rows(y, xs, W, 2, o0, o1, am); break;
  case 3: nf4_fast_rows(y, xs, W, 3, o0, o1, am); break;
  case 4: nf4_fast_rows(y, xs, W, 4, o0, o1, am); break;
  case 5: nf4_fast_rows(y, xs, W, 5, o0, o1, am); break;
  case 6: nf4_fast_rows(y, xs, W, 6, o0, o1, am); break;
  case 7: nf4_fast_rows(y, xs, W, 7, o0, o1, am); break;
  default: nf4_fast_rows(y, xs, W, 8, o0, o1, am); break;
  }
}

#define GEMV_INST(name, body)                                                                  \
  TN_T_AVX512 static void name(float *y, const float *x, const tn_mat *W, int N, int o0, int o1) { \
    switch (N) {                                                                               \
    case 1: body(y, x, W, 1, o0, o1); break;                                                   \
    case 2: body(y, x, W, 2, o0, o1); break;                                                   \
    case 3: body(y, x, W, 3, o0, o1); break;                                                   \
    case 4: body(y, x, W, 4, o0, o1); break;                                                   \
    case 5: body(y, x, W, 5, o0, o1); break;                                                   \
    case 6: body(y, x, W, 6, o0, o1); break;                                                   \
    case 7: body(y, x, W, 7, o0, o1); break;                                                   \
    default: body(y, x, W, 8, o0, o1); break;                                                  \
    }                                                                                          \
  }
GEMV_INST(bf16_gemv_avx512, bf16_gemv_rows)
GEMV_INST(nf4_gemv_avx512, nf4_gemv_rows)

static bool nf4_gemv_ok(const tn_mat *W) {
  const tn_nf4 *q = W->q;
  return q->blocksize % 32 == 0 && W->in % q->blocksize == 0;
}

/* The GEMV in two steps: x put in the order the chosen kernel reads it (into the
 * calling thread's scratch), then any row range [o0, o1) computed from it. Every
 * output row is computed on its own (an NF4 row finds its blocks from its first
 * element's flat index, o * in), so the numbers do not depend on how rows are split
 * between threads: the per-kernel GEMV and the fused decode's slices agree bit for bit. */
enum { GK_PORTABLE = 0, GK_BF16, GK_NF4, GK_NF4_FAST };
typedef struct {
  int kind;
  const float *x;  /* (N, in) as given */
  float *xs2[2];   /* x permuted for the kernel (NF4 fast: per row phase; bf16: [0]) */
} gemv_in;

static int gemv_kind(const tn_mat *W) {
  const bool nf4 = W->dtype == TN_NF4;
  if (tn_isa_level() < TN_ISA_AVX512 || (nf4 && !nf4_gemv_ok(W) && !nf4_fast_ok(W->q, W->in)) ||
      (W->dtype != TN_NF4 && W->dtype != TN_BF16))
    return GK_PORTABLE;
  if (!nf4) return GK_BF16;
  return nf4_fast_ok(W->q, W->in) ? GK_NF4_FAST : GK_NF4;
}

static gemv_in gemv_prepare(const float *x, const tn_mat *W, int N) {
  gemv_in g = {.kind = gemv_kind(W), .x = x};
  if (g.kind == GK_PORTABLE || g.kind == GK_NF4) return g; /* these read x as it is */
  /* NF4 rows starting 32 elements into a block (in % 64 == 32) need a second permutation */
  const bool two = g.kind == GK_NF4_FAST && W->in % 64 != 0;
  float *xs = scratch(SCR_XB, sizeof(float) * (size_t)N * W->in * (two ? 2 : 1));
  g.xs2[0] = xs;
  g.xs2[1] = two ? xs + (size_t)N * W->in : xs;
  if (g.kind == GK_NF4_FAST) {
    nf4_permute_x(g.xs2[0], x, N, W->in, 0);
    if (two) nf4_permute_x(g.xs2[1], x, N, W->in, 32);
  } else {
    bf16_deinterleave_x(xs, x, N, W->in);
  }
  return g;
}

/* rows [o0, o1) of y (N, out); r: a row buffer (in) for the portable kernel */
static void gemv_rows(float *y, const gemv_in *g, const tn_mat *W, int N, int o0, int o1, float *r) {
  if (o0 >= o1) return;
  switch (g->kind) {
  case GK_NF4_FAST: {
    const int nbr = W->in / ((const tn_nf4 *)W->q)->blocksize + 2; /* blocks a row touches */
    float am[nbr];                                                   /* the row's block scales */
    nf4_fast_gemv(y, g->xs2, W, N, o0, o1, am);
    break;
  }
  case GK_NF4: nf4_gemv_avx512(y, g->x, W, N, o0, o1); break;
  case GK_BF16: bf16_gemv_avx512(y, g->xs2[0], W, N, o0, o1); break;
  default: portable_rows(y, g->x, W, N, o0, o1, r); break;
  }
}

static void gemv(float *y, const float *x, const tn_mat *W, int N) {
  const gemv_in g = gemv_prepare(x, W, N);
  if (g.kind == GK_PORTABLE) {
    gemv_portable(y, x, W, N);
    return;
  }
  const int out = W->out;
  /* small matrices: one thread (a parallel region costs more than it saves, and a
   * descheduled worker stalls the whole call) */
#pragma omp parallel if ((size_t)out * W->in * N > ((size_t)1 << 19))
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    /* contiguous row ranges, multiples of 4 rows */
    const int per = ((out + nt - 1) / nt + 3) & ~3;
    const int o0 = t * per < out ? t * per : out, o1 = o0 + per < out ? o0 + per : out;
    gemv_rows(y, &g, W, N, o0, o1, NULL);
  }
}

/* ---- fused decoding (tn_linear_part): rows [o0, o1) on the calling thread ---- */
bool tn_qlinear_part_ok(const tn_mat *W, int N) { return W->dtype != TN_F32 && N >= 1 && N <= GEMV_MAXN; }

void tn_qlinear_rows(float *y, const float *x, const tn_mat *W, int N, int o0, int o1) {
  // y (N, out): columns [o0, o1) written; x (N, in)
  if (o0 >= o1 || N <= 0) return;
  /* each thread permutes x into its own scratch (N * in floats: far less than its
   * share of the weights) instead of waiting at a barrier for one copy */
  const gemv_in g = gemv_prepare(x, W, N);
  float *r = g.kind == GK_PORTABLE ? scratch(SCR_TILE, sizeof(float) * (size_t)((W->in + 15) & ~15)) : NULL;
  gemv_rows(y, &g, W, N, o0, o1, r);
}

/* --------------------------------------------------- tiles of f32 + OpenBLAS ---- */

static int tile_rows(const tn_mat *W) {
  int rt = (int)(262144 / (W->in > 0 ? W->in : 1)); /* ~1 MB of f32 */
  rt = rt < 16 ? 16 : rt;
  rt = (rt + 15) & ~15;
  return rt < W->out ? rt : W->out;
}

/* Dequantise rows [r0, r1) of W into tile, in parallel over row chunks. */
static void tile_fill(float *tile, const tn_mat *W, int r0, int r1) {
  const int in = W->in, n = r1 - r0;
#pragma omp parallel for schedule(static) if (n > 4 && (size_t)n * in > 16384)
  for (int r = 0; r < n; r += 4) {
    const int e = r + 4 < n ? r + 4 : n;
    tn_mat_rows_f32(tile + (size_t)r * in, W, r0 + r, r0 + e);
  }
}

static void forward_tiles(float *y, const float *x, const tn_mat *W, int N) {
  const int in = W->in, out = W->out, rt = tile_rows(W);
  float *tile = scratch(SCR_TILE, sizeof(float) * (size_t)rt * in);
  for (int r0 = 0; r0 < out; r0 += rt) {
    const int r1 = r0 + rt < out ? r0 + rt : out;
    tile_fill(tile, W, r0, r1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r1 - r0, in, 1.0f, x, in, tile, in, 0.0f, y + r0, out);
  }
}

/* bf16 weights on AMX (mm_bf16.c's tdpbf16ps GEMM): W widened to f32 in tiles of ~16 MB
 * (exact), which tn_gemm_bf16 packs back to bf16 (the same values) with x rounded to bf16.
 * false when AMX is unavailable (nothing written). */
static bool forward_tiles_amx(float *y, const float *x, const tn_mat *W, int N) {
  if (!tn_amx_available()) return false;
  const int in = W->in, out = W->out;
  int rt = (int)(((size_t)4 << 20) / (size_t)(in > 0 ? in : 1));
  rt = rt < 32 ? 32 : rt & ~31;
  rt = rt < out ? rt : out;
  float *tile = scratch(SCR_TILE, sizeof(float) * (size_t)rt * in);
  for (int r0 = 0; r0 < out; r0 += rt) {
    const int r1 = r0 + rt < out ? r0 + rt : out;
    tile_fill(tile, W, r0, r1);
    if (!tn_gemm_bf16(false, true, N, r1 - r0, in, x, in, tile, in, 0.0f, y + r0, out)) return false;
  }
  return true;
}

static void backward_tiles(float *dx, const float *dy, const tn_mat *W, int N) {
  const int in = W->in, out = W->out, rt = tile_rows(W);
  float *tile = scratch(SCR_TILE, sizeof(float) * (size_t)rt * in);
  for (int r0 = 0; r0 < out; r0 += rt) {
    const int r1 = r0 + rt < out ? r0 + rt : out;
    tile_fill(tile, W, r0, r1);
    /* dx (N, in) += dy[:, r0:r1] (N, rt) tile (rt, in) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r1 - r0, 1.0f, dy + r0, out, tile, in, 1.0f, dx,
                in);
  }
}

static void gemv_portable_dx(float *dx, const float *dy, const tn_mat *W, int N) { backward_tiles(dx, dy, W, N); }

/* ------------------------------------------------- bf16 GEMM, AVX-512 BF16 ---- */

#define OB 64   /* output rows per packed block (4 groups of 16 lanes) */
#define KC 128  /* k pairs per inner chunk: 4 x 128 x 64 B = 32 KB of panel */

/* Pack rows [o0, o0 + 64) of W (bf16, row length K) into groups of 16 rows:
 * panel[(g * P + p) * 16 + j] = the pair (W[o, 2p], W[o, 2p + 1]) of row o = o0 + 16g + j,
 * zeros past the matrix. P = ceil(K / 2). */
static void pack_panel(uint32_t *panel, const uint16_t *Wq, int out, int K, int o0) {
  const int P = (K + 1) / 2;
  for (int g = 0; g < 4; g++)
    for (int j = 0; j < 16; j++) {
      const int o = o0 + 16 * g + j;
      uint32_t *dst = panel + (size_t)g * P * 16 + j;
      if (o >= out) {
        for (int p = 0; p < P; p++) dst[(size_t)p * 16] = 0;
        continue;
      }
      const uint16_t *row = Wq + (size_t)o * K;
      for (int p = 0; p < K / 2; p++) {
        uint32_t v;
        memcpy(&v, row + 2 * p, 4);
        dst[(size_t)p * 16] = v;
      }
      if (K & 1) dst[(size_t)(P - 1) * 16] = row[K - 1];
    }
}

TN_T_BF16 static inline __attribute__((always_inline)) void dp_micro(float *y, int ldy, const uint32_t *xb, int ldx,
                                                                     const uint32_t *panel, int P, int p0, int p1,
                                                                     const int R, bool first, __mmask16 m[4]) {
  __m512 acc[4][4];
  for (int r = 0; r < R; r++)
    for (int g = 0; g < 4; g++) acc[r][g] = _mm512_setzero_ps();
  for (int p = p0; p < p1; p++) {
    __m512i w[4];
    for (int g = 0; g < 4; g++) w[g] = _mm512_load_si512((const void *)(panel + ((size_t)g * P + p) * 16));
    for (int r = 0; r < R; r++) {
      const __m512i xv = _mm512_set1_epi32((int)xb[(size_t)r * ldx + p]);
      for (int g = 0; g < 4; g++) acc[r][g] = _mm512_dpbf16_ps(acc[r][g], (__m512bh)w[g], (__m512bh)xv);
    }
  }
  for (int r = 0; r < R; r++)
    for (int g = 0; g < 4; g++) {
      float *d = y + (size_t)r * ldy + 16 * g;
      if (!m[g]) continue;
      __m512 v = acc[r][g];
      if (!first) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[g], d));
      _mm512_mask_storeu_ps(d, m[g], v);
    }
}

TN_T_BF16 static void bf16_gemm_dp(float *y, const float *x, const tn_mat *W, int N) {
  const int K = W->in, out = W->out, P = (K + 1) / 2, ldx = P; /* xb row: P u32 */
  uint32_t *xb = scratch(SCR_XB, sizeof(uint32_t) * (size_t)N * P);
  const int nt = omp_get_max_threads();
  const size_t panel_u32 = (size_t)4 * P * 16;
  uint32_t *panels = scratch(SCR_PANEL, sizeof(uint32_t) * panel_u32 * nt);
  const int nblk = (out + OB - 1) / OB;
#pragma omp parallel num_threads(nt)
  {
    /* x (N, K) -> bf16 pairs (N, P), round to nearest even (vcvtne2ps2bf16) */
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) x_to_bf16(xb + (size_t)n * P, x + (size_t)n * K, 1, K);
    uint32_t *panel = panels + panel_u32 * omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
    for (int blk = 0; blk < nblk; blk++) {
      const int o0 = blk * OB;
      pack_panel(panel, W->q, out, K, o0);
      __mmask16 m[4];
      for (int g = 0; g < 4; g++) {
        int c = out - (o0 + 16 * g);
        m[g] = c >= 16 ? (__mmask16)0xffff : c <= 0 ? 0 : (__mmask16)((1u << c) - 1);
      }
      for (int p0 = 0; p0 < P; p0 += KC) {
        const int p1 = p0 + KC < P ? p0 + KC : P;
        int n = 0;
        for (; n + 4 <= N; n += 4)
          dp_micro(y + (size_t)n * out + o0, out, xb + (size_t)n * ldx, ldx, panel, P, p0, p1, 4, p0 == 0, m);
        const int R = N - n;
        if (R == 3) dp_micro(y + (size_t)n * out + o0, out, xb + (size_t)n * ldx, ldx, panel, P, p0, p1, 3, p0 == 0, m);
        else if (R == 2) dp_micro(y + (size_t)n * out + o0, out, xb + (size_t)n * ldx, ldx, panel, P, p0, p1, 2, p0 == 0, m);
        else if (R == 1) dp_micro(y + (size_t)n * out + o0, out, xb + (size_t)n * ldx, ldx, panel, P, p0, p1, 1, p0 == 0, m);
      }
    }
  }
}

/* ---------------------------------------------------------------- dispatch ---- */


void tn_qlinear_forward(float *y, const float *x, const tn_mat *W, int N) {
  if (N <= 0) return;
  if (N <= GEMV_MAXN) {
    gemv(y, x, W, N);
    return;
  }
  if (W->dtype == TN_BF16 && tn_isa_level() >= TN_ISA_AMX && forward_tiles_amx(y, x, W, N)) return;
  if (W->dtype == TN_BF16 && tn_isa_level() >= TN_ISA_AVX512BF16) {
    bf16_gemm_dp(y, x, W, N);
    return;
  }
  forward_tiles(y, x, W, N);
}

void tn_qlinear_backward_dx(float *dx, const float *dy, const tn_mat *W, int N) {
  if (N <= 0) return;
  gemv_portable_dx(dx, dy, W, N);
}
