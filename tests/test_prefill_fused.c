/* test_prefill_fused.c - the fused prefill (one parallel region per forward of > 8
 * rows at inference, on the packed GEMM of tensor/linear.c) on tiny random llama,
 * gemma3 (sliding window, sandwich and q/k norms), qwen2 (biases, GQA) and qwen3
 * checkpoints, and one whose kv heads (3) do not split evenly over 2 threads:
 *  - the logits of every row of a two-prompt prefill agree with the per-kernel path
 *    (OpenBLAS sgemm per projection) within 1e-4, and so do the logits of greedy
 *    decode steps that read the cache the prefill wrote;
 *  - they are bitwise the same on 1, 2 and 3 threads, and a prompt prefilled alone
 *    gives bitwise its rows of the two-prompt batch (each output one FMA chain), with
 *    13 + 17 rows (the decode GEMM, up to 32 rows) and 37 + 41 rows (the packed GEMM).
 * The PyTorch agreement of these logits is ref_* (tunic logits runs this path).
 * Not for: the decode kernels (test_decode_kernels). */
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "base/base.h"
#include "model/model.h"

enum { NR_MAX = 78, STEPS = 4, NT_MAX = 3 };
/* prompt lengths: 13 + 17 rows (<= 32: the decode GEMM in the region), 37 + 41 (the packed GEMM) */
static const int PL[2][2] = {{13, 17}, {37, 41}};
static int P0, P1, NR;

/* prefill prompts 0 (P0 tokens) and 1 (P1) in one forward (or prompt 0 alone), logits of
 * every row into lp (NR or P0, V); then STEPS greedy decode steps of both slots, their
 * logits into ld (STEPS, 2, V) when not NULL */
static void run(const tn_model *m, bool alone, float *lp, float *ld) {
  const int V = m->cfg.V;
  tn_state *st;
  assert_int_equal(tn_state_create(&st, m, 2, NR + STEPS + 1, NR, false), TN_OK);
  int tok[NR_MAX], pos[NR_MAX], seq[NR_MAX], n = 0;
  for (int j = 0; j < (alone ? 1 : 2); j++)
    for (int t = 0; t < (j ? P1 : P0); t++, n++) tok[n] = 3 + (j * 31 + t * 7) % (V - 3), pos[n] = t, seq[n] = j;
  assert_int_equal(tn_forward(m, st, n, tok, pos, seq, lp, NULL, n), TN_OK);
  if (!ld) {
    tn_state_free(st);
    return;
  }
  int cur[2] = {tok[P0 - 1], tok[NR - 1]}, len[2] = {P0, P1};
  for (int k = 0; k < STEPS; k++) {
    for (int j = 0; j < 2; j++) tok[j] = cur[j], pos[j] = len[j] + k, seq[j] = j;
    assert_int_equal(tn_forward(m, st, 2, tok, pos, seq, ld + (size_t)k * 2 * V, NULL, 2), TN_OK);
    for (int j = 0; j < 2; j++) {
      const float *l = ld + ((size_t)k * 2 + j) * V;
      int b = 0;
      for (int v = 1; v < V; v++) b = l[v] > l[b] ? v : b;
      cur[j] = b;
    }
  }
  tn_state_free(st);
}

static float max_diff(const float *a, const float *b, size_t n) {
  float d = 0.0f;
  for (size_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
  return d;
}

/* The thread count only grows (1, 2, 3): libgomp ends surplus workers when it shrinks,
 * and their thread-local scratch would then show up as leaks under ASan. */
static void test_prefill(void **state) {
  (void)state;
  /* the fused prefill runs at the avx512 level and above; below it prefill is the per-kernel
   * path (OpenBLAS), for which no batch invariance is claimed (docs/testing.md) */
  if (tn_isa_level() < TN_ISA_AVX512) skip();
  const char *archs[] = {"llama", "gemma3_text", "qwen2", "qwen3", "llama"};
  const char *over[] = {"{\"max_position_embeddings\": 96}",
                        "{\"max_position_embeddings\": 96, \"sliding_window\": 7}",
                        "{\"max_position_embeddings\": 96}", "{\"max_position_embeddings\": 96}",
                        "{\"max_position_embeddings\": 96, \"hidden_size\": 96, \"num_attention_heads\": 6, "
                        "\"num_key_value_heads\": 3, \"intermediate_size\": 160}"};
  enum { NA = 5 };
  tn_model *ms[NA];
  char dirs[NA][32];
  float *first[2][NA]; /* 1-thread fused prefill logits, per prompt-length case */
  for (int a = 0; a < NA; a++) {
    strcpy(dirs[a], "/tmp/tn_test_prefill_XXXXXX");
    assert_non_null(mkdtemp(dirs[a]));
    tn_init_opts io = {.arch = archs[a], .size = "tiny", .dtype = "f32", .vocab = 96, .shards = 1, .seed = 7,
                       .override_json = over[a]};
    if (tn_model_init_dir(dirs[a], &io) != TN_OK) fail_msg("init %s: %s", archs[a], tn_last_error());
    assert_int_equal(tn_model_load(&ms[a], dirs[a]), TN_OK);
    for (int pc = 0; pc < 2; pc++) first[pc][a] = malloc(sizeof(float) * NR_MAX * ms[a]->cfg.V);
  }
  for (int nt = 1; nt <= NT_MAX; nt++) {
    omp_set_num_threads(nt);
    for (int pc = 0; pc < 2; pc++)
      for (int a = 0; a < NA; a++) {
        P0 = PL[pc][0], P1 = PL[pc][1], NR = P0 + P1;
        const tn_model *m = ms[a];
        const size_t V = m->cfg.V;
        float *lf = malloc(sizeof(float) * NR * V), *lk = malloc(sizeof(float) * NR * V), *l0 = malloc(sizeof(float) * P0 * V);
        float *df = malloc(sizeof(float) * STEPS * 2 * V), *dk = malloc(sizeof(float) * STEPS * 2 * V);
        tn_forward_set_fused_prefill(true);
        run(m, false, lf, df);
        run(m, true, l0, NULL);
        tn_forward_set_fused_prefill(false);
        run(m, false, lk, dk);
        tn_forward_set_fused_prefill(true);
        const float dp = max_diff(lf, lk, NR * V), dd = max_diff(df, dk, STEPS * 2 * V);
        if (dp > 1e-4f || dd > 1e-4f)
          fail_msg("%s (%d threads, %d rows): fused prefill vs per-kernel: prefill %g, decode %g", archs[a], nt, NR,
                   dp, dd);
        assert_memory_equal(l0, lf, sizeof(float) * P0 * V); /* prompt 0 alone == its rows in the batch */
        if (nt == 1) memcpy(first[pc][a], lf, sizeof(float) * NR * V);
        else assert_memory_equal(first[pc][a], lf, sizeof(float) * NR * V);
        free(lf), free(lk), free(l0), free(df), free(dk);
      }
  }
  for (int a = 0; a < NA; a++) {
    tn_model_free(ms[a]);
    free(first[0][a]), free(first[1][a]);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %.31s", dirs[a]);
    assert_int_equal(system(cmd), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_prefill)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
