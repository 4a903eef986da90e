/* test_conventions.c - the field's answer conventions (src/eval/conventions.c) and tunic's
 * default extraction order, as a table: each case names the rule it exercises. GSM8K cases
 * follow lm-evaluation-harness's gsm8k.yaml (strict-match `#### (\-?[0-9\.\,]+)`,
 * flexible-extract `(-?[$0-9.,]{2,})|(-?[0-9]+)` last match, exact_match with
 * regexes_to_ignore "," "\$" "(?s).*#### " "\.$" and ignore_case); MATH cases follow
 * Hendrycks' last_boxed_only_string / strip_string / is_equiv. Expected values were checked
 * with Python's `re` running those patterns (tests/eval_cli/conventions_ref.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "eval/eval.h"

typedef enum { STRICT, FLEX, GMATCH, BOXED, STRIP, EQUIV, ORDER, EQUAL } kind;
typedef struct {
  const char *rule; /* the convention this case exercises */
  kind k;
  const char *a, *b; /* input (and reference for GMATCH/EQUIV/EQUAL) */
  const char *want;  /* expected output string, or "1"/"0" for a bool, or "method:out" for ORDER */
} conv_case;

static const conv_case cases[] = {
  /* GSM8K strict-match */
  {"gsm8k strict: '#### N' after the chain of thought", STRICT, "3+4=7 apples\n#### 7", NULL, "7"},
  {"gsm8k strict: the FIRST '#### ' match (regex search, take_first)", STRICT, "#### 5\n#### 6", NULL, "5"},
  {"gsm8k strict: sign, commas and decimals in the group", STRICT, "so #### -1,234.50 total", NULL, "-1,234.50"},
  {"gsm8k strict: needs exactly one space after ####", STRICT, "####7", NULL, ""},
  {"gsm8k strict: '$' is not in the group", STRICT, "#### $7", NULL, ""},
  {"gsm8k strict: no hashes, no answer", STRICT, "The answer is 7.", NULL, ""},
  {"gsm8k strict: a '#### ' without a number is skipped for a later one", STRICT, "#### x\n#### 9", NULL, "9"},
  /* GSM8K flexible-extract */
  {"gsm8k flexible: last number in the text", FLEX, "3 apples and 4 pears make 7", NULL, "7"},
  {"gsm8k flexible: '$' and commas kept by the group", FLEX, "It costs $1,200 in total", NULL, "$1,200"},
  {"gsm8k flexible: a trailing period is part of the 2+ char group", FLEX, "so she has 18.", NULL, "18."},
  {"gsm8k flexible: single-digit negative via the second alternative", FLEX, "it drops to -5", NULL, "-5"},
  {"gsm8k flexible: last match even after '####'", FLEX, "#### 12\nStep 3", NULL, "3"},
  {"gsm8k flexible: a lone '.' or ',' is no number", FLEX, "yes, no.", NULL, ""},
  {"gsm8k flexible: '..' is a (useless) match of the first alternative", FLEX, "5 then ..", NULL, ".."},
  /* GSM8K exact_match preprocessing */
  {"gsm8k exact_match: ',' and '$' ignored", GMATCH, "$1,200", "1200", "1"},
  {"gsm8k exact_match: one trailing '.' ignored", GMATCH, "18.", "18", "1"},
  {"gsm8k exact_match: the reference is cut after its last '#### '", GMATCH, "72", "48/2 = 24\n#### 72", "1"},
  {"gsm8k exact_match: strings, not numbers (18.0 != 18)", GMATCH, "18.0", "18", "0"},
  {"gsm8k exact_match: case-insensitive", GMATCH, "ABC", "abc", "1"},
  /* MATH last \boxed / \fbox */
  {"math boxed: the last \\boxed{}", BOXED, "\\boxed{1} so \\boxed{2}", NULL, "2"},
  {"math boxed: nested braces", BOXED, "is \\boxed{\\frac{1}{2}}.", NULL, "\\frac{1}{2}"},
  {"math boxed: \\fbox when there is no \\boxed", BOXED, "\\fbox{7}", NULL, "7"},
  {"math boxed: \\boxed wins over a later \\fbox (rfind \\boxed first)", BOXED, "\\boxed{3} \\fbox{4}", NULL, "3"},
  {"math boxed: '\\boxed 5' (space form) up to '$'", BOXED, "$\\boxed 5$", NULL, "5"},
  {"math boxed: unbalanced is no answer", BOXED, "\\boxed{12", NULL, ""},
  /* Hendrycks strip_string */
  {"math strip: \\dfrac -> \\frac", STRIP, "\\dfrac{3}{4}", NULL, "\\frac{3}{4}"},
  {"math strip: \\tfrac -> \\frac", STRIP, "\\tfrac{3}{4}", NULL, "\\frac{3}{4}"},
  {"math strip: \\frac12 -> \\frac{1}{2}", STRIP, "\\frac12", NULL, "\\frac{1}{2}"},
  {"math strip: \\frac1{72} -> \\frac{1}{72}", STRIP, "\\frac1{72}", NULL, "\\frac{1}{72}"},
  {"math strip: a/b -> \\frac{a}{b}", STRIP, "3/4", NULL, "\\frac{3}{4}"},
  {"math strip: a/b only for canonical integers", STRIP, "03/4", NULL, "03/4"},
  {"math strip: \\sqrt2 -> \\sqrt{2}", STRIP, "2\\sqrt2", NULL, "2\\sqrt{2}"},
  {"math strip: units after '\\text{ ' removed", STRIP, "10\\text{ cm}", NULL, "10"},
  {"math strip: spaces removed", STRIP, "x + 1", NULL, "x+1"},
  {"math strip: \\left and \\right removed", STRIP, "\\left( 1, 2 \\right)", NULL, "(1,2)"},
  {"math strip: degrees ^\\circ removed", STRIP, "90^\\circ", NULL, "90"},
  {"math strip: degrees ^{\\circ} removed", STRIP, "90^{\\circ}", NULL, "90"},
  {"math strip: percent \\% removed", STRIP, "50\\%", NULL, "50"},
  {"math strip: dollar \\$ removed", STRIP, "\\$5", NULL, "5"},
  {"math strip: leading '.' -> '0.'", STRIP, ".5", NULL, "\\frac{1}{2}"},
  {"math strip: ' .' -> ' 0.'", STRIP, "x = .25", NULL, "0.25"},
  {"math strip: short 'x = ' prefix dropped", STRIP, "x = 5", NULL, "5"},
  {"math strip: long left side kept", STRIP, "xyz = 5", NULL, "xyz=5"},
  {"math strip: 0.5 -> \\frac{1}{2}", STRIP, "0.5", NULL, "\\frac{1}{2}"},
  {"math strip: \\! removed", STRIP, "1\\!000", NULL, "1000"},
  /* is_equiv + numeric equivalence */
  {"math equiv: \\dfrac{1}{2} == 1/2", EQUIV, "\\dfrac{1}{2}", "1/2", "1"},
  {"math equiv: \\frac{3}{4} == 0.75 (numeric)", EQUIV, "\\frac{3}{4}", "0.75", "1"},
  {"math equiv: 0.5 == \\frac12", EQUIV, "0.5", "\\frac12", "1"},
  {"math equiv: 10 == 10.0 (numeric)", EQUIV, "10", "10.0", "1"},
  {"math equiv: degrees vs bare number", EQUIV, "30^\\circ", "30", "1"},
  {"math equiv: \\sqrt2 == \\sqrt{2}", EQUIV, "\\sqrt2", "\\sqrt{2}", "1"},
  {"math equiv: \\sqrt{2} != 2", EQUIV, "\\sqrt{2}", "2", "0"},
  {"math equiv: intervals with \\left/\\right", EQUIV, "\\left[1,2\\right)", "[1, 2)", "1"},
  {"math equiv: different fractions", EQUIV, "\\frac{1}{3}", "0.33", "0"},
  {"math equiv: two '\\text{ ' units: raw comparison", EQUIV, "1\\text{ a}\\text{ b}", "1", "0"},
  /* tunic's default order: tag, last \boxed, ####, "the answer is", last number */
  {"order: the answer tag first", ORDER, "\\boxed{1} <answer>2</answer>", NULL, "tag:2"},
  {"order: \\boxed before ####", ORDER, "#### 3 and \\boxed{4}", NULL, "boxed:4"},
  {"order: \\fbox counts as the boxed rule", ORDER, "so \\fbox{8} 9", NULL, "boxed:8"},
  {"order: #### before 'the answer is'", ORDER, "The answer is 5.\n#### 6", NULL, "hashes:6"},
  {"order: 'the answer is' before the last number", ORDER, "The answer is 5. Check: 2+3", NULL, "answer_is:5"},
  {"order: the last number last", ORDER, "2 and then 11", NULL, "last_number:11"},
  /* tunic's equality (default scoring): numbers, fractions, simple LaTeX */
  {"equal: 3/4 == \\frac{3}{4}", EQUAL, "3/4", "\\frac{3}{4}", "1"},
  {"equal: \\$1,200.00 == 1200", EQUAL, "\\$1,200.00", "1200", "1"},
  {"equal: '18 dollars' == 18", EQUAL, "18 dollars", "18", "1"},
  {"equal: \\sqrt{2} != 2", EQUAL, "\\sqrt{2}", "2", "0"},
  {"equal: \\dfrac{1}{2} == 0.5", EQUAL, "\\dfrac{1}{2}", "0.5", "1"},
  {"equal: 2\\sqrt2 == 2\\sqrt{2} (Hendrycks)", EQUAL, "2\\sqrt2", "2\\sqrt{2}", "1"},
  {"equal: 90^\\circ == 90", EQUAL, "90^\\circ", "90", "1"},
  {"equal: reference after ####", EQUAL, "72", "so 72\n#### 72", "1"},
};

