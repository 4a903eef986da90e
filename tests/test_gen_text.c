/* test_gen_text.c - tn_generate_text / tn_generate_text_ids (the text side of generation) on a
 * tiny llama with the byte tokenizer (ids 0-255 are the bytes themselves, so the text of a
 * sample is known independently from its ids):
 * - without stop strings each sample's text is what the whole-sequence decoder makes of its
 *   ids, and the pieces handed to on_text, concatenated, are that text;
 * - a stop string taken from the middle of sample 0's text ends that sample there: the text is
 *   cut right before it, finish = TN_FINISH_STOP_FN, its ids a prefix of the unstopped run's
 *   (same seed, same stream), and the streamed pieces never contain the stop string;
 * - one prompt at a time (first_prompt) gives the batch's samples;
 * - bad arguments are errors, not crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "base/base.h"
#include "generate/generate.h"
#include "model/model.h"

enum { NS = 3, MAXK = 8 };
static char g_dir[64];
static tn_model *g_m;
static tn_tokenizer *g_tok;

typedef struct {
  char buf[MAXK][4096];
  size_t len[MAXK];
  int n;
} sink;

static void on_text(void *user, int prompt, int sample, const char *piece, size_t len) {
  sink *k = user;
  const int i = prompt * k->n + sample;
  assert_true(i < MAXK && k->len[i] + len < sizeof k->buf[i]);
  memcpy(k->buf[i] + k->len[i], piece, len);
  k->len[i] += len;
}

static int setup(void **st) {
  (void)st;
  strcpy(g_dir, "/tmp/tn_test_gen_text_XXXXXX");
  if (!mkdtemp(g_dir)) return -1;
  tn_init_opts io = {.arch = "llama", .size = "tiny", .dtype = "f32", .vocab = 261, .shards = 1, .seed = 11};
  if (tn_write_byte_tokenizer(g_dir) != TN_OK || tn_model_init_dir(g_dir, &io) != TN_OK) return -1;
  if (tn_model_load(&g_m, g_dir) != TN_OK || tn_tokenizer_load(g_dir, &g_tok) != TN_OK) return -1;
  return 0;
}

static int teardown(void **st) {
  (void)st;
  tn_model_free(g_m);
  tn_tokenizer_free(g_tok);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void gen(const char *const *prompts, int B, const char *stop, sink *k, tn_text_result *r) {
  tn_gen_opts g;
  tn_gen_opts_default(&g);
  g.max_new_tokens = 40, g.temperature = 1.0f, g.n = NS, g.seed = 9;
  tn_text_opts t;
  tn_text_opts_default(&t);
  t.stop = &stop, t.n_stop = stop != NULL, t.on_text = on_text, t.user = k;
  memset(k, 0, sizeof *k);
  k->n = NS;
  if (tn_generate_text(g_m, g_tok, prompts, B, &g, &t, r) != TN_OK) fail_msg("generate_text: %s", tn_last_error());
}

static void test_text_and_stop(void **st) {
  (void)st;
  const char *prompts[2] = {"Once upon a time", "The cat sat"};
  static sink k0, k1;
  tn_text_result r0[2 * NS], r1[2 * NS];
  gen(prompts, 2, NULL, &k0, r0);
  for (int i = 0; i < 2 * NS; i++) {
    /* the whole-sequence decoder (another code path than the streaming one) gives the same text */
    char *expect = NULL;
    size_t n = 0;
    assert_int_equal(tn_tokenizer_decode(g_tok, (const int32_t *)r0[i].ids, (size_t)r0[i].n, true, &expect, &n), TN_OK);
    assert_true(r0[i].n > 0);
    assert_string_equal(r0[i].text, expect);
    free(expect);
    assert_int_equal(k0.len[i], strlen(r0[i].text));
    assert_memory_equal(k0.buf[i], r0[i].text, k0.len[i]);
  }
  /* a stop string from the middle of sample (0, 0) */
  const char *t0 = r0[0].text;
  const size_t L = strlen(t0);
  assert_true(L >= 8);
  char stop[3] = {t0[L / 2], t0[L / 2 + 1], 0};
  const char *first = strstr(t0, stop);
  assert_non_null(first);
  gen(prompts, 2, stop, &k1, r1);
  assert_int_equal(r1[0].finish, TN_FINISH_STOP_FN);
  assert_int_equal(strlen(r1[0].text), (size_t)(first - t0));
  assert_memory_equal(r1[0].text, t0, (size_t)(first - t0));
  for (int i = 0; i < 2 * NS; i++) {
    assert_true(r1[i].n <= r0[i].n);
    assert_memory_equal(r1[i].ids, r0[i].ids, sizeof(int) * (size_t)r1[i].n); /* same streams */
    assert_null(strstr(r1[i].text, stop));
    assert_int_equal(k1.len[i], strlen(r1[i].text)); /* streamed pieces == the final (cut) text */
    assert_memory_equal(k1.buf[i], r1[i].text, k1.len[i]);
    if (r1[i].finish != TN_FINISH_STOP_FN) assert_int_equal(r1[i].n, r0[i].n);
  }
  tn_text_results_free(r1, 2 * NS);
  /* prompt 1 alone, as the batch's prompt 1 (first_prompt = 1 names its RNG streams) */
  tn_encoding e = {0};
  assert_int_equal(tn_tokenizer_encode(g_tok, prompts[1], strlen(prompts[1]), true, &e), TN_OK);
  const int *ids = (const int *)e.ids, len = (int)e.n;
  tn_gen_opts g;
  tn_gen_opts_default(&g);
  g.max_new_tokens = 40, g.temperature = 1.0f, g.n = NS, g.seed = 9, g.first_prompt = 1;
  tn_text_result r2[NS];
  assert_int_equal(tn_generate_text_ids(g_m, g_tok, &ids, &len, 1, &g, NULL, r2), TN_OK);
  for (int j = 0; j < NS; j++) {
    assert_int_equal(r2[j].n, r0[NS + j].n);
    assert_memory_equal(r2[j].ids, r0[NS + j].ids, sizeof(int) * (size_t)r2[j].n);
    assert_string_equal(r2[j].text, r0[NS + j].text);
  }
  tn_text_results_free(r2, NS);
  tn_text_results_free(r0, 2 * NS);
  tn_encoding_free(&e);
}

static void test_bad_args(void **st) {
  (void)st;
  tn_gen_opts g;
  tn_gen_opts_default(&g);
  tn_text_result r[2];
  const char *p[1] = {NULL};
  assert_int_equal(tn_generate_text(g_m, g_tok, p, 1, &g, NULL, r), TN_ERR_ARG);
  assert_int_equal(tn_generate_text(g_m, NULL, p, 1, &g, NULL, r), TN_ERR_ARG);
  g.n = 0;
  const char *q[1] = {"hi"};
  assert_int_equal(tn_generate_text(g_m, g_tok, q, 1, &g, NULL, r), TN_ERR_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_text_and_stop), cmocka_unit_test(test_bad_args)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
