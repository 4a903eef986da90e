/* test_judge.c - the judge model's verdict parser (tn_judge_parse_score) on a table of
 * verdicts, each naming the form it exercises, and the template filler. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "improve/judge.h"

typedef struct { const char *form, *text; double want; } verdict; /* want NAN: unparseable */

static void test_parse_table(void **st) {
  (void)st;
  static const verdict v[] = {
    {"MT-Bench [[N]]", "The answer is fine. Rating: [[8]]", 8},
    {"'Score: N'", "Score: 7", 7},
    {"'score is N' mid-sentence, case-insensitive", "I think the SCORE is 6 because", 6},
    {"the last score keyword wins", "score: 2 ... final score: 9", 9},
    {"'rating = N/10'", "rating = 4/10", 4},
    {"N/M rescaled to the max", "Score: 3/5", 6},
    {"'N out of M'", "I'd give it 8 out of 10.", 8},
    {"<score> tag", "<score> 5 </score>", 5},
    {"<answer> tag (a model trained on the answer format)", "<reasoning>ok</reasoning><answer>9</answer>", 9},
    {"the whole text one number", "  10.\n", 10},
    {"decimal score", "Score: 7.5", 7.5},
    {"the only number in the text", "I would say 3 for this", 3},
    {"'scored N'", "This answer scored 5", 5},
    {"no number: unparseable", "looks good to me", NAN},
    {"two bare numbers: unparseable", "between 3 and 4", NAN},
    {"out of range: unparseable", "Score: 42", NAN},
    {"below range: unparseable", "Score: 0", NAN},
    {"empty: unparseable", "", NAN},
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    double got = NAN;
    bool ok = tn_judge_parse_score(v[i].text, 1, 10, &got);
    bool pass = isnan(v[i].want) ? !ok : (ok && fabs(got - v[i].want) < 1e-12);
    if (!pass) {
      print_error("[%s] '%s': got %s %g, want %g\n", v[i].form, v[i].text, ok ? "" : "(unparsed)", got, v[i].want);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
}

static void test_fill(void **st) {
  (void)st;
  char *s = tn_judge_fill("Q: {prompt} A: {completion} R: {answer} {x}", "2+2", "4", NULL);
  assert_string_equal(s, "Q: 2+2 A: 4 R:  {x}");
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_table), cmocka_unit_test(test_fill)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
