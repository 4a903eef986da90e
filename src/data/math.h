/* math.h - synthetic GSM8K-style math word problems for the SFT -> GRPO -> eval demo:
 * templates (shopping, ages, speed, sharing, savings, workers, baking; and an "easy"
 * profile for tiny models), 1-4 arithmetic steps, integer answers, step-by-step
 * solutions ending with the GSM8K "#### answer" line, written as JSONL splits.
 * Not for: loading real data sets (src/data loaders) or scoring (src/eval). */
#ifndef TN_DATA_MATH_H
#define TN_DATA_MATH_H
#include <stdint.h>
#include "base/base.h"

typedef enum {
  TN_MATH_NORMAL = 0, /* 7 templates, 1-4 steps, sentences, numbers up to a few thousand */
  TN_MATH_EASY        /* 6 templates, 1-2 steps, numbers <= 20 (answers <= 100), fixed short phrasing */
} tn_math_profile;

typedef struct {
  int64_t n;          /* total problems (train + test) */
  uint64_t seed;
  double test_frac;   /* share of problems in test.jsonl (0.1) */
  int min_steps;      /* 1 */
  int max_steps;      /* 4 (easy: at most 2) */
  tn_math_profile profile;
  int max_number;     /* easy profile: largest number in a question, 2-20 (0 = 20) */
} tn_math_config;

void tn_math_config_default(tn_math_config *c);
/* "normal" / "easy" -> profile; -1 if unknown. */
int tn_math_profile_parse(const char *s);

typedef struct {
  char question[512];
  char reasoning[1024]; /* the step lines, each with one equation "a op b = c" */
  char solution[1100];  /* reasoning + "\n#### answer" */
  long long answer;
  const char *category; /* template name (static string) */
  int steps;
} tn_math_problem;

/* Template names of a profile. */
const char *const *tn_math_templates(tn_math_profile p, int *n);

/* One problem drawn with RNG (steps uniform in [min_steps, max_steps], template uniform). */
tn_status tn_math_problem_gen(tn_rng *rng, const tn_math_config *c, tn_math_problem *p);

/* c->n problems with distinct question texts, deterministic for c->seed. The last
 * n_test = round(n * test_frac) are the test split. Caller frees *out with free(). */
tn_status tn_math_generate(const tn_math_config *c, tn_math_problem **out, int64_t *n_train, int64_t *n_test);

/* Generate and write DIR/train_sft.jsonl, DIR/train_grpo.jsonl, DIR/test.jsonl. */
tn_status tn_math_write(const tn_math_config *c, const char *dir, int64_t *n_train, int64_t *n_test);

#endif
