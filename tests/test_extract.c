/* test_extract.c - answer extraction, number normalisation, answer equality, format
 * compliance (expected values checked against Python's `re` running the Tunix demo's
 * regex), scoring, aggregation, pass@k and the report statistics (expected values from
 * Python's math.comb / closed forms, shown in comments). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include "eval/eval.h"

typedef struct { const char *text; tn_extract_method m; const char *out; } ext_case;

static void test_extract_table(void **st) {
  (void)st;
  static const ext_case cases[] = {
    {"<reasoning>2+2</reasoning><answer>4</answer>", TN_EXTRACT_TAG, "4"},
    {"<answer> 1,234 </answer>", TN_EXTRACT_TAG, "1,234"},
    {"<answer>3</answer> wait, no: <answer>5</answer>", TN_EXTRACT_TAG, "5"},           /* duplicate tags: last */
    {"<answer>3</answer> then <answer>   </answer>", TN_EXTRACT_TAG, "3"},               /* blank last pair skipped */
    {"<answer></answer> so it is 7", TN_EXTRACT_LAST_NUMBER, "7"},                       /* empty tags */
    {"<reasoning>4*3</reasoning><answer>12", TN_EXTRACT_LAST_NUMBER, "12"},             /* missing close tag */
    {"so \\boxed{\\frac{3}{4}}.", TN_EXTRACT_BOXED, "\\frac{3}{4}"},                     /* nested braces */
    {"\\boxed{1} then \\boxed{{2}+1} end", TN_EXTRACT_BOXED, "{2}+1"},                   /* last box, nested */
    {"\\boxed{9} and \\boxed{5", TN_EXTRACT_BOXED, "9"},                                 /* last one unbalanced */
    {"\\boxed{5", TN_EXTRACT_LAST_NUMBER, "5"},
    {"We get 3 then 4. The answer is $1,200. Yay 9", TN_EXTRACT_ANSWER_IS, "$1,200"},
    {"The final answer is: -3.5\nDone 8", TN_EXTRACT_ANSWER_IS, "-3.5"},
    {"Answer: 17 apples", TN_EXTRACT_ANSWER_IS, "17 apples"},
    {"Step 5\n#### 72", TN_EXTRACT_HASHES, "72"},
    {"blah 5\n#### 1,000\nextra 3", TN_EXTRACT_HASHES, "1,000"},
    {"I have 3 apples and 4 pears, total 7.", TN_EXTRACT_LAST_NUMBER, "7"},
    {"x = -3", TN_EXTRACT_LAST_NUMBER, "-3"},
    {"5-3=2", TN_EXTRACT_LAST_NUMBER, "2"},
    {"8 - 10 gives \xE2\x88\x92" "2", TN_EXTRACT_LAST_NUMBER, "\xE2\x88\x92" "2"},
    {"it costs .75 now", TN_EXTRACT_LAST_NUMBER, ".75"},
    {"numbers 1,2,3", TN_EXTRACT_LAST_NUMBER, "3"},
    {"1,234,567 total", TN_EXTRACT_LAST_NUMBER, "1,234,567"},
    {"version v2 of x3", TN_EXTRACT_NONE, ""},
    {"she ate 3/4 of it", TN_EXTRACT_LAST_NUMBER, "3/4"},
    {"", TN_EXTRACT_NONE, ""},
    {"no numbers here", TN_EXTRACT_NONE, ""},
  };
  char out[256];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tn_extract_method m = tn_extract_answer(cases[i].text, NULL, out, sizeof out);
    if (m != cases[i].m || strcmp(out, cases[i].out)) {
      print_error("case %zu '%s': got %s '%s', want %s '%s'\n", i, cases[i].text, tn_extract_method_name(m), out,
                  tn_extract_method_name(cases[i].m), cases[i].out);
      fail();
    }
  }
  assert_int_equal(tn_extract_answer(NULL, NULL, out, sizeof out), TN_EXTRACT_NONE);
  /* configurable tags, tags_only, truncation */
  tn_extract_config c;
  tn_extract_config_default(&c);
  c.answer_open = "<SOLUTION>";
  c.answer_close = "</SOLUTION>";
  assert_int_equal(tn_extract_answer("x <SOLUTION>8</SOLUTION> 9", &c, out, sizeof out), TN_EXTRACT_TAG);
  assert_string_equal(out, "8");
  c.tags_only = true;
  assert_int_equal(tn_extract_answer("The answer is 5", &c, out, sizeof out), TN_EXTRACT_NONE);
  assert_string_equal(out, "");
  char small[4];
  assert_int_equal(tn_extract_answer("<answer>123456</answer>", NULL, small, sizeof small), TN_EXTRACT_TAG);
  assert_string_equal(small, "123");
}

