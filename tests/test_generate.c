/* test_generate.c - the sampler against hand-computed distributions: greedy and
 * its log-prob, top-k, top-p (nucleus, HF's boundary rule), min-p, repetition
 * penalty, temperature; frequencies from 40000 draws must match the renormalised
 * probabilities within 0.01 absolute (about 5 standard errors). Plus the context
 * limit policy and seeded reproducibility of tn_generate. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "generate/generate.h"

#define DRAWS 40000

static void freqs(const float *logits, int V, const tn_gen_opts *o, double *f) {
  tn_rng r;
  tn_rng_seed(&r, 123);
  float *row = malloc(sizeof(float) * V);
  memset(f, 0, sizeof(double) * V);
  for (int k = 0; k < DRAWS; k++) {
    memcpy(row, logits, sizeof(float) * V);
    float lp;
    int t = tn_sample_token(row, V, o, NULL, 0, 0, &r, &lp);
    assert_true(t >= 0 && t < V);
    f[t] += 1.0 / DRAWS;
  }
  free(row);
}

/* probabilities 0.5, 0.3, 0.15, 0.05 */
static const float P4[4] = {0.5f, 0.3f, 0.15f, 0.05f};
static void logits4(float *l) {
  for (int i = 0; i < 4; i++) l[i] = logf(P4[i]) + 3.0f; /* shift: softmax is shift-invariant */
}

static void test_greedy(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  float l[4];
  logits4(l);
  tn_rng r;
  tn_rng_seed(&r, 1);
  float lp;
  int t = tn_sample_token(l, 4, &o, NULL, 0, 0, &r, &lp);
  assert_int_equal(t, 0);
  assert_true(fabsf(lp - logf(0.5f)) < 1e-6f);
}

static void test_full_distribution(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.temperature = 1.0f;
  float l[4];
  logits4(l);
  double f[4];
  freqs(l, 4, &o, f);
  for (int i = 0; i < 4; i++) assert_true(fabs(f[i] - P4[i]) < 0.01);
}

static void test_temperature(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.temperature = 0.5f; /* p_i^2 / sum p^2 */
  float l[4];
  logits4(l);
  double f[4], z = 0;
  freqs(l, 4, &o, f);
  for (int i = 0; i < 4; i++) z += P4[i] * P4[i];
  for (int i = 0; i < 4; i++) assert_true(fabs(f[i] - P4[i] * P4[i] / z) < 0.01);
}

static void test_top_k(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.temperature = 1.0f;
  o.top_k = 2;
  float l[4];
  logits4(l);
  double f[4];
  freqs(l, 4, &o, f);
  assert_true(fabs(f[0] - 0.625) < 0.01 && fabs(f[1] - 0.375) < 0.01);
  assert_true(f[2] == 0 && f[3] == 0);
}

static void test_top_p(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.temperature = 1.0f;
  o.top_p = 0.75f; /* 0.5 < 0.75 <= 0.8: keep the first two */
  float l[4];
  logits4(l);
  double f[4];
  freqs(l, 4, &o, f);
  assert_true(fabs(f[0] - 0.625) < 0.01 && fabs(f[1] - 0.375) < 0.01);
  assert_true(f[2] == 0 && f[3] == 0);
  o.top_p = 0.9f; /* 0.8 < 0.9 <= 0.95: keep three */
  freqs(l, 4, &o, f);
  assert_true(fabs(f[2] - 0.15 / 0.95) < 0.01 && f[3] == 0);
  o.top_p = 0.4f; /* the most likely token alone */
  freqs(l, 4, &o, f);
  assert_true(fabs(f[0] - 1.0) < 1e-9);
}

static void test_top_p_large_vocab(void **st) {
  (void)st;
  /* V = 5000 with a geometric tail: the pruned candidate set must still give the exact nucleus */
  int V = 5000;
  float *l = malloc(sizeof(float) * V);
  double *p = malloc(sizeof(double) * V), z = 0;
  for (int i = 0; i < V; i++) { p[i] = pow(0.999, i); z += p[i]; }
  for (int i = 0; i < V; i++) { p[i] /= z; l[(i * 7919) % V] = (float)log(p[i]); }
  double cum = 0;
  int keep = 0;
  while (cum < 0.5) cum += p[keep++];
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.temperature = 1.0f;
  o.top_p = 0.5f;
  double *f = malloc(sizeof(double) * V);
  freqs(l, V, &o, f);
  double outside = 0;
  for (int i = keep; i < V; i++) outside += f[(i * 7919) % V];
  double inside_last = f[((keep - 1) * 7919) % V];
  assert_true(outside == 0.0);
  assert_true(inside_last > 0.0);
  free(l); free(p); free(f);
}

