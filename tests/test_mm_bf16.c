/* test_mm_bf16.c - the bf16 matmul mode (mm_bf16.c, tunic sft --bf16-matmul):
 * - tn_gemm_bf16 against a double-precision product of the bf16-rounded operands
 *   (round to nearest even, independent formula here), all four transpose cases,
 *   C overwritten or accumulated, sizes with edges (M, N not multiples of 32, K not
 *   a multiple of 32, tiny K); tolerance 1e-5 of sum_k |a_ik b_kj| (f32 accumulation
 *   order), far below bf16's own rounding (2^-9), so truncation instead of rounding
 *   or a wrong element would fail;
 * - tn_gemm_bf16_serial (alpha folded into op(A) before rounding) called from every
 *   thread of a parallel region at once;
 * - tn_linear_forward / tn_linear_backward with the switch on agree with the f32 path
 *   to bf16 accuracy and differ from it (the switch does something);
 * - NF4 weights (QLoRA) in the mode: tn_qlinear_forward / tn_qlinear_backward_dx against a
 *   double product of bf16(x) and bf16(dequantised W), same 1e-5 tolerance as above (the
 *   f32 path, which does not round, would differ from it by ~2^-9 relative).
 * Skipped below the avx512bf16 level (no bf16 arithmetic); at avx512bf16 the vdpbf16ps
 * kernel runs, at amx the tile kernel (the suite runs each level, NAME@LEVEL). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <omp.h>
#include "base/base.h"
#include "tensor/tensor.h"

static float bf16r(float x) { /* round to nearest even, as an independent formula */
  uint32_t u;
  memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  float y;
  memcpy(&y, &u, 4);
  return y;
}

static uint64_t g_rng = 12345;
static float frand(void) {
  g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((g_rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static void check_alpha(bool ta, bool tb, int M, int N, int K, float beta, float alpha, bool serial);
static void check(bool ta, bool tb, int M, int N, int K, float beta) { check_alpha(ta, tb, M, N, K, beta, 1.0f, false); }

static void check_alpha(bool ta, bool tb, int M, int N, int K, float beta, float alpha, bool serial) {
  const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
  float *A = malloc(sizeof(float) * (size_t)(ta ? K : M) * lda), *B = malloc(sizeof(float) * (size_t)(tb ? N : K) * ldb);
  float *C = malloc(sizeof(float) * (size_t)M * ldc), *C0 = malloc(sizeof(float) * (size_t)M * ldc);
  for (size_t i = 0; i < (size_t)(ta ? K : M) * lda; i++) A[i] = frand();
  for (size_t i = 0; i < (size_t)(tb ? N : K) * ldb; i++) B[i] = frand() * 3.0f;
  for (size_t i = 0; i < (size_t)M * ldc; i++) C0[i] = C[i] = frand();
  if (!serial) {
    assert_true(tn_gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc));
  } else { /* from inside a parallel region: each thread its own product (thread 0 checks its C) */
    int ok = 1;
#pragma omp parallel reduction(&& : ok)
    {
      float *Ct = malloc(sizeof(float) * (size_t)M * ldc);
      memcpy(Ct, C0, sizeof(float) * (size_t)M * ldc);
      ok = tn_gemm_bf16_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Ct, ldc);
#pragma omp critical
      if (omp_get_thread_num() == 0) memcpy(C, Ct, sizeof(float) * (size_t)M * ldc);
      free(Ct);
    }
    assert_true(ok);
  }
  for (int i = 0; i < M; i++)
    for (int j = 0; j < ldc; j++) {
      if (j >= N) { /* padding columns untouched */
        assert_true(C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j]);
        continue;
      }
      double s = 0, sa = 0;
      for (int k = 0; k < K; k++) {
        double a = bf16r(alpha * (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]));
        double b = bf16r(tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
        s += a * b;
        sa += fabs(a * b);
      }
      if (beta != 0) {
        s += C0[(size_t)i * ldc + j];
        sa += fabs(C0[(size_t)i * ldc + j]);
      }
      double got = C[(size_t)i * ldc + j];
      if (fabs(got - s) > 1e-5 * (sa + 1e-3))
        fail_msg("ta=%d tb=%d M=%d N=%d K=%d beta=%g: C[%d][%d] = %.7g, expected %.7g", ta, tb, M, N, K, beta, i, j, got,
                 s);
    }
  free(A); free(B); free(C); free(C0);
}