typedef struct { const char *s; int ok; double v; } num_case;

static void test_parse_number(void **st) {
  (void)st;
  static const num_case cases[] = {
    {"1,234", 1, 1234}, {"$5", 1, 5}, {"-$5", 1, -5}, {"$-5", 1, -5}, {"42.0", 1, 42}, {"42.", 1, 42},
    {" 7 \n", 1, 7}, {"50%", 1, 50}, {"\\%50", 0, 0}, {"12\\%", 1, 12}, {"\xE2\x88\x92" "3", 1, -3},
    {"3/4", 1, 0.75}, {"-3/4", 1, -0.75}, {"1 1/2", 1, 1.5}, {"\\frac{1}{8}", 1, 0.125},
    {"\\dfrac{5}{2}", 1, 2.5}, {"-\\frac{1}{4}", 1, -0.25}, {"\\$12", 1, 12}, {"{8}", 1, 8}, {"+4", 1, 4},
    {".5", 1, 0.5}, {"0.125", 1, 0.125}, {"1,000,000.50", 1, 1000000.5}, {"1{,}000", 1, 1000},
    {"1,23", 0, 0}, {"12,34", 0, 0}, {"1234,567", 0, 0}, {"abc", 0, 0}, {"", 0, 0}, {"1/0", 0, 0},
    {"3-4", 0, 0}, {"inf", 0, 0}, {"nan", 0, 0}, {"0x10", 0, 0}, {"1e5", 0, 0}, {".", 0, 0}, {"-", 0, 0},
    {"1 3/2", 0, 0}, {"18 dollars", 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double v = -999;
    bool ok = tn_parse_number(cases[i].s, &v);
    if ((int)ok != cases[i].ok || (ok && fabs(v - cases[i].v) > 1e-12)) {
      print_error("case %zu '%s': got ok=%d v=%g, want ok=%d v=%g\n", i, cases[i].s, ok, v, cases[i].ok, cases[i].v);
      fail();
    }
  }
  double v;
  assert_true(tn_find_single_number("18 dollars", &v));
  assert_true(v == 18);
  assert_false(tn_find_single_number("3 apples and 4 pears", &v));
  assert_true(tn_answer_value("6 * 7 = 42", &v));
  assert_true(v == 42);
}

typedef struct { const char *a, *b; int eq; } eq_case;

static void test_answers_equal(void **st) {
  (void)st;
  static const eq_case cases[] = {
    {"3/4", "0.75", 1}, {"0.75", "3/4", 1}, {"$1,000.00", "1000", 1}, {"18 dollars", "18", 1},
    {"6*7 = 42", "42", 1}, {"-5", "5", 0}, {"41", "42", 0}, {"Paris", "paris.", 1}, {"", "0", 0},
    {"7", "Tom has 3+4 = 7 apples.\n#### 7", 1}, {"0.33", "1/3", 0}, {"1000000", "1,000,000", 1},
    {"\\boxed{5}", "5", 1}, {"42.0", "42", 1}, {"\xE2\x88\x92" "2", "-2", 1}, {"1.5", "1 1/2", 1},
    {"3 apples and 4", "4", 0}, {"New  York", "new york", 1}, {"50%", "50", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bool eq = tn_answers_equal(cases[i].a, cases[i].b);
    if ((int)eq != cases[i].eq) {
      print_error("case %zu '%s' vs '%s': got %d\n", i, cases[i].a, cases[i].b, eq);
      fail();
    }
  }
  assert_false(tn_answers_equal(NULL, "1"));
  assert_false(tn_answers_equal("1", NULL));
}

/* Expected values from Python:
 *   re.compile(rf"^[\s]{{0,}}{R}.+?{Rc}.*?{A}(.+?){Ac}[\s]{{0,}}$", re.MULTILINE | re.DOTALL).search(c) */
static void test_format_ok(void **st) {
  (void)st;
  static const struct { const char *s; int ok, strict; } cases[] = {
    {"<reasoning>r</reasoning><answer>4</answer>", 1, 1},
    {"  \n<reasoning>r</reasoning>\n<answer>4</answer>\n  ", 1, 1},
    {"<reasoning></reasoning><answer>4</answer>", 0, 0},
    {"<answer>4</answer>", 0, 0},
    {"text <reasoning>r</reasoning><answer>4</answer>", 0, 0},
    {"text\n<reasoning>r</reasoning><answer>4</answer>", 1, 0},
    {"<reasoning>r</reasoning><answer>4</answer> trailing", 0, 0},
    {"<answer>4</answer><reasoning>r</reasoning>", 0, 0},
    {"<reasoning>a\nb</reasoning>\nso\n<answer>1\n2</answer>", 1, 1},
    {"<reasoning>r</reasoning><answer></answer>", 0, 0},
    {"<reasoning>r</reasoning><answer>4</answer>\nmore text", 1, 0},
    {"", 0, 0},
    {"<reasoning>x</reasoning><answer>1</answer><answer>2</answer>", 1, 1},
  };
  tn_extract_config strict;
  tn_extract_config_default(&strict);
  strict.format_strict = true;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if ((int)tn_format_ok(cases[i].s, NULL) != cases[i].ok || (int)tn_format_ok(cases[i].s, &strict) != cases[i].strict) {
      print_error("case %zu '%s'\n", i, cases[i].s);
      fail();
    }
  }
  tn_extract_config c;
  tn_extract_config_default(&c);
  c.reasoning_open = "<start_working_out>";
  c.reasoning_close = "<end_working_out>";
  c.answer_open = "<SOLUTION>";
  c.answer_close = "</SOLUTION>";
  assert_true(tn_format_ok("<start_working_out>x<end_working_out><SOLUTION>2</SOLUTION>", &c));
  assert_false(tn_format_ok("<reasoning>r</reasoning><answer>4</answer>", &c));
  c.reasoning_open = "(.*)"; /* regex metacharacters in tags are literal */
  c.reasoning_close = "[x]";
  assert_true(tn_format_ok("(.*)a[x]<SOLUTION>2</SOLUTION>", &c));
  assert_false(tn_format_ok("zzaxx<SOLUTION>2</SOLUTION>", &c));
}

static void test_score(void **st) {
  (void)st;
  tn_score s;
  tn_score_example("<reasoning>50+50</reasoning>\n<answer>100</answer>", "100", NULL, &s);
  assert_true(s.correct && s.partial && s.format_ok);
  assert_int_equal(s.error, TN_ECAT_CORRECT);
  assert_true(s.credit == 1.0);
  tn_score_example("<reasoning>r</reasoning><answer>95</answer>", "100", NULL, &s); /* 5% off */
  assert_true(!s.correct && s.partial && s.credit == 0.5 && s.error == TN_ECAT_WRONG_NUMBER);
  tn_score_example("The answer is 85", "100", NULL, &s); /* 15% off */
  assert_true(!s.correct && !s.partial && s.credit == 0.25 && !s.format_ok && s.method == TN_EXTRACT_ANSWER_IS);
  tn_score_example("The answer is 110", "100", NULL, &s); /* exactly 10% */
  assert_true(s.partial && s.credit == 0.5);
  tn_score_example("<answer>50</answer>", "100", NULL, &s);
  assert_true(s.credit == 0 && s.error == TN_ECAT_WRONG_NUMBER);
  tn_score_example("<reasoning>r</reasoning><answer>many</answer>", "100", NULL, &s);
  assert_int_equal(s.error, TN_ECAT_INVALID_FORMAT);
  assert_true(s.format_ok && !s.has_value);
  tn_score_example("I do not know", "100", NULL, &s);
  assert_int_equal(s.error, TN_ECAT_NO_ANSWER);
  assert_int_equal(s.method, TN_EXTRACT_NONE);
  tn_score_example("", "100", NULL, &s);
  assert_int_equal(s.error, TN_ECAT_NO_ANSWER);
  tn_score_example("<answer>1</answer>", "0", NULL, &s); /* zero reference: only equality counts */
  assert_true(!s.partial && s.credit == 0);
  tn_score_example("<answer>-7</answer>", "-7.0", NULL, &s);
  assert_true(s.correct);
  /* closeness credit on negatives */
  assert_true(tn_closeness_credit(-95, -100) == 0.5);
  assert_true(tn_closeness_credit(95, -100) == 0);
  assert_true(tn_closeness_credit(NAN, 1) == 0);
  cJSON *o = cJSON_CreateObject();
  assert_int_equal(tn_score_to_json(&s, o), TN_OK);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "correct")));
  assert_string_equal(cJSON_GetObjectItem(o, "error")->valuestring, "correct");
  cJSON_Delete(o);
}

