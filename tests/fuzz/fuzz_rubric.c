/* fuzz_rubric.c - libFuzzer harness: a rubric reward (YAML list of weighted checks,
 * `--rubric FILE`) through tn_rubric_parse, then an accepted rubric scores a fixed
 * completion and the input itself; the score must be finite. Aliases must not expand
 * exponentially. Not for: the other rewards (fuzz_extract.c). */
#include <math.h>
#include "fuzz_common.h"
#include "rl/rewards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fz_str(data, size);
  tn_rubric *r = NULL;
  tn_error_clear();
  tn_status s = tn_rubric_parse(text, "rubric.yaml", &r);
  fz_check(s, "tn_rubric_parse");
  if (s == TN_OK) {
    if (tn_rubric_count(r) < 0) abort();
    float a = tn_rubric_score(r, "<reasoning>two and two</reasoning><answer>4</answer>");
    float b = tn_rubric_score(r, text);
    if (!isfinite(a) || !isfinite(b)) abort();
    tn_rubric_free(r);
  }
  free(text);
  return 0;
}