static void test_gemm(void **state) {
  (void)state;
  if (tn_isa_level() < TN_ISA_AVX512BF16) skip();
  static const int sz[][3] = {{64, 64, 64}, {33, 47, 40}, {100, 31, 288}, {17, 5, 3}, {32, 96, 1}, {130, 70, 97}, {16, 16, 64}, {80, 16, 40}, {16, 80, 2100},
                                 /* several k panels (256 k) and column panels (960) of the vdpbf16ps kernel */
                                 {41, 1001, 300}, {9, 113, 517}};
  for (size_t c = 0; c < sizeof sz / sizeof sz[0]; c++)
    for (int t = 0; t < 4; t++)
      for (int b = 0; b < 2; b++) check(t & 1, t & 2, sz[c][0], sz[c][1], sz[c][2], (float)b);
}

static void test_serial(void **state) {
  (void)state;
  if (tn_isa_level() < TN_ISA_AVX512BF16) skip();
  static const int sz[][3] = {{64, 256, 64}, {64, 48, 192}, {40, 48, 64}, {16, 70, 48}};
  for (size_t c = 0; c < sizeof sz / sizeof sz[0]; c++)
    for (int t = 0; t < 4; t++)
      for (int b = 0; b < 2; b++) check_alpha(t & 1, t & 2, sz[c][0], sz[c][1], sz[c][2], (float)b, 0.1443f, true);
}

/* tn_bf16_pack_b once, then tn_gemm_bf16_packed for several row counts (the LM head's
 * chunks): each against the same double-precision reference of the rounded operands */
static void test_packed(void **state) {
  (void)state;
  if (tn_isa_level() < TN_ISA_AVX512BF16) skip();
  const int N = 83, K = 301, ldb = K + 2;
  float *B = malloc(sizeof(float) * (size_t)N * ldb);
  for (int i = 0; i < N * ldb; i++) B[i] = frand();
  tn_bf16_packed pk = {0};
  assert_true(tn_bf16_pack_b(&pk, true, N, K, B, ldb)); /* op(B) = B^T: B (N, K) */
  static const int ms[] = {9, 32, 77};
  for (int c = 0; c < 3; c++) {
    const int M = ms[c];
    for (int beta = 0; beta < 2; beta++) {
      float *A = malloc(sizeof(float) * (size_t)M * K), *C = malloc(sizeof(float) * (size_t)M * N);
      float *C0 = malloc(sizeof(float) * (size_t)M * N);
      for (int i = 0; i < M * K; i++) A[i] = frand();
      for (int i = 0; i < M * N; i++) C0[i] = C[i] = frand();
      assert_true(tn_gemm_bf16_packed(false, M, A, K, &pk, (float)beta, C, N));
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double s = beta ? C0[(size_t)i * N + j] : 0, sa = fabs(s);
          for (int k = 0; k < K; k++) {
            const double p = (double)bf16r(A[(size_t)i * K + k]) * bf16r(B[(size_t)j * ldb + k]);
            s += p;
            sa += fabs(p);
          }
          if (fabs(C[(size_t)i * N + j] - s) > 1e-5 * (sa + 1e-3))
            fail_msg("packed M=%d beta=%d: C[%d][%d] = %.7g, expected %.7g", M, beta, i, j, C[(size_t)i * N + j], s);
        }
      free(A); free(C); free(C0);
    }
  }
  tn_bf16_packed_free(&pk);
  free(B);
}

