/* tunic/eval.h - evaluating a model on a data set, and the answer extraction rules (public API).
 * tn_eval_model is `tunic eval --model`: it generates an answer for every example of an eval
 * JSONL ({id?, prompt | messages, expected_answer | answer, category?}, or a published schema
 * such as GSM8K or MATH), extracts and scores each answer, and returns the accuracy and the
 * per-example results (and writes the results JSONL and the summary JSON when asked).
 * The extraction functions are model-independent and work on strings; docs/eval.md gives the
 * order of the rules and the formulas. */
#ifndef TUNIC_EVAL_H
#define TUNIC_EVAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tunic/base.h"
#include "tunic/model.h"
#include "tunic/tokenizer.h"

/* ---------------- extraction ---------------- */

typedef struct {
  const char *reasoning_open;  /* "<reasoning>" */
  const char *reasoning_close; /* "</reasoning>" */
  const char *answer_open;     /* "<answer>" */
  const char *answer_close;    /* "</answer>" */
  bool tags_only;              /* extract only from answer tags (no fallbacks) */
  bool format_strict;          /* format check anchored to the whole text (default: Tunix's
                                  multi-line ^...$ semantics, see docs/eval.md) */
  double partial_tol;          /* relative error counted as "partially correct" (0.1) */
} tn_extract_config;

TN_API void tn_extract_config_default(tn_extract_config *c);

/* How an answer was found, in the order they are tried. */
typedef enum {
  TN_EXTRACT_NONE = 0,
  TN_EXTRACT_TAG,         /* last complete <answer>...</answer> with non-empty content */
  TN_EXTRACT_BOXED,       /* last \boxed{...}, nested braces */
  TN_EXTRACT_ANSWER_IS,   /* last "answer is ..." / "answer: ..." (case-insensitive) */
  TN_EXTRACT_HASHES,      /* last GSM8K "#### ..." line */
  TN_EXTRACT_LAST_NUMBER, /* last number in the text */
  TN_EXTRACT_COUNT
} tn_extract_method;

/* "none", "tag", "boxed", "answer_is", "hashes", "last_number" (static strings) */
TN_API const char *tn_extract_method_name(tn_extract_method m);

/* Extract the answer of COMPLETION into OUT (trimmed, NUL-terminated, truncated to CAP-1 bytes;
 * the caller's buffer). CFG NULL: the defaults. Returns the method that found it
 * (TN_EXTRACT_NONE: OUT = ""). */
TN_API tn_extract_method tn_extract_answer(const char *completion, const tn_extract_config *cfg, char *out, size_t cap);

/* Does the extracted answer equal the reference? Numeric when both have a value
 * (3/4 == 0.75 == "$0.75"), else normalised text (case, whitespace, trailing '.').
 * A reference that contains "####" is reduced to the text after the last one. */
TN_API bool tn_answers_equal(const char *extracted, const char *reference);

/* The field's conventions, each as its reference implementation does it (OUT: the caller's
 * buffer of CAP bytes; false when nothing matched). */
/* lm-evaluation-harness gsm8k "strict-match": the first `#### (\-?[0-9\.\,]+)` group. */
TN_API bool tn_gsm8k_strict(const char *completion, char *out, size_t cap);
/* gsm8k "flexible-extract": the last match of `(-?[$0-9.,]{2,})|(-?[0-9]+)`. */
TN_API bool tn_gsm8k_flexible(const char *completion, char *out, size_t cap);
/* The gsm8k task's exact_match: both sides without ",", "$", the text up to the last "#### ",
 * one trailing ".", case-insensitive; then string equality. */
TN_API bool tn_gsm8k_match(const char *extracted, const char *reference);
/* Hendrycks MATH last_boxed_only_string + remove_boxed: the last \boxed{...} (or "\boxed X"),
 * else the last \fbox{...}; false when none. */
TN_API bool tn_math_last_boxed(const char *s, char *out, size_t cap);
/* Hendrycks strip_string (\frac/\dfrac/\tfrac, \sqrt2, units after "\text{ ", spaces,
 * \left/\right, degrees, \%, \$, "x = ", 0.5, a/b). False where Python's raises. */
