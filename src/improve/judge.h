/* judge.h - judges for (prompt, completion) pairs: the reward library (the weighted reward
 * spec GRPO uses, rubric YAML, --reward-cmd; tunic/rl.h, called, not copied) or a local model
 * as judge (a prompt template, greedy generation, a robust score parser that counts what it
 * could not read). Each judged row gets a "judge" object saying who/what judged it.
 * Not for: the human judge's terminal interface (src/cli/cmd_judge.c) or the loop (improve.h). */
#ifndef TN_JUDGE_H
#define TN_JUDGE_H
#include <stdbool.h>
#include "base/base.h"
#include "tunic/rl.h"

struct cJSON;

/* The default judge prompt: {prompt}, {completion}, {answer} are replaced (docs/improve.md). */
extern const char *const TN_JUDGE_DEFAULT_TEMPLATE;

typedef struct {
  const char *spec;           /* reward library spec ("answer:1,format_exact:0.5"; also "steps", see
                                 tn_judge_steps_score); NULL when a model judges */
  tn_reward_config reward;    /* rubric, reward_cmd, tags ... */
  const char *model;          /* judge model directory (model judge) */
  const char *adapter;        /* its LoRA adapter (NULL: none) */
  const char *template_text;  /* judge prompt template (NULL: TN_JUDGE_DEFAULT_TEMPLATE) */
  int max_new_tokens;         /* judge's answer length (48) */
  double score_min, score_max;/* a parsed score outside [min, max] is unparseable (1, 10) */
  bool no_chat;               /* plain template text even when the tokenizer has a chat template */
  int batch_size;             /* judge prompts per generation call (8) */
} tn_judge_opts;

void tn_judge_opts_default(tn_judge_opts *o);

typedef struct tn_judge tn_judge;
tn_status tn_judge_open(tn_judge **out, const tn_judge_opts *o);
void tn_judge_close(tn_judge *j);

/* Score N rows (examples[i]: the row's JSON with reference fields, may be NULL). scores[i]
 * gets the score (NAN when the model's verdict could not be parsed); when MARK is not NULL,
 * each examples[i]-matching out object in MARK[i] receives "score" and "judge" (and the
 * judge model's raw verdict). Counts unparseable verdicts in *n_unparsed (may be NULL). */
tn_status tn_judge_score(tn_judge *j, int n, const char *const *prompts, const char *const *completions,
                         const struct cJSON *const *examples, double *scores, struct cJSON *const *mark,
                         int *n_unparsed);

/* Ask the judge model TEXT (one user turn, greedy): its answer (caller frees). */
tn_status tn_judge_ask(tn_judge *j, const char *text, char **answer);

/* A model names a prompt's category (`tunic eval --classifier MODEL[:ADAPTER]`): asked which of
 * CATEGORIES (comma-separated; default math,code,creative,other) fits the prompt, the first
 * category name (case-insensitive) in its answer; "other" when none. */
typedef struct tn_classifier tn_classifier;
tn_status tn_classifier_open(tn_classifier **out, const char *model_adapter, const char *categories);
/* The category (a string owned by the classifier); "other" on any failure (counted). */
const char *tn_classify(void *classifier, const char *prompt);
int tn_classifier_failures(const tn_classifier *c);
void tn_classifier_close(tn_classifier *c);

/* Read a score from a judge's free text: "[[7]]", "Score: 7", "rating = 7/10" (scaled to
 * max when the denominator differs), "<score>7</score>", "<answer>7</answer>", "7 out of 10",
 * a text that is one number, else the only number in the text. False when none is found or
 * it lies outside [min, max]. */
bool tn_judge_parse_score(const char *text, double min, double max, double *out);

/* The "steps" judge term (usable in a spec next to the reward library's names, added to it as
 * a callback): 1 when the reasoning (between OPEN and CLOSE, the whole text without them)
 * holds at least one equation "a op b [op c ...] = r" (+ - * / x, usual precedence) and every
 * such equation is arithmetically right, else 0. An answer reached by wrong steps scores 0. */
float tn_judge_steps_score(const char *completion, const char *open, const char *close);

/* The template with {prompt}, {completion}, {answer} replaced (caller frees; NULL: no memory). */
char *tn_judge_fill(const char *tmpl, const char *prompt, const char *completion, const char *answer);

#endif
