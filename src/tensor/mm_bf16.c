/* mm_bf16.c - bf16 matmuls for f32 operands (the --bf16-matmul mode of training,
 * like torch's bf16 autocast): both operands rounded to bf16 (nearest even) when
 * they are packed, products accumulated in f32 by AMX (tdpbf16ps) tiles.
 *
 * tn_gemm_bf16 computes C (M, N) [+]= op(A) (M, K) op(B) (K, N), row-major as cblas:
 *  - op(A) and op(B) are packed once per call into bf16 tiles, K padded to 32 and
 *    M, N to 32 with zeros: A tiles hold 16 rows x 32 k, B tiles 16 pairs of k x 16
 *    columns (the "VNNI" layout tdpbf16ps reads);
 *  - the product runs in panels of B that stay in each core's L2, every thread taking
 *    blocks of 32 rows; a block of 32 x 32 of C is 4 accumulator tiles.
 * AMX needs the CPU (cpuid AMX-BF16, AMX-TILE) and the kernel's permission
 * (arch_prctl ARCH_REQ_XCOMP_PERM); without them tn_gemm_bf16 returns false and the
 * caller keeps its f32 path.
 * Not for: frozen bf16/nf4 weights (quant.c), small products (LoRA, attention). */
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "tensor/kern.h"
#include "tensor/tensor.h"

/* the switch is one of the process-wide settings (base/settings.c) */
void tn_matmul_set_bf16(bool on) { tn_settings_set_bf16_matmul(on); }
bool tn_matmul_bf16(void) { return tn_settings_bf16_matmul(); }

/* AMX: cpuid, the kernel's permission for the tile state and TN_ISA (base/isa.c) */
bool tn_amx_available(void) { return tn_isa_level() >= TN_ISA_AMX; }

#define TN_T_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16,avx512bw,avx512vl,avx512dq")))

typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_cfg;

TN_T_AMX static void tiles_on(void) {
  tile_cfg c;
  memset(&c, 0, sizeof c);
  c.palette = 1;
  for (int i = 0; i < 8; i++) {
    c.colsb[i] = 64;
    c.rows[i] = 16;
  }
  _tile_loadconfig(&c);
}

/* ---- packing ---- */
/* 16 rows x 32 k of f32 (row r at src + r * ld, k contiguous; rows >= nr and k >= nk
 * are zero) -> 16 rows of 16 u32 bf16 pairs, dst row stride 16 u32 */
TN_T_AMX static void rowpairs(uint32_t *dst, const float *src, size_t ld, int nr, int nk, float scale) {
  const __mmask16 m0 = nk >= 16 ? 0xffff : (__mmask16)((1u << nk) - 1);
  const __mmask16 m1 = nk >= 32 ? 0xffff : nk <= 16 ? 0 : (__mmask16)((1u << (nk - 16)) - 1);
  for (int r = 0; r < 16; r++) {
    __m512i v = _mm512_setzero_si512();
    if (r < nr) {
      const float *s = src + (size_t)r * ld;
      __m512 a = _mm512_maskz_loadu_ps(m0, s), b = _mm512_maskz_loadu_ps(m1, s + 16);
      if (scale != 1.0f) {
        a = _mm512_mul_ps(a, _mm512_set1_ps(scale));
        b = _mm512_mul_ps(b, _mm512_set1_ps(scale));
      }
      v = (__m512i)_mm512_cvtne2ps_pbh(b, a);
    }
    _mm512_store_si512((void *)(dst + r * 16), v);
  }
}

/* 32 k-rows x 16 columns of f32 (k-row k at src + k * ld, columns contiguous; k >= nk
 * and columns >= nc are zero) -> 16 pair-rows of 16 u32 (pair p = rows 2p, 2p+1) */
