/* test_eval_run.c - the library side of `tunic eval` / `tunic report` (run_eval.h, report.h):
 * tn_eval_run called as a trainer would (loaded model, no files, nothing printed), the active
 * LoRA adapter being what is evaluated (B = 0 adapter == base model; a non-zero adapter
 * changes the completions; deactivated == base again), the summary path rule, and which
 * metric keys get plotted. The end-to-end CLI checks are in tests/eval_cli/ (eval.cmake). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include "eval/report.h"
#include "eval/run_eval.h"
#include "model/lora.h"

static char g_dir[] = "/tmp/tn_eval_run_XXXXXX";
static char *g_data;

static int setup(void **st) {
  (void)st;
  if (!mkdtemp(g_dir)) return -1;
  tn_init_opts io = {.arch = "llama", .size = "tiny", .dtype = "f32", .shards = 1, .seed = 7,
                     .override_json = "{\"vocab_size\": 264, \"bos_token_id\": 257, \"pad_token_id\": 256, "
                                      "\"eos_token_id\": [258, 260]}"};
  if (tn_model_init_dir(g_dir, &io) != TN_OK || tn_write_byte_tokenizer(g_dir) != TN_OK) return -1;
  g_data = tn_path_join(g_dir, "eval.jsonl");
  FILE *f = fopen(g_data, "w");
  if (!f) return -1;
  for (int i = 0; i < 6; i++)
    fprintf(f, "{\"id\": \"e%d\", \"prompt\": \"What is %d + %d?\", \"answer\": \"%d\", \"category\": \"%s\"}\n", i, i,
            i + 1, 2 * i + 1, i % 2 ? "odd" : "even");
  fclose(f);
  return 0;
}

static int teardown(void **st) {
  (void)st;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  free(g_data);
  return system(cmd) == 0 ? 0 : -1;
}

static char *run_to_file(tn_model *m, const tn_tokenizer *tok, const char *name) {
  tn_eval_opts o;
  tn_eval_opts_default(&o);
  o.data = g_data;
  char *out = tn_path_join(g_dir, name);
  o.out = out;
  o.max_new_tokens = 12;
  o.n = 2;
  o.temperature = 1.0f;
  o.seed = 3;
  tn_eval_summary s;
  assert_int_equal(tn_eval_run(m, tok, &o, &s), TN_OK);
  assert_int_equal(s.n_examples, 6);
  tn_eval_summary_free(&s);
  char *text;
  size_t len;
  assert_int_equal(tn_read_file(out, &text, &len), TN_OK);
  free(out);
  return text;
}

static void test_library_call(void **st) {
  (void)st;
  tn_model *m;
  tn_tokenizer *tok;
  assert_int_equal(tn_model_load(&m, g_dir), TN_OK);
  assert_int_equal(tn_tokenizer_load(g_dir, &tok), TN_OK);
  tn_eval_opts o;
  tn_eval_opts_default(&o);
  o.data = g_data;
  o.max_new_tokens = 8;
  o.limit = 4;
  tn_eval_summary s;
  assert_int_equal(tn_eval_run(m, tok, &o, &s), TN_OK);
  assert_int_equal(s.n_examples, 4);
  assert_int_equal(s.n_samples, 1);
  assert_non_null(s.json);
  /* the struct and the JSON agree; greedy samples of 8 tokens each at most */
  assert_true(s.accuracy == cJSON_GetObjectItem(s.json, "accuracy")->valuedouble);
  assert_true(s.format_rate == cJSON_GetObjectItem(s.json, "format_rate")->valuedouble);
  assert_int_equal((int)cJSON_GetObjectItem(s.json, "n")->valuedouble, 4);
  assert_true(s.gen_tokens > 0 && s.gen_tokens <= 4 * 8);
  int64_t errs = 0;
  for (int e = 0; e < TN_ECAT_COUNT; e++) errs += s.errors[e];
  assert_int_equal(errs, 4);
  tn_eval_summary_free(&s);
  /* nothing written without out / summary_out */
  char *p = tn_path_join(g_dir, "results.jsonl");
  assert_false(tn_file_exists(p));
  free(p);
  /* bad options are errors, not crashes */
  o.n = 0;
  assert_int_equal(tn_eval_run(m, tok, &o, &s), TN_ERR_ARG);
  o.n = 1;
  o.top_p = 0;
  assert_int_equal(tn_eval_run(m, tok, &o, &s), TN_ERR_ARG);
  tn_tokenizer_free(tok);
  tn_model_free(m);
}