static void test_pass_at_k_and_agg(void **st) {
  (void)st;
  /* python: 1 - comb(17,5)/comb(20,5) = 0.6008771929824561; 1 - comb(3,2)/comb(5,2) = 0.7 */
  assert_true(fabs(tn_pass_at_k(20, 3, 5) - 0.6008771929824561) < 1e-12);
  assert_true(fabs(tn_pass_at_k(5, 2, 2) - 0.7) < 1e-12);
  assert_true(fabs(tn_pass_at_k(5, 2, 1) - 0.4) < 1e-12);
  assert_true(tn_pass_at_k(10, 0, 3) == 0.0);
  assert_true(tn_pass_at_k(3, 2, 2) == 1.0);
  assert_true(isnan(tn_pass_at_k(2, 1, 3)));

  tn_eval_agg a;
  tn_eval_agg_init(&a);
  tn_score s[4];
  /* example 1 (cat A): 4 samples, 1 correct; example 2 (cat B): 4 samples, 4 correct; example 3 (A): none */
  tn_score_example("<answer>5</answer>", "5", NULL, &s[0]);
  tn_score_example("<answer>6</answer>", "5", NULL, &s[1]);
  tn_score_example("nothing", "5", NULL, &s[2]);
  tn_score_example("<answer>x</answer>", "5", NULL, &s[3]);
  assert_int_equal(tn_eval_agg_add(&a, "A", s, 4), TN_OK);
  tn_score ok[4];
  for (int i = 0; i < 4; i++) tn_score_example("<reasoning>r</reasoning><answer>2</answer>", "2", NULL, &ok[i]);
  assert_int_equal(tn_eval_agg_add(&a, "B", ok, 4), TN_OK);
  assert_int_equal(tn_eval_agg_add(&a, "A", &s[1], 1), TN_OK);
  assert_int_equal(a.all.n, 9);
  assert_int_equal(a.all.correct, 5);
  assert_int_equal(a.all.format_ok, 4);
  assert_int_equal(a.all.errors[TN_ECAT_NO_ANSWER], 1);
  assert_int_equal(a.all.errors[TN_ECAT_WRONG_NUMBER], 2);
  assert_int_equal(a.all.errors[TN_ECAT_INVALID_FORMAT], 1);
  assert_int_equal(a.ncats, 2);
  assert_string_equal(a.cats[0].name, "A");
  assert_int_equal(a.cats[0].n, 5);
  assert_int_equal(a.cats[0].correct, 1);
  /* pass@1 over 3 examples: (1/4 + 1 + 0)/3; pass@2 over the 2 examples with >= 2 samples:
   * (1 - comb(3,2)/comb(4,2) + 1)/2 = (0.5 + 1)/2 */
  assert_true(fabs(tn_eval_agg_pass_at_k(&a, 1) - (0.25 + 1.0) / 3) < 1e-12);
  assert_true(fabs(tn_eval_agg_pass_at_k(&a, 2) - 0.75) < 1e-12);
  assert_true(isnan(tn_eval_agg_pass_at_k(&a, 5)));
  int ks[2] = {1, 5};
  cJSON *j = tn_eval_agg_to_json(&a, ks, 2);
  assert_true(fabs(cJSON_GetObjectItem(j, "accuracy")->valuedouble - 5.0 / 9) < 1e-12);
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pass_at_k"), "5")));
  assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "categories"), "B"));
  cJSON_Delete(j);
  FILE *devnull = fopen("/dev/null", "w");
  tn_eval_agg_print(&a, devnull);
  fclose(devnull);
  tn_eval_agg_free(&a);
}