TN_API bool tn_math_strip(const char *in, char *out, size_t cap);
/* Hendrycks is_equiv (strip_string both, compare; raw compare where stripping fails), and
 * numeric equality when both stripped strings parse as one number (0.75 == \frac{3}{4}). */
TN_API bool tn_math_equiv(const char *a, const char *b);

/* ---------------- evaluating a model ---------------- */

typedef struct {
  const char *data;          /* eval JSONL (required) */
  const char *out;           /* per-example results JSONL written atomically (NULL: not written) */
  const char *summary_out;   /* summary JSON (NULL: <out without .jsonl>.summary.json when out is set) */
  const char *system_prompt; /* NULL: the reasoning/answer prompt of tunic eval; "": none */
  const char *chat_format;   /* NULL / "auto": the tokenizer's chat template; gemma | chatml | llama3 */
  bool no_chat;              /* plain "{system}\n\n{prompt}\n" prompts even with a chat template */
  int limit;                 /* the first N examples only (0: all; default) */
  int batch_size;            /* prompts per generation batch (8) */
  int max_new_tokens;        /* tokens generated per answer (256) */
  int max_prompt_len;        /* keep the last N prompt tokens (0: no limit; default) */
  int n;                     /* samples per example (1); pass@k is in the summary when > 1 */
  float temperature;         /* 0 = greedy (default) */
  float top_p;               /* 1 = off (default) */
  int top_k;                 /* 0 = off (default) */
  uint64_t seed;             /* sampling seed */
  tn_extract_config extract; /* answer tags and the partial tolerance (tn_extract_config_default) */
  bool progress;             /* a progress line on stderr (default false) */
} tn_eval_config;

TN_API void tn_eval_config_default(tn_eval_config *c);

/* The outcome of an evaluation (opaque; freed with tn_eval_result_free). */
typedef struct tn_eval_result tn_eval_result;

/* Evaluate M (with its active adapter, if any) with tokenizer TOK on C->data. Each sample stops at
 * the model's eos ids and the chat format's end-of-turn token. Errors name the data file and line
 * (missing reference, bad JSON, duplicate id) or the option. *OUT is the caller's, freed with
 * tn_eval_result_free (NULL on error). */
TN_API tn_status tn_eval_model(const tn_model *m, const tn_tokenizer *tok, const tn_eval_config *c,
                               tn_eval_result **out);

/* Examples scored, and the accuracy over all samples (= mean pass@1, in [0, 1]). */
TN_API int tn_eval_result_count(const tn_eval_result *r);
TN_API double tn_eval_result_accuracy(const tn_eval_result *r);

/* One example's first sample. Every string points into R: valid until tn_eval_result_free,
 * never freed by the caller. */
typedef struct {
  const char *id;         /* the row's "id" as text (its 0-based index when the row has none) */
  const char *category;   /* NULL when the row has none */
  const char *prompt;     /* the prompt text (the row's prompt, or its last user message) */
  const char *expected;   /* the reference answer */
  const char *completion; /* the generated answer text */
  const char *extracted;  /* the answer extracted from it ("" when none) */
  const char *method;     /* how it was extracted (tn_extract_method_name) */
  bool correct, format_ok;
  int tokens;             /* generated tokens */
  int num_correct;        /* of the example's n samples */
} tn_eval_example;

/* Example I (0 <= I < tn_eval_result_count) into *EX; TN_ERR_ARG when I is out of range. */
TN_API tn_status tn_eval_result_example(const tn_eval_result *r, int i, tn_eval_example *ex);
/* The summary as JSON text (accuracy, partial_accuracy, format_rate, categories, errors,
 * pass_at_k, generation figures, config: docs/eval.md). Owned by R. */
TN_API const char *tn_eval_result_summary(const tn_eval_result *r);
TN_API void tn_eval_result_free(tn_eval_result *r);
#endif