static void test_nf4(void **state) {
  (void)state;
  if (tn_isa_level() < TN_ISA_AVX512BF16) skip();
  const int N = 37, in = 160, out = 90;
  float *w = malloc(sizeof(float) * out * in), *wd = malloc(sizeof(float) * out * in);
  float *x = malloc(sizeof(float) * N * in), *dy = malloc(sizeof(float) * N * out);
  float *y = malloc(sizeof(float) * N * out), *dx = malloc(sizeof(float) * N * in);
  for (int i = 0; i < out * in; i++) w[i] = frand() * 0.2f;
  for (int i = 0; i < N * in; i++) x[i] = frand();
  for (int i = 0; i < N * out; i++) dy[i] = frand();
  tn_nf4 q;
  assert_int_equal(tn_nf4_alloc(&q, (int64_t)out * in, 64, true), TN_OK);
  tn_nf4_quantize(&q, w);
  tn_nf4_dequantize(wd, &q, 0, (int64_t)out * in);
  tn_mat W = {.out = out, .in = in, .dtype = TN_NF4, .q = &q};
  tn_matmul_set_bf16(true);
  tn_qlinear_forward(y, x, &W, N);
  for (int i = 0; i < N * in; i++) dx[i] = 0.5f;
  tn_qlinear_backward_dx(dx, dy, &W, N);
  tn_matmul_set_bf16(false);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < out; o++) {
      double s = 0, sa = 0;
      for (int k = 0; k < in; k++) {
        const double p = (double)bf16r(x[n * in + k]) * bf16r(wd[o * in + k]);
        s += p;
        sa += fabs(p);
      }
      if (fabs(y[n * out + o] - s) > 1e-5 * (sa + 1e-3)) fail_msg("nf4 fwd y[%d][%d] = %.7g, expected %.7g", n, o, y[n * out + o], s);
    }
  for (int n = 0; n < N; n++)
    for (int k = 0; k < in; k++) {
      double s = 0.5, sa = 0.5;
      for (int o = 0; o < out; o++) {
        const double p = (double)bf16r(dy[n * out + o]) * bf16r(wd[o * in + k]);
        s += p;
        sa += fabs(p);
      }
      if (fabs(dx[n * in + k] - s) > 1e-5 * (sa + 1e-3)) fail_msg("nf4 dx[%d][%d] = %.7g, expected %.7g", n, k, dx[n * in + k], s);
    }
  tn_nf4_free(&q);
  free(w); free(wd); free(x); free(dy); free(y); free(dx);
}

static void test_linear(void **state) {
  (void)state;
  if (tn_isa_level() < TN_ISA_AVX512BF16) skip();
  const int N = 70, in = 96, out = 80;
  float *x = malloc(sizeof(float) * N * in), *w = malloc(sizeof(float) * out * in), *dy = malloc(sizeof(float) * N * out);
  for (int i = 0; i < N * in; i++) x[i] = frand();
  for (int i = 0; i < out * in; i++) w[i] = frand() * 0.1f;
  for (int i = 0; i < N * out; i++) dy[i] = frand();
  tn_mat W = {.out = out, .in = in, .dtype = TN_F32, .w = w};
  float *y[2], *dx[2], *dw[2];
  for (int m = 0; m < 2; m++) {
    tn_matmul_set_bf16(m == 1);
    y[m] = malloc(sizeof(float) * N * out);
    dx[m] = calloc((size_t)N * in, sizeof(float));
    dw[m] = calloc((size_t)out * in, sizeof(float));
    tn_linear_forward(y[m], x, &W, NULL, N);
    tn_linear_backward(dx[m], dw[m], NULL, dy, x, &W, N);
  }
  tn_matmul_set_bf16(false);
  struct { float *a, *b; size_t n; double scale; } pairs[] = {
    {y[0], y[1], (size_t)N * out, in * 0.1}, {dx[0], dx[1], (size_t)N * in, out * 0.1}, {dw[0], dw[1], (size_t)out * in, N}};
  for (int p = 0; p < 3; p++) {
    double dmax = 0;
    for (size_t i = 0; i < pairs[p].n; i++) dmax = fmax(dmax, fabs(pairs[p].a[i] - pairs[p].b[i]));
    /* bf16 rounding of both operands: |err| <~ 2 * 2^-9 * sum |a b| (sum |a b| <~ scale / 2 here) */
    assert_true(dmax > 0);
    assert_true(dmax < 4e-3 * pairs[p].scale);
  }
  for (int m = 0; m < 2; m++) { free(y[m]); free(dx[m]); free(dw[m]); }
  free(x); free(w); free(dy);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_gemm), cmocka_unit_test(test_serial), cmocka_unit_test(test_packed),
                                     cmocka_unit_test(test_nf4), cmocka_unit_test(test_linear)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