static void test_convention_table(void **st) {
  (void)st;
  char out[256];
  int bad = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const conv_case *c = &cases[i];
    char got[300];
    switch (c->k) {
    case STRICT: tn_gsm8k_strict(c->a, out, sizeof out); snprintf(got, sizeof got, "%s", out); break;
    case FLEX: tn_gsm8k_flexible(c->a, out, sizeof out); snprintf(got, sizeof got, "%s", out); break;
    case GMATCH: snprintf(got, sizeof got, "%d", tn_gsm8k_match(c->a, c->b)); break;
    case BOXED: tn_math_last_boxed(c->a, out, sizeof out); snprintf(got, sizeof got, "%s", out); break;
    case STRIP: if (!tn_math_strip(c->a, out, sizeof out)) snprintf(out, sizeof out, "<fail>");
      snprintf(got, sizeof got, "%s", out); break;
    case EQUIV: snprintf(got, sizeof got, "%d", tn_math_equiv(c->a, c->b)); break;
    case ORDER: {
      tn_extract_method m = tn_extract_answer(c->a, NULL, out, sizeof out);
      snprintf(got, sizeof got, "%s:%s", tn_extract_method_name(m), out);
      break;
    }
    case EQUAL: snprintf(got, sizeof got, "%d", tn_answers_equal(c->a, c->b)); break;
    }
    if (strcmp(got, c->want)) {
      print_error("[%s] '%s'%s%s: got '%s', want '%s'\n", c->rule, c->a, c->b ? " vs " : "", c->b ? c->b : "", got,
                  c->want);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
}

/* The score reports both GSM8K metrics next to tunic's own. */
static void test_score_reports_gsm8k(void **st) {
  (void)st;
  tn_score s;
  tn_score_example("She pays $1,200.\n#### 1200", "#### 1200", NULL, &s);
  assert_true(s.correct && s.gsm8k_strict && s.gsm8k_flexible);
  tn_score_example("She pays 1200 dollars", "1200", NULL, &s); /* no ####: strict fails */
  assert_true(s.correct && !s.gsm8k_strict && s.gsm8k_flexible);
  tn_score_example("#### 1200.0", "1200", NULL, &s); /* numeric equal, not exact_match */
  assert_true(s.correct && !s.gsm8k_strict && !s.gsm8k_flexible);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_convention_table),
    cmocka_unit_test(test_score_reports_gsm8k),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
