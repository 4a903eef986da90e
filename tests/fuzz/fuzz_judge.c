/* fuzz_judge.c - libFuzzer harness: the free-text parsers of the judges and of reference-free
 * evaluation. Input: verdict NUL completion NUL keyword rules (YAML). The judge's score parser
 * (tn_judge_parse_score, several ranges: a score it returns lies in the range), the "steps"
 * judge (0 or 1), the judge template filler (every placeholder replaced), the keyword
 * categorizer (`--categorize` YAML: loads or says why; a category it names is one of the
 * file's or "other") and the text metrics (finite, in their ranges). Not for: the judge model
 * (generation) or the reward library (fuzz_extract.c). */
#include <math.h>
#include "fuzz_common.h"
#include "eval/eval.h"
#include "improve/judge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *part[3];
  size_t len[3];
  int k = fz_split(data, size, 3, part, len);
  char *verdict = fz_str(part[0], len[0]);
  char *comp = k > 1 ? fz_str(part[1], len[1]) : fz_str((const uint8_t *)"", 0);
  static const double ranges[][2] = {{1, 10}, {0, 1}, {-5, 5}, {0, 100}};
  for (int r = 0; r < 4; r++) {
    double v = NAN;
    if (tn_judge_parse_score(verdict, ranges[r][0], ranges[r][1], &v) && !(v >= ranges[r][0] && v <= ranges[r][1])) abort();
  }
  float st = tn_judge_steps_score(comp, "<reasoning>", "</reasoning>");
  float st2 = tn_judge_steps_score(verdict, NULL, NULL);
  if ((st != 0 && st != 1) || (st2 != 0 && st2 != 1)) abort();
  char *filled = tn_judge_fill(TN_JUDGE_DEFAULT_TEMPLATE, verdict, comp, "42");
  if (!filled) abort();
  if (strstr(TN_JUDGE_DEFAULT_TEMPLATE, "{completion}") && !strstr(filled, comp)) abort();
  free(filled);
  char *own = tn_judge_fill(verdict, "P", "C", "A"); /* the input as a template */
  if (!own) abort();
  free(own);
  tn_text_agg ta;
  tn_text_agg_init(&ta);
  tn_text_stats ts;
  tn_error_clear();
  fz_check(tn_text_agg_add(&ta, k > 1 ? "x" : NULL, comp, (int)len[1 < k ? 1 : 0], &ts), "tn_text_agg_add");
  if (ts.words < 0 || !(ts.ttr >= 0 && ts.ttr <= 1)) abort();
  tn_text_agg_free(&ta);
  if (k > 2) {
    const char *path = fz_write(NULL, "kw.yaml", part[2], len[2], 0);
    tn_categorizer *c = NULL;
    tn_error_clear();
    tn_status s = tn_categorizer_load(path, &c);
    fz_check(s, "tn_categorizer_load");
    if (s == TN_OK) {
      const char *cat = tn_categorize(c, comp);
      bool known = !strcmp(cat, "other");
      for (int i = 0; i < tn_categorizer_count(c); i++) known |= !strcmp(cat, tn_categorizer_name(c, i));
      if (!known) abort();
      tn_categorizer_free(c);
    }
  }
  free(verdict);
  free(comp);
  return 0;
}
