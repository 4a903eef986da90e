/* test_template_ref.c - tunic's Jinja renderer against @huggingface/jinja: every rendering that
 * tests/template/reference.mjs wrote to $TN_BUILD/tplref/cases.jsonl (real chat templates of the
 * npm tokenizer packages and templates written for the tests, over conversations with system,
 * user, assistant, tool-call and tool-result turns, with and without tools and the generation
 * prompt) is rendered again here and must be byte-identical; where the reference raised an
 * error tunic must fail too. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "template/jinja.h"

/* renders every record of BUILD/tplref/FILE; returns the number of differences (-1: no file) */
static int compare(const char *file, const char *peer, int *count) {
  const char *bld = getenv("TN_BUILD");
  char path[4096];
  snprintf(path, sizeof path, "%s/tplref/%s", bld ? bld : ".", file);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  setenv("TN_DATE", "2026-03-14", 1);
  char *line = NULL;
  size_t cap = 0;
  int n = 0, same = 0, bad = 0, both_err = 0;
  char last_name[64] = "";
  tn_jinja *t = NULL;
  while (getline(&line, &cap, f) > 0) {
    cJSON *rec = cJSON_Parse(line);
    assert_non_null(rec);
    const char *name = cJSON_GetObjectItem(rec, "template")->valuestring;
    if (strcmp(name, last_name)) {
      tn_jinja_free(t);
      t = NULL;
      char tp[4096], *text;
      size_t tl;
      snprintf(tp, sizeof tp, "%s/tplref/tpl_%s.jinja", bld ? bld : ".", name);
      assert_int_equal(tn_read_file(tp, &text, &tl), TN_OK);
      tn_status s = tn_jinja_parse(text, name, &t);
      if (s != TN_OK) fprintf(stderr, "parse %s: %s\n", name, tn_last_error());
      assert_int_equal(s, TN_OK);
      free(text);
      snprintf(last_name, sizeof last_name, "%s", name);
    }
    const cJSON *want = cJSON_GetObjectItem(rec, "text");
    tn_jinja_result r;
    tn_status s = tn_jinja_render(t, cJSON_GetObjectItem(rec, "vars"), NULL, &r);
    n++;
    if (!want) {
      if (s != TN_OK) both_err++;
      else if (bad++ < 5) fprintf(stderr, "[%s conv %d] reference failed (%s) but tunic rendered\n", name,
                                  cJSON_GetObjectItem(rec, "conv")->valueint, cJSON_GetObjectItem(rec, "error")->valuestring);
    } else if (s != TN_OK) {
      if (bad++ < 5) fprintf(stderr, "[%s conv %d] tunic failed: %s\n", name, cJSON_GetObjectItem(rec, "conv")->valueint, tn_last_error());
    } else if (r.len != strlen(want->valuestring) || memcmp(r.text, want->valuestring, r.len)) {
      if (bad++ < 5) {
        size_t k = 0;
        while (k < r.len && r.text[k] == want->valuestring[k]) k++;
        fprintf(stderr, "[%s conv %d] differs at byte %zu:\n  ref:  %.120s\n  ours: %.120s\n", name,
                cJSON_GetObjectItem(rec, "conv")->valueint, k, want->valuestring + (k > 40 ? k - 40 : 0),
                r.text + (k > 40 ? k - 40 : 0));
      }
    } else {
      same++;
    }
    if (s == TN_OK) tn_jinja_result_free(&r);
    cJSON_Delete(rec);
  }
  tn_jinja_free(t);
  free(line);
  fclose(f);
  fprintf(stderr, "%s: %d renderings, %d byte-identical, %d errors on both sides, %d differences\n", peer, n, same,
          both_err, bad);
  *count = n;
  return bad;
}

static void test_against_huggingface_jinja(void **state) {
  (void)state;
  int n, bad = compare("cases.jsonl", "@huggingface/jinja", &n);
  if (bad < 0) skip();
  assert_true(n > 100);
  assert_int_equal(bad, 0);
}

/* the same renderings plus python_cases.json (where @huggingface/jinja differs from Python) */
static void test_against_python_jinja2(void **state) {
  (void)state;
  int n, bad = compare("cases_py.jsonl", "Python jinja2 (transformers' setup)", &n);
  if (bad < 0) skip();
  assert_true(n > 100);
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_against_huggingface_jinja),
                                     cmocka_unit_test(test_against_python_jinja2)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
