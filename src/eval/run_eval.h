/* run_eval.h - the generation loop of `tunic eval`, callable from the CLI, the GRPO trainer
 * (held-out accuracy during training) and the demo: load a prompt JSONL, generate (greedy or
 * n samples per prompt) in batches, extract and score each completion (eval.h), aggregate,
 * write per-example results JSONL and a summary JSON atomically, print a summary table.
 * Works on an already loaded model (with or without an active LoRA adapter) and tokenizer.
 * Not for: the scoring rules (eval.h / extract.c) or the before/after report (report.h).
 * File formats are documented in docs/eval.md. */
#ifndef TN_RUN_EVAL_H
#define TN_RUN_EVAL_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "base/base.h"
#include "eval/eval.h"
#include "model/model.h"
#include "tunic/tokenizer.h"
#include "tunic/generate.h"

struct cJSON;
struct tn_prompt_s;

typedef struct {
  const char *data;            /* eval JSONL: {id?, prompt | messages, expected_answer | answer, category?} */
  const char *out;             /* per-example results JSONL (NULL: not written) */
  const char *summary_out;     /* summary JSON (NULL: derived from out, see tn_eval_summary_path) */
  const char *system_prompt;   /* NULL: TN_DEFAULT_SYSTEM_PROMPT; "": none */
  const char *chat_format;     /* NULL / "auto": detect from the tokenizer */
  const char *field_map;       /* data rows' fields renamed: TARGET=SOURCE,... (NULL: none) */
  bool no_chat;                /* plain "{system}\n\n{prompt}\n" template */
  int max_prompt_len;          /* keep the last N prompt tokens (0: no limit) */
  int limit;                   /* first N examples only (0: all) */
  int batch_size;              /* prompts per tn_generate call (default 8) */
  int max_new_tokens;          /* default 256 */
  int n;                       /* samples per prompt (default 1); pass@k when > 1 */
  float temperature;           /* 0 = greedy (default) */
  float top_p;                 /* 1 = off */
  int top_k;                   /* 0 = off */
  uint64_t seed;
  tn_extract_config extract;   /* tags, partial tolerance */
  const char *model_name;      /* recorded in the summary (may be NULL) */
  const char *adapter_name;    /* recorded in the summary (may be NULL) */
  FILE *print;                 /* summary table goes here (NULL: nothing printed) */
  /* --completions: categories of rows without one, and token counts for the text metrics */
  const tn_categorizer *categorizer;                    /* keyword rules (NULL: none) */
  const char *(*classify)(void *ctx, const char *prompt); /* a model names the category (NULL: none) */
  void *classify_ctx;
  const tn_tokenizer *count_tok;                        /* tokens per completion (NULL: words only) */
  bool progress;               /* a progress line per batch on stderr */
  bool keep_results;           /* tn_eval_run: every results line also in out->results */
  /* optional: what produces the completions instead of tn_generate (multi-turn episodes with
   * tools, src/agent): examples p[0..nb) (data indices first..first+nb), go the sampling options
   * (go->n samples each); fills nb * go->n results as tn_generate does (ids of the answer the
   * sample is scored on, finish). NULL: tn_generate. */
  tn_status (*generate)(void *ctx, const struct tn_prompt_s *p, int nb, int first, const tn_gen_opts *go,
                        tn_gen_result *res);
  void *generate_ctx;
} tn_eval_opts;

void tn_eval_opts_default(tn_eval_opts *o);

typedef struct {
  int64_t n_examples, n_samples;   /* examples scored, samples per example */
  double accuracy;                 /* mean over all samples (= mean pass@1) */
  double partial_accuracy, format_rate, mean_credit;
  int64_t errors[TN_ECAT_COUNT];
  int64_t gen_tokens, truncated;   /* generated tokens; samples that hit max_new_tokens */
  double gen_seconds, tokens_per_s;
  struct cJSON *json;              /* the summary JSON as written (owned) */
  struct cJSON *results;           /* with keep_results: the results lines, an array (owned) */
} tn_eval_summary;

void tn_eval_summary_free(tn_eval_summary *s);

/* "results.jsonl" -> "results.summary.json"; other names get ".summary.json" appended.
 * Caller frees. */
char *tn_eval_summary_path(const char *results_path);

/* Run the evaluation of model M (its active adapter, if any) with tokenizer TOK.
 * Stops each sample at the model's eos ids and at the chat format's end-of-turn token.
 * Errors name the data file and line (missing reference, bad JSON) or the option. */
tn_status tn_eval_run(const tn_model *m, const tn_tokenizer *tok, const tn_eval_opts *o, tn_eval_summary *out);

/* Score completions made elsewhere: PATH is JSONL with "id", "completion" (a string, or a
 * list of strings: several samples, pass@k), the reference "answer" (or "expected_answer"),
 * optional "prompt" and "category". The same results lines (without the token counts) and
 * summary as tn_eval_run, written to o->out / o->summary_out; o->extract sets the tags.
 * A row without a reference is reference-free: only text metrics (textmetrics.c), which are
 * reported for every row ("text" in the summary, per category); a row without a category
 * gets one from o->categorizer or o->classify. */
tn_status tn_eval_completions(const char *path, const tn_eval_opts *o, tn_eval_summary *out);

/* The prompt text of an eval row: its "prompt" field, else its last user message ("" if none). */
const char *tn_eval_prompt_text(const struct cJSON *ex);
#endif
