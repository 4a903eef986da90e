/* eval.h - answer extraction, answer comparison, per-example scoring, aggregation
 * (accuracy, partial accuracy, format rate, per-category and per-error breakdown,
 * pass@k) and the statistics of `tunic report` (paired comparison of two results files).
 * Model-independent: everything here works on strings; the generation loop of
 * `tunic eval` and the Markdown/PNG output of `tunic report` live elsewhere.
 * Formulas and the extraction order are documented in docs/eval.md. */
#ifndef TN_EVAL_H
#define TN_EVAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "base/base.h"
#include "tunic/eval.h"

struct cJSON;

/* ---------------- extraction ---------------- */

/* tn_extract_config, tn_extract_method and their functions: the public API (tunic/eval.h) */

/* Parse an answer string as one number: surrounding whitespace, '$' / '\$', trailing
 * '%' / '\%' / '.', thousands commas, unicode minus (U+2212), leading '+', decimals,
 * fractions "3/4", mixed numbers "1 1/2", \frac{a}{b} (\dfrac, \tfrac), one pair of
 * surrounding braces. The whole string must be the number. */
bool tn_parse_number(const char *s, double *out);

/* The single number contained in S when S is not itself a number but contains exactly
 * one number token ("18 dollars" -> 18); false otherwise. */
bool tn_find_single_number(const char *s, double *out);

/* Number an extracted answer stands for: tn_parse_number, else tn_find_single_number. */
bool tn_answer_value(const char *s, double *out);

/* Numbers equal within relative 1e-6 (absolute 1e-9 near zero). */
bool tn_numbers_equal(double a, double b);

/* the field's conventions (tn_gsm8k_strict, tn_math_equiv, ...): the public API (tunic/eval.h) */

/* Format compliance: <reasoning>.+?</reasoning>.*?<answer>(.+?)</answer> with optional
 * surrounding whitespace, the Tunix GRPO demo's regex (see docs/eval.md). Thread-safe. */
bool tn_format_ok(const char *completion, const tn_extract_config *cfg);

/* ---------------- scoring ---------------- */

typedef enum {
  TN_ECAT_CORRECT = 0,
  TN_ECAT_NO_ANSWER,      /* nothing extracted */
  TN_ECAT_WRONG_NUMBER,   /* an answer (a number, or text vs a text reference) that differs */
  TN_ECAT_INVALID_FORMAT, /* something extracted that is not a number, reference is one */
  TN_ECAT_COUNT
} tn_error_cat;

const char *tn_error_cat_name(tn_error_cat c); /* "correct","no_answer","wrong_number","invalid_format" */
/* Inverse of tn_error_cat_name; -1 when unknown. */
int tn_error_cat_parse(const char *name);

typedef struct {
  bool correct;
  bool partial;      /* |x - ref| <= partial_tol * |ref| (includes correct) */
  double credit;     /* 1 correct, 0.5 within 10%, 0.25 within 20%, else 0 */
  bool format_ok;
  bool has_value;    /* the extracted answer has a numeric value */
  double value;
  tn_extract_method method;
  tn_error_cat error;
  bool gsm8k_strict;   /* lm-evaluation-harness gsm8k strict-match against the reference */
  bool gsm8k_flexible; /* ... and flexible-extract */
  char extracted[128];
} tn_score;

/* Closeness credit of X against REF: 1 if equal, 0.5 if |x-ref| <= 0.1|ref|,
 * 0.25 if <= 0.2|ref|, else 0 (REF == 0: only equality counts). */
double tn_closeness_credit(double x, double ref);

void tn_score_example(const char *completion, const char *reference,
                      const tn_extract_config *cfg, tn_score *out);

/* Add the score's fields to a JSON object (per-example results line):
 * extracted, method, correct, partial, credit, format_ok, error. */
tn_status tn_score_to_json(const tn_score *s, struct cJSON *obj);

/* ---------------- aggregation ---------------- */

/* Unbiased pass@k for one example with N samples of which C are correct:
 * 1 - C(n-c, k) / C(n, k), computed as a stable product. K > N returns NAN. */
double tn_pass_at_k(int n, int c, int k);

typedef struct {
  char name[64];
  int64_t n, correct, partial, format_ok;
  double credit;
  int64_t gsm8k_strict, gsm8k_flexible;
  int64_t errors[TN_ECAT_COUNT];
} tn_eval_bucket;

typedef struct {
  tn_eval_bucket all;
  tn_eval_bucket *cats; /* per category, in order of first appearance */
  int ncats, cap_cats;
  int *ex_n, *ex_c;     /* per example: samples and correct samples (pass@k) */
  int64_t nex, cap_ex;
} tn_eval_agg;

void tn_eval_agg_init(tn_eval_agg *a);
void tn_eval_agg_free(tn_eval_agg *a);
/* One example with NS sampled completions' scores (NS = 1 for greedy). CATEGORY may be
 * NULL ("" bucket not created). Every sample counts in accuracy (= mean pass@1). */
tn_status tn_eval_agg_add(tn_eval_agg *a, const char *category, const tn_score *scores, int ns);
/* Mean pass@k over examples that have at least k samples (NAN if none). */
double tn_eval_agg_pass_at_k(const tn_eval_agg *a, int k);
/* Print a summary table (overall, per category, per error) to F. */
void tn_eval_agg_print(const tn_eval_agg *a, FILE *f);
/* Summary as JSON (caller deletes): {"n","accuracy","partial_accuracy","format_rate",
 * "mean_credit","errors":{...},"categories":{name:{...}},"pass_at_k":{"1":..}}. */