static void test_stats(void **st) {
  (void)st;
  /* python: n=b+c; min(1, 2*sum(comb(n,i) for i in range(min(b,c)+1))/2**n) */
  assert_true(fabs(tn_mcnemar_exact_p(3, 11) - 0.057373046875) < 1e-12);
  assert_true(fabs(tn_mcnemar_exact_p(11, 3) - 0.057373046875) < 1e-12);
  assert_true(fabs(tn_mcnemar_exact_p(0, 5) - 0.0625) < 1e-12);
  assert_true(tn_mcnemar_exact_p(10, 10) == 1.0);
  assert_true(fabs(tn_mcnemar_exact_p(40, 60) - 0.05688793364098079) < 1e-10);
  assert_true(tn_mcnemar_exact_p(0, 0) == 1.0);
  /* Wilson, z = 1.959963984540054: closed form evaluated in Python */
  double lo, hi;
  tn_wilson_interval(45, 50, 1.959963984540054, &lo, &hi);
  assert_true(fabs(lo - 0.7863976856252035) < 1e-12 && fabs(hi - 0.9565242350681096) < 1e-12);
  tn_wilson_interval(7, 20, 1.959963984540054, &lo, &hi);
  assert_true(fabs(lo - 0.18119182410108206) < 1e-12 && fabs(hi - 0.5671457233147638) < 1e-12);
  tn_wilson_interval(0, 10, 1.959963984540054, &lo, &hi);
  assert_true(lo == 0 && fabs(hi - 0.2775327998628892) < 1e-12);
  /* Paired bootstrap: identical arrays give [0, 0]; otherwise the interval contains the
   * observed delta and its width matches the normal approximation 2*1.96*sd(d)/sqrt(n)
   * within 15% (n = 400, 4000 resamples). */
  enum { N = 400 };
  uint8_t b[N], a[N];
  for (int i = 0; i < N; i++) { b[i] = (i % 2) == 0; a[i] = (i % 5) != 0; }
  tn_paired_bootstrap(b, b, N, 500, 7, 0.95, &lo, &hi);
  assert_true(lo == 0 && hi == 0);
  tn_paired_bootstrap(b, a, N, 4000, 7, 0.95, &lo, &hi);
  double mean = 0, var = 0;
  for (int i = 0; i < N; i++) mean += (double)a[i] - b[i];
  mean /= N;
  for (int i = 0; i < N; i++) var += ((double)a[i] - b[i] - mean) * ((double)a[i] - b[i] - mean);
  var /= N;
  double width = 2 * 1.959963984540054 * sqrt(var / N);
  assert_true(lo < mean && mean < hi);
  assert_true(fabs((hi - lo) - width) < 0.15 * width);
  double lo2, hi2;
  tn_paired_bootstrap(b, a, N, 4000, 7, 0.95, &lo2, &hi2);
  assert_true(lo == lo2 && hi == hi2); /* deterministic for a seed */
}

