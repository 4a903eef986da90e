/* fuzz_eval_results.c - libFuzzer harness: a per-example eval results JSONL file (what
 * `tunic eval --out` writes, `tunic report` reads) through tn_results_load; two accepted
 * files (the input against itself and against a fixed one) are compared as
 * `tunic report` does. Not for: writing results (run_eval.c). */
#include "fuzz_common.h"
#include "eval/eval.h"

static const char fixed[] = "{\"id\": 1, \"correct\": true, \"category\": \"a\"}\n"
                            "{\"id\": \"2\", \"correct\": false, \"error\": \"wrong_number\"}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write(NULL, "results.jsonl", data, size, 0);
  const char *path2 = fz_write(NULL, "fixed.jsonl", fixed, strlen(fixed), 1);
  tn_results a = {0}, b = {0};
  tn_error_clear();
  tn_status s = tn_results_load(path, &a);
  fz_check(s, "tn_results_load");
  if (s != TN_OK) return 0;
  if (tn_results_load(path2, &b) != TN_OK) abort();
  for (int k = 0; k < 2; k++) {
    tn_report r;
    memset(&r, 0, sizeof r);
    tn_error_clear();
    s = tn_report_compare(&a, k ? &b : &a, &r);
    fz_check(s, "tn_report_compare");
    if (s == TN_OK) tn_report_free(&r);
  }
  tn_results_free(&a);
  tn_results_free(&b);
  return 0;
}