struct cJSON *tn_eval_agg_to_json(const tn_eval_agg *a, const int *ks, int nks);

/* ---------------- reference-free text metrics and categories (textmetrics.c) ---------------- */

typedef struct { uint64_t *v; size_t n, cap; } tn_hashset;

typedef struct {
  char name[64];
  int64_t n, refusals;
  double words, tokens, ttr;    /* sums over completions */
  tn_hashset uni, bi;           /* distinct word 1-/2-grams of the bucket (hashed) */
  int64_t uni_total, bi_total;
} tn_text_bucket;

typedef struct {
  tn_text_bucket all;
  tn_text_bucket *cats;
  int ncats, cap;
} tn_text_agg;

typedef struct { int words; double ttr; bool refusal; } tn_text_stats;

/* A refusal phrase ("I'm sorry", "I cannot", "as an AI", ...; case-insensitive) in S. */
bool tn_is_refusal(const char *s);
void tn_text_agg_init(tn_text_agg *a);
void tn_text_agg_free(tn_text_agg *a);
/* Add one completion (TOKENS: its token count, 0 when unknown) to "all" and to CATEGORY's
 * bucket (NULL: none); ST (may be NULL) gets this completion's own numbers. */
tn_status tn_text_agg_add(tn_text_agg *a, const char *category, const char *completion, int tokens, tn_text_stats *st);
/* {"n","mean_words","mean_tokens"?,"distinct_1","distinct_2","type_token_ratio","refusal_rate","categories":{...}} */
struct cJSON *tn_text_agg_to_json(const tn_text_agg *a, bool tokens);
void tn_text_agg_print(const tn_text_agg *a, bool tokens, FILE *f);

/* Keyword rules (`--categorize keywords.yaml`): a mapping category -> list of keywords; a
 * prompt gets the first category (file order) with a keyword in it (case-insensitive), else
 * "other". Errors name the file and line. */
typedef struct tn_categorizer tn_categorizer;
tn_status tn_categorizer_load(const char *path, tn_categorizer **out);
const char *tn_categorize(const tn_categorizer *c, const char *prompt);
int tn_categorizer_count(const tn_categorizer *c);
const char *tn_categorizer_name(const tn_categorizer *c, int i);
void tn_categorizer_free(tn_categorizer *c);

/* ---------------- report statistics (report_stats.c) ---------------- */

typedef struct {
  char *id;
  char *category;   /* "" when absent */
  bool correct;
  bool partial;
  bool format_ok;
  int error;        /* tn_error_cat, -1 when absent */
  char *extracted;  /* may be NULL */
  char *expected;   /* may be NULL */
} tn_result_rec;

typedef struct {
  tn_result_rec *recs;
  int64_t n;
  char *path;
} tn_results;

/* Load a per-example results JSONL (fields: id (string or number), correct (bool or
 * number), optional category, partial, format_ok, error, extracted, expected_answer).
 * Errors name the file and line. Duplicate ids are an error. */
tn_status tn_results_load(const char *path, tn_results *out);
void tn_results_free(tn_results *r);

/* Wilson score interval for K successes out of N at normal quantile Z (1.96 -> 95%). */
void tn_wilson_interval(int64_t k, int64_t n, double z, double *lo, double *hi);
/* Two-sided exact McNemar test on discordant pairs B (before right, after wrong) and
 * C (before wrong, after right): min(1, 2 * sum_{i<=min(b,c)} C(b+c, i) / 2^(b+c)).
 * Returns 1 when b + c == 0. */
double tn_mcnemar_exact_p(int64_t b, int64_t c);
/* Paired bootstrap percentile interval of mean(after) - mean(before) over N pairs
 * (0/1 arrays), R resamples with tn_rng seeded by SEED; LEVEL e.g. 0.95. */
void tn_paired_bootstrap(const uint8_t *before, const uint8_t *after, int64_t n, int reps,
                         uint64_t seed, double level, double *lo, double *hi);

typedef struct {
  char name[64];
  int64_t n;
  int64_t correct_before, correct_after;
  double acc_before, acc_after, delta;
} tn_report_cat;

typedef struct {
  int64_t n_paired;          /* ids present in both files */
  int64_t only_before, only_after;
  int64_t correct_before, correct_after;
  double acc_before, acc_after, delta;
  double wilson_before[2], wilson_after[2];
  double boot_delta[2];      /* 95% paired bootstrap interval of the delta */
  int64_t b;                 /* right -> wrong (regressions) */
  int64_t c;                 /* wrong -> right (improvements) */
  double mcnemar_p;
  double format_before, format_after, partial_before, partial_after;
  int64_t errors_before[TN_ECAT_COUNT], errors_after[TN_ECAT_COUNT];
  tn_report_cat *cats;       /* per category of the before file, order of appearance */
  int ncats;
  int64_t *improved;         /* indices into before->recs of wrong -> right */
  int64_t *regressed;        /* indices into before->recs of right -> wrong */
} tn_report;

/* Pair the two files by id and compute every number of the delta report. */
tn_status tn_report_compare(const tn_results *before, const tn_results *after, tn_report *out);
void tn_report_free(tn_report *r);
/* The delta report's tables and flipped examples as Markdown (at most MAX_FLIPS of each). */
void tn_report_write_markdown(const tn_report *r, const tn_results *before, const tn_results *after,
                              int max_flips, FILE *f);

#endif
