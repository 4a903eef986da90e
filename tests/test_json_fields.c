/* test_json_fields.c - base/json.h's checked field access: each reader's type, integer and
 * range rule, the absent/null = not given rule with defaults and required fields, and the
 * message naming the document and the field. Expected values worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include "base/json.h"

static cJSON *doc;

static int setup(void **state) {
  (void)state;
  doc = cJSON_Parse("{\"n\": 12, \"neg\": -3, \"half\": 0.5, \"big\": 3e12, \"s\": \"abc\", \"t\": true, "
                    "\"nul\": null, \"arr\": [1, 2], \"obj\": {\"k\": 1}}");
  return doc ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  cJSON_Delete(doc);
  return 0;
}

/* the last error names WHERE and the field, and holds the fragment */
static void err_has(const char *frag) {
  const char *e = tn_last_error();
  assert_non_null(strstr(e, "cfg.json"));
  if (!strstr(e, frag)) fail_msg("error '%s' lacks '%s'", e, frag);
}

static void t_int(void **state) {
  (void)state;
  long long x = 0;
  int y = 0;
  assert_int_equal(tn_json_int(doc, "cfg.json", "n", true, 0, 100, 7, &x), TN_OK);
  assert_int_equal(x, 12);
  assert_int_equal(tn_json_int(doc, "cfg.json", "neg", true, -5, 5, 7, &x), TN_OK);
  assert_int_equal(x, -3);
  /* range, both ends inclusive */
  assert_int_equal(tn_json_int(doc, "cfg.json", "n", true, 12, 12, 0, &x), TN_OK);
  assert_int_equal(tn_json_int(doc, "cfg.json", "n", true, 13, 100, 0, &x), TN_ERR_FORMAT);
  err_has("field 'n' must be an integer in [13, 100] (got 12)");
  /* not an integer, too big for int32, a string */
  assert_int_equal(tn_json_int(doc, "cfg.json", "half", true, 0, 10, 0, &x), TN_ERR_FORMAT);
  err_has("(got 0.5)");
  assert_int_equal(tn_json_int32(doc, "cfg.json", "big", true, 0, 2000000000, 0, &y), TN_ERR_FORMAT);
  err_has("'big'");
  assert_int_equal(tn_json_int(doc, "cfg.json", "big", true, 0, 4000000000000LL, 0, &x), TN_OK);
  assert_true(x == 3000000000000LL);
  assert_int_equal(tn_json_int(doc, "cfg.json", "s", true, 0, 10, 0, &x), TN_ERR_FORMAT);
  err_has("(got a string)");
  /* absent and null: the default, or an error when required */
  x = 0;
  assert_int_equal(tn_json_int(doc, "cfg.json", "absent", false, 0, 10, 7, &x), TN_OK);
  assert_int_equal(x, 7);
  assert_int_equal(tn_json_int32(doc, "cfg.json", "nul", false, 0, 10, 9, &y), TN_OK);
  assert_int_equal(y, 9);
  assert_int_equal(tn_json_int(doc, "cfg.json", "nul", true, 0, 10, 7, &x), TN_ERR_FORMAT);
  err_has("missing required field 'nul'");
}

static void t_num_bool_str(void **state) {
  (void)state;
  double d = 0;
  assert_int_equal(tn_json_num(doc, "cfg.json", "half", true, 0, 1, 0, &d), TN_OK);
  assert_true(d == 0.5);
  assert_int_equal(tn_json_num(doc, "cfg.json", "n", true, 0, 1, 0, &d), TN_ERR_FORMAT);
  err_has("a number in [0, 1] (got 12)");
  assert_int_equal(tn_json_num(doc, "cfg.json", "t", true, -HUGE_VAL, HUGE_VAL, 0, &d), TN_ERR_FORMAT);
  err_has("a finite number (got true)");
  bool b = false;
  assert_int_equal(tn_json_bool(doc, "cfg.json", "t", true, false, &b), TN_OK);
  assert_true(b);
  assert_int_equal(tn_json_bool(doc, "cfg.json", "n", true, false, &b), TN_ERR_FORMAT);
  err_has("true or false (got 12)");
  assert_int_equal(tn_json_bool(doc, "cfg.json", "absent", false, true, &b), TN_OK);
  assert_true(b);
  const char *s = NULL;
  assert_int_equal(tn_json_str(doc, "cfg.json", "s", true, NULL, &s), TN_OK);
  assert_string_equal(s, "abc");
  assert_int_equal(tn_json_str(doc, "cfg.json", "arr", false, NULL, &s), TN_ERR_FORMAT);
  err_has("a string (got a list)");
  assert_int_equal(tn_json_str(doc, "cfg.json", "absent", false, "dflt", &s), TN_OK);
  assert_string_equal(s, "dflt");
}

static void t_kind(void **state) {
  (void)state;
  const cJSON *v = NULL;
  assert_int_equal(tn_json_kind(doc, "cfg.json", "arr", cJSON_Array, true, &v), TN_OK);
  assert_int_equal(cJSON_GetArraySize(v), 2);
  assert_int_equal(tn_json_kind(doc, "cfg.json", "obj", cJSON_Object, true, &v), TN_OK);
  assert_non_null(cJSON_GetObjectItem(v, "k"));
  assert_int_equal(tn_json_kind(doc, "cfg.json", "obj", cJSON_Array, true, &v), TN_ERR_FORMAT);
  err_has("a list (got an object)");
  assert_null(v);
  assert_int_equal(tn_json_kind(doc, "cfg.json", "nul", cJSON_Object, false, &v), TN_OK);
  assert_null(v);
  /* not an object at all: nothing is found */
  assert_null(tn_json_field(cJSON_GetObjectItem(doc, "arr"), "k"));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(t_int), cmocka_unit_test(t_num_bool_str), cmocka_unit_test(t_kind)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