static void test_adapter_is_evaluated(void **st) {
  (void)st;
  tn_model *m;
  tn_tokenizer *tok;
  assert_int_equal(tn_model_load(&m, g_dir), TN_OK);
  assert_int_equal(tn_tokenizer_load(g_dir, &tok), TN_OK);
  char *base = run_to_file(m, tok, "base.jsonl");
  tn_lora_opts lo;
  tn_lora_opts_default(&lo);
  lo.rank = 4;
  lo.targets = "q_proj,v_proj,down_proj";
  tn_lora_set *ls;
  assert_int_equal(tn_lora_attach(m, &lo, &ls), TN_OK);
  char *zero = run_to_file(m, tok, "lora_zero.jsonl"); /* PEFT init: B = 0, the same function */
  assert_string_equal(zero, base);
  tn_rng r;
  tn_rng_seed(&r, 99);
  for (size_t i = 0; i < ls->n_floats; i++) ls->flat[i] = 2.0f * (tn_rng_uniform(&r) - 0.5f);
  char *nz = run_to_file(m, tok, "lora_nz.jsonl");
  assert_true(strcmp(nz, base) != 0);
  tn_lora_deactivate(ls);
  char *off = run_to_file(m, tok, "lora_off.jsonl");
  assert_string_equal(off, base);
  free(base);
  free(zero);
  free(nz);
  free(off);
  tn_lora_free(ls);
  tn_tokenizer_free(tok);
  tn_model_free(m);
}

static void test_summary_path(void **st) {
  (void)st;
  static const char *cases[][2] = {
    {"results.jsonl", "results.summary.json"},
    {"a/b/e0.jsonl", "a/b/e0.summary.json"},
    {"out.json", "out.json.summary.json"},
    {".jsonl", ".jsonl.summary.json"},
    {"x.jsonl.bak", "x.jsonl.bak.summary.json"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *p = tn_eval_summary_path(cases[i][0]);
    assert_string_equal(p, cases[i][1]);
    free(p);
  }
}

static void test_plot_groups(void **st) {
  (void)st;
  static const struct { const char *key; int g; } cases[] = {
    {"loss", TN_PLOT_LOSS}, {"eval_loss", TN_PLOT_LOSS}, {"policy/loss", TN_PLOT_LOSS},
    {"reward/total/mean", TN_PLOT_REWARD}, {"rewards_std", TN_PLOT_REWARD}, {"Reward", TN_PLOT_REWARD},
    {"accuracy", TN_PLOT_ACCURACY}, {"train_acc", TN_PLOT_ACCURACY}, {"eval/accuracy_easy", TN_PLOT_ACCURACY},
    {"kl", TN_PLOT_KL}, {"kl/k3", TN_PLOT_KL}, {"kl_loss", TN_PLOT_KL},
    {"grad_accum", -1}, {"klass", -1}, {"learning_rate", -1}, {"clip_frac", -1}, {"tokens_per_s", -1},
    {"elapsed_s", -1}, {"", -1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int g = tn_plot_group_of(cases[i].key);
    if (g != cases[i].g) {
      print_error("key '%s': group %d, want %d\n", cases[i].key, g, cases[i].g);
      fail();
    }
  }
  assert_string_equal(tn_plot_group_name(TN_PLOT_KL), "kl");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_library_call),
    cmocka_unit_test(test_adapter_is_evaluated),
    cmocka_unit_test(test_summary_path),
    cmocka_unit_test(test_plot_groups),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