static void test_min_p(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.temperature = 1.0f;
  o.min_p = 0.4f; /* threshold 0.2: keep 0.5 and 0.3 */
  float l[4];
  logits4(l);
  double f[4];
  freqs(l, 4, &o, f);
  assert_true(fabs(f[0] - 0.625) < 0.01 && f[2] == 0 && f[3] == 0);
}

static void test_repetition_penalty(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.repetition_penalty = 2.0f;
  float l[3] = {2.0f, -1.0f, 1.5f};
  int seen[3] = {0, 1, 0}; /* token 0 twice: penalised once */
  tn_rng r;
  tn_rng_seed(&r, 1);
  float lp;
  int t = tn_sample_token(l, 3, &o, seen, 3, 0, &r, &lp);
  assert_true(l[0] == 1.0f && l[1] == -2.0f && l[2] == 1.5f);
  assert_int_equal(t, 2);
  double lse = log(exp(1.0) + exp(-2.0) + exp(1.5));
  assert_true(fabs(lp - (1.5 - lse)) < 1e-6);
}

/* OpenAI's frequency/presence penalties, hand-worked: counts over the generated tokens only (the
 * last n_gen of seen), logit[j] -= count[j] * fp + (count[j] > 0) * pp; ranges [-2, 2] */
static void test_freq_presence_penalty(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.frequency_penalty = 0.5f;
  o.presence_penalty = 0.25f;
  float l[5] = {3.0f, 2.0f, 1.0f, 0.5f, -1.0f};
  /* prompt 3 3 3, then generated 0 1 0 0 4: counts 0:3 1:1 4:1, token 3 only in the prompt */
  int seen[8] = {3, 3, 3, 0, 1, 0, 0, 4};
  tn_rng r;
  tn_rng_seed(&r, 1);
  float lp;
  int t = tn_sample_token(l, 5, &o, seen, 8, 5, &r, &lp);
  const float want[5] = {3.0f - 1.5f - 0.25f, 2.0f - 0.5f - 0.25f, 1.0f, 0.5f, -1.0f - 0.5f - 0.25f};
  for (int v = 0; v < 5; v++) assert_true(fabsf(l[v] - want[v]) < 1e-6f);
  assert_int_equal(t, 0); /* 1.25 is still the largest */
  double lse = 0;
  for (int v = 0; v < 5; v++) lse += exp(want[v]);
  assert_true(fabs(lp - (want[0] - log(lse))) < 1e-6);
  /* negative penalties reward repeats; n_gen 0 leaves the row alone */
  o.frequency_penalty = -1.0f;
  o.presence_penalty = -2.0f;
  float l2[5] = {0, 0, 0, 0, 0};
  tn_sample_token(l2, 5, &o, seen, 8, 5, &r, &lp);
  assert_true(l2[0] == 5.0f && l2[1] == 3.0f && l2[2] == 0.0f && l2[3] == 0.0f && l2[4] == 3.0f);
  float l3[5] = {0, 0, 0, 0, 1};
  assert_int_equal(tn_sample_token(l3, 5, &o, seen, 8, 0, &r, &lp), 4);
  assert_true(l3[0] == 0.0f && l3[3] == 0.0f);
  o.presence_penalty = 2.5f;
  assert_int_equal(tn_gen_opts_check(&o, "test"), TN_ERR_ARG);
  o.presence_penalty = 0;
  o.frequency_penalty = NAN;
  assert_int_equal(tn_gen_opts_check(&o, "test"), TN_ERR_ARG);
}

static tn_model *tiny_model(const char *dir) {
  tn_init_opts io = {.arch = "qwen3", .size = "tiny", .dtype = "f32", .vocab = 64, .shards = 1, .seed = 9,
                     .override_json = "{\"max_position_embeddings\": 32}"};
  assert_int_equal(tn_model_init_dir(dir, &io), TN_OK);
  tn_model *m;
  assert_int_equal(tn_model_load(&m, dir), TN_OK);
  return m;
}

/* issue 12: a NaN temperature or a NaN / +Inf / all -Inf row has no distribution: -1 and a NaN
 * log-prob for every sampling path (greedy, full, top-k/top-p, min-p), never a read before the
 * row (logits[-1] under ASan); a row with some -Inf (masked) logits still samples. */