static char *write_tmp(const char *name, const char *text) {
  char *path = malloc(256);
  snprintf(path, 256, "/tmp/tn_test_extract_%d_%s", (int)getpid(), name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

static void test_report_compare(void **st) {
  (void)st;
  /* 6 before, 6 after (ids 1..5 shared + one unpaired each side). Flips by hand:
   * id1 wrong->right (A), id2 right->right (A), id3 right->wrong (B), id4 wrong->right (B),
   * id5 wrong->wrong (B). */
  const char *before =
      "{\"id\":1,\"category\":\"A\",\"correct\":false,\"format_ok\":false,\"error\":\"no_answer\",\"expected_answer\":\"4\"}\n"
      "{\"id\":\"2\",\"category\":\"A\",\"correct\":true,\"format_ok\":true,\"error\":\"correct\"}\n"
      "\n"
      "{\"id\":3,\"category\":\"B\",\"correct\":1,\"format_ok\":true,\"extracted\":\"9\"}\n"
      "{\"id\":4,\"category\":\"B\",\"correct\":false,\"error\":\"wrong_number\",\"extracted\":\"7\"}\n"
      "{\"id\":5,\"category\":\"B\",\"correct\":false,\"error\":\"wrong_number\"}\n"
      "{\"id\":6,\"category\":\"B\",\"correct\":true}\n";
  const char *after =
      "{\"id\":5,\"category\":\"B\",\"correct\":false,\"error\":\"invalid_format\"}\n"
      "{\"id\":4,\"category\":\"B\",\"correct\":true,\"format_ok\":true,\"extracted\":\"8\"}\n"
      "{\"id\":3,\"category\":\"B\",\"correct\":false,\"format_ok\":true,\"error\":\"wrong_number\",\"extracted\":\"10\"}\n"
      "{\"id\":2,\"category\":\"A\",\"correct\":true,\"format_ok\":true}\n"
      "{\"id\":\"1\",\"category\":\"A\",\"correct\":true,\"format_ok\":true,\"partial\":true}\n"
      "{\"id\":7,\"category\":\"A\",\"correct\":true}\n";
  char *pb = write_tmp("before.jsonl", before), *pa = write_tmp("after.jsonl", after);
  tn_results rb, ra;
  assert_int_equal(tn_results_load(pb, &rb), TN_OK);
  assert_int_equal(tn_results_load(pa, &ra), TN_OK);
  assert_int_equal(rb.n, 6);
  tn_report r;
  assert_int_equal(tn_report_compare(&rb, &ra, &r), TN_OK);
  assert_int_equal(r.n_paired, 5);
  assert_int_equal(r.only_before, 1);
  assert_int_equal(r.only_after, 1);
  assert_int_equal(r.correct_before, 2);
  assert_int_equal(r.correct_after, 3);
  assert_true(fabs(r.delta - 0.2) < 1e-12);
  assert_int_equal(r.b, 1);
  assert_int_equal(r.c, 2);
  assert_true(fabs(r.mcnemar_p - 1.0) < 1e-12); /* 2*(1+3)/8 = 1 */
  assert_int_equal(r.ncats, 2);
  assert_string_equal(r.cats[0].name, "A");
  assert_true(fabs(r.cats[0].delta - 0.5) < 1e-12);  /* A: 1/2 -> 2/2 */
  assert_true(fabs(r.cats[1].delta - 0.0) < 1e-12);  /* B: 1/3 -> 1/3 */
  assert_string_equal(rb.recs[r.improved[0]].id, "1");
  assert_string_equal(rb.recs[r.improved[1]].id, "4");
  assert_string_equal(rb.recs[r.regressed[0]].id, "3");
  assert_int_equal(r.errors_before[TN_ECAT_WRONG_NUMBER], 2);
  assert_int_equal(r.errors_after[TN_ECAT_INVALID_FORMAT], 1);
  assert_int_equal(r.errors_after[TN_ECAT_CORRECT], 3); /* correct records without "error" count as correct */
  assert_true(fabs(r.format_after - 0.8) < 1e-12);
  assert_true(r.boot_delta[0] <= r.delta && r.delta <= r.boot_delta[1]);
  char *md = NULL;
  size_t mdlen = 0;
  FILE *f = open_memstream(&md, &mdlen);
  tn_report_write_markdown(&r, &rb, &ra, 10, f);
  fclose(f);
  assert_non_null(strstr(md, "| A | 2 | 50.00% | 100.00% | +50.00 pp |"));
  assert_non_null(strstr(md, "Wrong -> right (2)"));
  assert_non_null(strstr(md, "| 4 | B | - | 7 | 8 |"));
  free(md);
  tn_report_free(&r);
  tn_results_free(&rb);
  tn_results_free(&ra);
  /* errors: a bad line names file and line; duplicate ids refused */
  char *bad = write_tmp("bad.jsonl", "{\"id\":1,\"correct\":true}\n{\"id\":2}\n");
  assert_int_equal(tn_results_load(bad, &rb), TN_ERR_FORMAT);
  assert_non_null(strstr(tn_last_error(), ":2:"));
  char *dup = write_tmp("dup.jsonl", "{\"id\":1,\"correct\":true}\n{\"id\":\"1\",\"correct\":false}\n");
  assert_int_equal(tn_results_load(dup, &rb), TN_ERR_FORMAT);
  assert_non_null(strstr(tn_last_error(), "duplicate id"));
  unlink(pb); unlink(pa); unlink(bad); unlink(dup);
  free(pb); free(pa); free(bad); free(dup);
}

/* Independent reference: Python's re (the Tunix demo's regex, MULTILINE|DOTALL) on 3000
 * random strings built from tags, whitespace and text; math.comb for pass@k on a grid and
 * for the exact McNemar p-value. Skipped when /usr/bin/python3 is missing. */
static void test_python_reference(void **st) {
  (void)st;
  if (access("/usr/bin/python3", X_OK)) { print_message("no /usr/bin/python3: skipped\n"); skip(); }
  static const char *tok[] = {"<reasoning>", "</reasoning>", "<answer>", "</answer>", "\n", " ", "x", "42", "\t", "\n\n"};
  enum { NF = 3000 };
  char path[128], outp[128], pyp[128];
  snprintf(path, sizeof path, "/tmp/tn_test_pyref_%d.jsonl", (int)getpid());
  snprintf(outp, sizeof outp, "/tmp/tn_test_pyref_%d.out", (int)getpid());
  snprintf(pyp, sizeof pyp, "/tmp/tn_test_pyref_%d.py", (int)getpid());
  FILE *f = fopen(path, "w");
  tn_rng rng;
  tn_rng_seed(&rng, 42);
  static char strs[NF][256];
  for (int i = 0; i < NF; i++) {
    strs[i][0] = 0;
    int len = 1 + (int)(tn_rng_u64(&rng) % 9);
    if (i % 3 == 0) { /* bias toward near-valid completions */
      snprintf(strs[i], sizeof strs[i], "%s<reasoning>x</reasoning>%s<answer>4</answer>%s",
               tok[4 + tn_rng_u64(&rng) % 6], tok[4 + tn_rng_u64(&rng) % 6], tok[4 + tn_rng_u64(&rng) % 6]);
      len = (int)(tn_rng_u64(&rng) % 3);
    }
    for (int k = 0; k < len; k++) {
      size_t at = tn_rng_u64(&rng) % 2 ? strlen(strs[i]) : 0;
      char tmp[256];
      snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)at, strs[i], tok[tn_rng_u64(&rng) % 10], strs[i] + at);
      memcpy(strs[i], tmp, sizeof tmp);
    }
    cJSON *s = cJSON_CreateString(strs[i]);
    char *js = cJSON_PrintUnformatted(s);
    fprintf(f, "%s\n", js);
    cJSON_free(js);
    cJSON_Delete(s);
  }
  fclose(f);
  FILE *py = fopen(pyp, "w");
  fprintf(py,
          "import json, math, re, sys\n"
          "mf = re.compile(r'^[\\s]{0,}<reasoning>.+?</reasoning>.*?<answer>(.+?)</answer>[\\s]{0,}$', re.MULTILINE | re.DOTALL)\n"
          "out = open(sys.argv[2], 'w')\n"
          "for line in open(sys.argv[1]):\n"
          "    out.write('%%d\\n' %% (mf.search(json.loads(line)) is not None))\n"
          "for n in range(1, 13):\n"
          "    for c in range(0, n + 1):\n"
          "        for k in range(1, n + 1):\n"
          "            out.write('%%.17g\\n' %% (1 - math.comb(n - c, k) / math.comb(n, k)))\n"
          "for b in range(0, 31, 3):\n"
          "    for c in range(0, 31, 2):\n"
          "        m = b + c\n"
          "        p = 1.0 if m == 0 else min(1.0, 2 * sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2 ** m)\n"
          "        out.write('%%.17g\\n' %% p)\n");
  fclose(py);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s", pyp, path, outp);
  assert_int_equal(system(cmd), 0);
  FILE *o = fopen(outp, "r");
  assert_non_null(o);
  int mism = 0, nvalid = 0;
  for (int i = 0; i < NF; i++) {
    int want;
    assert_int_equal(fscanf(o, "%d", &want), 1);
    nvalid += want;
    if ((int)tn_format_ok(strs[i], NULL) != want) {
      if (mism++ < 5) print_error("format mismatch (python %d) on '%s'\n", want, strs[i]);
    }
  }
  assert_int_equal(mism, 0);
  assert_true(nvalid > NF / 10 && nvalid < NF * 9 / 10); /* both outcomes well represented */
  for (int n = 1; n <= 12; n++)
    for (int c = 0; c <= n; c++)
      for (int k = 1; k <= n; k++) {
        double want;
        assert_int_equal(fscanf(o, "%lf", &want), 1);
        if (fabs(tn_pass_at_k(n, c, k) - want) > 1e-12) { print_error("pass@%d n=%d c=%d\n", k, n, c); fail(); }
      }
  for (int b = 0; b <= 30; b += 3)
    for (int c = 0; c <= 30; c += 2) {
      double want;
      assert_int_equal(fscanf(o, "%lf", &want), 1);
      if (fabs(tn_mcnemar_exact_p(b, c) - want) > 1e-10) { print_error("mcnemar b=%d c=%d\n", b, c); fail(); }
    }
  fclose(o);
  unlink(path); unlink(outp); unlink(pyp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_extract_table),
    cmocka_unit_test(test_parse_number),
    cmocka_unit_test(test_answers_equal),
    cmocka_unit_test(test_format_ok),
    cmocka_unit_test(test_score),
    cmocka_unit_test(test_pass_at_k_and_agg),
    cmocka_unit_test(test_stats),
    cmocka_unit_test(test_report_compare),
    cmocka_unit_test(test_python_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