TN_T_AMX static void kpairs(uint32_t *dst, const float *src, size_t ld, int nk, int nc, float scale) {
  const __mmask16 m = nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1);
  for (int p = 0; p < 16; p++) {
    const int k = 2 * p;
    __m512 lo = k < nk ? _mm512_maskz_loadu_ps(m, src + (size_t)k * ld) : _mm512_setzero_ps();
    __m512 hi = k + 1 < nk ? _mm512_maskz_loadu_ps(m, src + (size_t)(k + 1) * ld) : _mm512_setzero_ps();
    if (scale != 1.0f) {
      lo = _mm512_mul_ps(lo, _mm512_set1_ps(scale));
      hi = _mm512_mul_ps(hi, _mm512_set1_ps(scale));
    }
    __m512i l = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo));
    __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi));
    _mm512_store_si512((void *)(dst + p * 16), _mm512_or_si512(l, _mm512_slli_epi32(h, 16)));
  }
}

/* in-place transpose of a 16 x 16 u32 block (row stride 16) */
TN_T_AMX static void transpose16(uint32_t *t) {
  __m512i r[16], s[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_load_si512((const void *)(t + 16 * i));
  for (int i = 0; i < 16; i += 2) {
    s[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    s[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  /* r[4i + j], 128-bit lane L: rows 4i..4i+3 of column 4L + j */
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(s[i], s[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(s[i], s[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(s[i + 1], s[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(s[i + 1], s[i + 3]);
  }
  for (int j = 0; j < 4; j++) {
    const __m512i u = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x44), u2 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xee);
    const __m512i v = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x44), v2 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xee);
    s[j] = _mm512_shuffle_i32x4(u, v, 0x88);        /* column j */
    s[4 + j] = _mm512_shuffle_i32x4(u, v, 0xdd);    /* column 4 + j */
    s[8 + j] = _mm512_shuffle_i32x4(u2, v2, 0x88);  /* column 8 + j */
    s[12 + j] = _mm512_shuffle_i32x4(u2, v2, 0xdd); /* column 12 + j */
  }
  for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(t + 16 * i), s[i]);
}

/* tile (16 x 16 u32) number tb of a packed operand: tiles of one 16-row (A) or
 * 16-column (B) block are consecutive over k */
static inline uint32_t *tile_at(uint32_t *base, int blk, int kb, int nkb) {
  return base + ((size_t)blk * nkb + kb) * 256;
}

/* Pack tile (b, kb) of op(X) as the A side (rows i < M, k < K) or the B side (k < K,
 * columns j < N), multiplied by scale before rounding to bf16.
 * side A: trans=false: X (M, K) row-major; trans=true: X (K, M).
 * side B: trans=false: X (K, N); trans=true: X (N, K). R = M (side A) or N (side B). */
TN_T_AMX static void pack_tile(uint32_t *dst, const float *X, int ld, bool trans, bool side_a, int R, int K, int b,
                               int kb, int nkb, float scale) {
  uint32_t *t = tile_at(dst, b, kb, nkb);
  const int r0 = b * 16, k0 = kb * 32, nr = R - r0 < 16 ? (R - r0 > 0 ? R - r0 : 0) : 16;
  const int nk = K - k0 < 32 ? K - k0 : 32;
  /* "rows along R, k contiguous" is rowpairs; "k rows, R contiguous" is kpairs */
  const bool r_major = side_a ? !trans : trans;
  if (r_major) rowpairs(t, X + (size_t)r0 * ld + k0, ld, nr, nk, scale);
  else kpairs(t, X + (size_t)k0 * ld + r0, ld, nk, nr, scale);
  /* A tiles want rows = R with k pairs across; B tiles want pair-rows with R across */
  if (side_a != r_major) transpose16(t);
}

/* Every tile, shared among the threads of the enclosing parallel region (an orphaned
 * omp for; serial when called outside one). When k runs down the rows of X, take the
 * tiles k-block by k-block so 32 rows are read left to right (prefetch friendly);
 * otherwise block by block (16 rows read left to right). */
TN_T_AMX static void pack(uint32_t *dst, const float *X, int ld, bool trans, bool side_a, int R, int K, int nblk,
                          int nkb, float scale) {
  const bool r_major = side_a ? !trans : trans;
  const int n1 = r_major ? nblk : nkb, n2 = r_major ? nkb : nblk;
#pragma omp for schedule(static) collapse(2)
  for (int i1 = 0; i1 < n1; i1++)
    for (int i2 = 0; i2 < n2; i2++)
      pack_tile(dst, X, ld, trans, side_a, R, K, r_major ? i1 : i2, r_major ? i2 : i1, nkb, scale);
}

TN_T_AMX static void pack_b_region(uint32_t *dst, const float *B, int ldb, bool tb, int N, int K, int nblk, int nkb) {
  pack(dst, B, ldb, tb, false, N, K, nblk, nkb, 1.0f);
}

/* ---- the product ---- */
/* One block of up to 32 x 32 of C: tiles 0: (rows 0-15, cols 0-15), 1: (0-15, 16-31),
 * 2: (16-31, 0-15), 3: (16-31, 16-31), over k blocks [kb0, kb1). Blocks of 16 or 32
 * rows and columns are done in place with the tiles they need (na A tiles, nb B tiles);
 * other edges go through a 32 x 32 copy. */
#define TN_AMX_LOOP(NA, NB)                                                   \
  for (int kb = kb0; kb < kb1; kb++) {                                        \
    _tile_loadd(4, A0 + (size_t)kb * 256, 64);                                \
    _tile_loadd(6, B0 + (size_t)kb * 256, 64);                                \
    if (NB > 1) _tile_loadd(7, B1 + (size_t)kb * 256, 64);                    \
    _tile_dpbf16ps(0, 4, 6);                                                  \
    if (NB > 1) _tile_dpbf16ps(1, 4, 7);                                      \
    if (NA > 1) {                                                             \
      _tile_loadd(5, A1 + (size_t)kb * 256, 64);                              \
      _tile_dpbf16ps(2, 5, 6);                                                \
      if (NB > 1) _tile_dpbf16ps(3, 5, 7);                                    \
    }                                                                         \
  }

TN_T_AMX static void block32(float *C, int ldc, const uint32_t *A0, const uint32_t *A1, const uint32_t *B0,
                             const uint32_t *B1, int kb0, int kb1, bool acc, int mr, int nc, float *tmp,
                             const float *next) {
  float *c = C;
  int ld = ldc;
  const bool direct = (mr == 16 || mr == 32) && (nc == 16 || nc == 32);
  const int na = direct ? mr / 16 : 2, nb = direct ? nc / 16 : 2;
  if (!direct) { /* edge: a 32 x 32 copy of the valid part */
    for (int r = 0; r < 32; r++)
      for (int j = 0; j < 32; j++) tmp[r * 32 + j] = acc && r < mr && j < nc ? C[(size_t)r * ldc + j] : 0.0f;
    c = tmp;
    ld = 32;
    acc = true;
  }
  const size_t s = (size_t)ld * 4;
  float *c1 = c + 16, *c2 = c + (size_t)16 * ld, *c3 = c2 + 16;
  if (acc) {
    _tile_loadd(0, c, s);
    if (nb > 1) _tile_loadd(1, c1, s);
    if (na > 1) _tile_loadd(2, c2, s);
    if (na > 1 && nb > 1) _tile_loadd(3, c3, s);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  if (next) /* the next block of C (read when accumulating, written anyway): fetch it during this one */
    for (int r = 0; r < 32; r++) {
      _mm_prefetch((const char *)(next + (size_t)r * ldc), _MM_HINT_T0);
      _mm_prefetch((const char *)(next + (size_t)r * ldc + 16), _MM_HINT_T0);
    }
  if (na > 1 && nb > 1) {
    TN_AMX_LOOP(2, 2)
  } else if (na > 1) {
    TN_AMX_LOOP(2, 1)
  } else if (nb > 1) {
    TN_AMX_LOOP(1, 2)
  } else {
    TN_AMX_LOOP(1, 1)
  }
  _tile_stored(0, c, s);
  if (nb > 1) _tile_stored(1, c1, s);
  if (na > 1) _tile_stored(2, c2, s);
  if (na > 1 && nb > 1) _tile_stored(3, c3, s);
  if (!direct)
    for (int r = 0; r < mr; r++)
      for (int j = 0; j < nc; j++) C[(size_t)r * ldc + j] = tmp[r * 32 + j];
}

static _Thread_local struct { void *p; size_t cap; } g_pack;

static void *pack_buf(size_t bytes) {
  if (bytes <= g_pack.cap) return g_pack.p;
  size_t cap = bytes + bytes / 4 + 4096;
  void *p = NULL;
  if (posix_memalign(&p, 64, cap) != 0) return NULL;
  free(g_pack.p);
  g_pack.p = p;
  g_pack.cap = cap;
  return p;
}

void tn_mm_bf16_scratch_release(void) {
  free(g_pack.p);
  g_pack.p = NULL;
  g_pack.cap = 0;
}

#define KC_BLK 32     /* k blocks (of 32) per k panel: 1024 k, 64 KB of A per 32 rows */
#define PANEL_BYTES (1 << 19) /* packed B per (k panel, column panel): stays in L2 */

TN_T_AMX static void gemm_amx(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                              const float *B, int ldb, bool acc, float *C, int ldc, uint32_t *pa, uint32_t *pb) {
  const int nkb = (K + 31) / 32, mblk = (M + 31) / 32 * 2, nblk = (N + 31) / 32 * 2;
  const int nrb = mblk / 2;
#pragma omp parallel
  {
    pack(pa, A, lda, ta, true, M, K, mblk, nkb, alpha);
    if (B) pack(pb, B, ldb, tb, false, N, K, nblk, nkb, 1.0f); /* else pb is packed already */
    /* implicit barriers of the omp for loops above: packing is complete */
    tiles_on();
    float tmp[32 * 32] __attribute__((aligned(64)));
    for (int kb0 = 0; kb0 < nkb; kb0 += KC_BLK) {
      const int kb1 = kb0 + KC_BLK < nkb ? kb0 + KC_BLK : nkb;
      int pan = (int)(PANEL_BYTES / ((size_t)(kb1 - kb0) * 32 * 2 * 32)) * 32;
      if (pan < 32) pan = 32;
      for (int n0 = 0; n0 < N; n0 += pan) {
        const int n1 = n0 + pan < N ? n0 + pan : N;
        /* static: thread t gets the same rows in every panel, so no race on C between k panels */
#pragma omp for schedule(static) nowait
        for (int rb = 0; rb < nrb; rb++) {
          const int i0 = rb * 32, mr = M - i0 < 32 ? M - i0 : 32;
          const uint32_t *A0 = tile_at(pa, 2 * rb, 0, nkb), *A1 = tile_at(pa, 2 * rb + 1, 0, nkb);
          for (int j0 = n0; j0 < n1; j0 += 32) {
            const int nc = N - j0 < 32 ? N - j0 : 32;
            const uint32_t *B0 = tile_at(pb, j0 / 16, 0, nkb), *B1 = tile_at(pb, j0 / 16 + 1, 0, nkb);
            const float *next = j0 + 32 < n1 ? C + (size_t)i0 * ldc + j0 + 32 : NULL;
            block32(C + (size_t)i0 * ldc + j0, ldc, A0, A1, B0, B1, kb0, kb1, acc || kb0 > 0, mr, nc, tmp,
                    mr == 32 ? next : NULL);
          }
        }
      }
    }
    _tile_release();
  }
}

bool tn_gemm_bf16(bool transA, bool transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc) {
  return tn_gemm_bf16_ex(transA, transB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

bool tn_gemm_bf16_ex(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return true;
  if (!tn_amx_available() || (beta != 0.0f && beta != 1.0f)) return false;
  if (K <= 0) {
    if (beta == 0.0f)
      for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, sizeof(float) * N);
    return true;
  }
  const size_t nkb = (size_t)(K + 31) / 32;
  const size_t sa = (size_t)(M + 31) / 32 * 2 * nkb * 256, sb = (size_t)(N + 31) / 32 * 2 * nkb * 256;
  uint32_t *p = pack_buf(sizeof(uint32_t) * (sa + sb));
  if (!p) return false;
  gemm_amx(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta != 0.0f, C, ldc, p, p + sa);
  return true;
}

/* ---- op(B) packed once for several products (the LM head's weight over row chunks) ---- */
static size_t packed_u32(int N, int K) { return (size_t)(N + 31) / 32 * 2 * ((size_t)(K + 31) / 32) * 256; }

bool tn_bf16_pack_b(tn_bf16_packed *pk, bool transB, int N, int K, const float *B, int ldb) {
  if (N <= 0 || K <= 0 || !tn_amx_available()) return false;
  const size_t n = packed_u32(N, K);
  if (n > pk->cap) {
    free(pk->p);
    pk->p = NULL;
    pk->cap = 0;
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(uint32_t)) != 0) return false;
    pk->p = p;
    pk->cap = n;
  }
  pk->N = N;
  pk->K = K;
  const int nkb = (K + 31) / 32, nblk = (N + 31) / 32 * 2;
  uint32_t *dst = pk->p;
#pragma omp parallel
  pack_b_region(dst, B, ldb, transB, N, K, nblk, nkb);
  return true;
}

bool tn_gemm_bf16_packed(bool transA, int M, const float *A, int lda, const tn_bf16_packed *pk, float beta, float *C,
                         int ldc) {
  if (M <= 0) return true;
  if (!pk->p || !tn_amx_available() || (beta != 0.0f && beta != 1.0f)) return false;
  const size_t nkb = (size_t)(pk->K + 31) / 32, sa = (size_t)(M + 31) / 32 * 2 * nkb * 256;
  uint32_t *p = pack_buf(sizeof(uint32_t) * sa);
  if (!p) return false;
  gemm_amx(transA, false, M, pk->N, pk->K, 1.0f, A, lda, NULL, 0, beta != 0.0f, C, ldc, p, pk->p);
  return true;
}

void tn_bf16_packed_free(tn_bf16_packed *pk) {
  free(pk->p);
  memset(pk, 0, sizeof *pk);
}

/* ---- on the calling thread only (inside parallel regions: attention's per-head products) ---- */
TN_T_AMX static void gemm_amx_serial(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                                     const float *B, int ldb, bool acc, float *C, int ldc, uint32_t *pa, uint32_t *pb) {
  const int nkb = (K + 31) / 32, mblk = (M + 31) / 32 * 2, nblk = (N + 31) / 32 * 2;
  for (int b = 0; b < mblk; b++)
    for (int kb = 0; kb < nkb; kb++) pack_tile(pa, A, lda, ta, true, M, K, b, kb, nkb, alpha);
  for (int b = 0; b < nblk; b++)
    for (int kb = 0; kb < nkb; kb++) pack_tile(pb, B, ldb, tb, false, N, K, b, kb, nkb, 1.0f);
  tiles_on();
  float tmp[32 * 32] __attribute__((aligned(64)));
  for (int i0 = 0; i0 < M; i0 += 32) {
    const int mr = M - i0 < 32 ? M - i0 : 32;
    const uint32_t *A0 = tile_at(pa, i0 / 16, 0, nkb), *A1 = tile_at(pa, i0 / 16 + 1, 0, nkb);
    for (int j0 = 0; j0 < N; j0 += 32) {
      const int nc = N - j0 < 32 ? N - j0 : 32;
      const uint32_t *B0 = tile_at(pb, j0 / 16, 0, nkb), *B1 = tile_at(pb, j0 / 16 + 1, 0, nkb);
      block32(C + (size_t)i0 * ldc + j0, ldc, A0, A1, B0, B1, 0, nkb, acc, mr, nc, tmp, NULL);
    }
  }
  _tile_release();
}

bool tn_gemm_bf16_serial(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return true;
  if (K <= 0 || !tn_amx_available() || (beta != 0.0f && beta != 1.0f)) return false;
  const size_t nkb = (size_t)(K + 31) / 32;
  const size_t sa = (size_t)(M + 31) / 32 * 2 * nkb * 256, sb = (size_t)(N + 31) / 32 * 2 * nkb * 256;
  uint32_t *p = pack_buf(sizeof(uint32_t) * (sa + sb));
  if (!p) return false;
  gemm_amx_serial(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta != 0.0f, C, ldc, p, p + sa);
  return true;
}