static void test_nonfinite(void **st) {
  (void)st;
  tn_rng r;
  tn_rng_seed(&r, 3);
  float lp;
  const float bad[][4] = {{NAN, NAN, NAN, NAN}, {1, NAN, 2, 3}, {1, INFINITY, 2, 3}, {-INFINITY, -INFINITY, -INFINITY, -INFINITY}};
  for (int path = 0; path < 4; path++)
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
      tn_gen_opts o;
      tn_gen_opts_default(&o);
      o.temperature = path == 0 ? 0.0f : 1.0f;
      if (path == 2) { o.top_k = 2; o.top_p = 0.9f; }
      if (path == 3) o.min_p = 0.1f;
      float l[4];
      memcpy(l, bad[b], sizeof l);
      assert_int_equal(tn_sample_token(l, 4, &o, NULL, 0, 0, &r, &lp), -1);
      assert_true(isnan(lp));
    }
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.temperature = NAN;
  float l[4];
  logits4(l);
  assert_int_equal(tn_sample_token(l, 4, &o, NULL, 0, 0, &r, &lp), -1);
  float masked[4] = {-INFINITY, 1.0f, -INFINITY, 2.0f};
  o.temperature = 1.0f;
  int t = tn_sample_token(masked, 4, &o, NULL, 0, 0, &r, &lp);
  assert_true(t == 1 || t == 3);
  assert_true(isfinite(lp));
}

static void test_generate_limits_and_seed(void **st) {
  (void)st;
  char dir[] = "/tmp/tn_test_gen_XXXXXX";
  assert_non_null(mkdtemp(dir));
  tn_model *m = tiny_model(dir);
  int p0[] = {1, 2, 3, 4}, p1[] = {5, 6};
  const int *ps[] = {p0, p1};
  int pl[] = {4, 2};
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.max_new_tokens = 40; /* 4 + 40 > 32 */
  tn_gen_result res[4];
  assert_int_equal(tn_generate(m, ps, pl, 2, &o, res), TN_ERR_LIMIT);
  assert_non_null(strstr(tn_last_error(), "max_position_embeddings"));
  /* sampling options outside their ranges: refused by the library too (not only the CLI) */
  const float bad_t[] = {NAN, -1.0f, INFINITY};
  for (int i = 0; i < 3; i++) {
    tn_gen_opts ob = o;
    ob.max_new_tokens = 2;
    ob.temperature = bad_t[i];
    assert_int_equal(tn_generate(m, ps, pl, 2, &ob, res), TN_ERR_ARG);
    assert_non_null(strstr(tn_last_error(), "temperature"));
  }
  tn_gen_opts ob = o;
  ob.max_new_tokens = 2;
  ob.top_p = 0.0f;
  assert_int_equal(tn_generate(m, ps, pl, 2, &ob, res), TN_ERR_ARG);
  ob.top_p = 1.0f;
  ob.min_p = 5.0f;
  assert_int_equal(tn_generate(m, ps, pl, 2, &ob, res), TN_ERR_ARG);
  o.max_new_tokens = 10;
  o.temperature = 1.0f;
  o.n = 2;
  o.seed = 77;
  o.stop_ids = (int[]){-1};
  o.n_stop_ids = 1;
  tn_gen_result a[4], b[4];
  assert_int_equal(tn_generate(m, ps, pl, 2, &o, a), TN_OK);
  assert_int_equal(tn_generate(m, ps, pl, 2, &o, b), TN_OK);
  int differ = 0;
  for (int i = 0; i < 4; i++) {
    assert_int_equal(a[i].n, 10);
    assert_int_equal(a[i].finish, TN_FINISH_LENGTH);
    assert_memory_equal(a[i].ids, b[i].ids, sizeof(int) * 10);
    differ += memcmp(a[0].ids, a[i].ids, sizeof(int) * 10) != 0;
  }
  assert_true(differ >= 2); /* different samples of one prompt are different streams */
  tn_gen_results_free(a, 4);
  tn_gen_results_free(b, 4);
  tn_model_free(m);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_greedy),          cmocka_unit_test(test_full_distribution),
    cmocka_unit_test(test_temperature),     cmocka_unit_test(test_top_k),
    cmocka_unit_test(test_top_p),           cmocka_unit_test(test_top_p_large_vocab),
    cmocka_unit_test(test_min_p),           cmocka_unit_test(test_repetition_penalty), cmocka_unit_test(test_freq_presence_penalty),
    cmocka_unit_test(test_generate_limits_and_seed), cmocka_unit_test(test_nonfinite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
