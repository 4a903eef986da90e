/* generate.h - batched sampling over the decoder's KV cache: greedy,
 * temperature, top-k, top-p, min-p, repetition penalty, stop ids and a stop
 * callback (stop strings need the tokenizer, which the caller owns), a seed that
 * makes sampling reproducible, per-token log-probs of the chosen tokens, and n
 * samples per prompt that share the prompt's prefill (the prompt is run once and
 * its cache copied into the n slots).
 * Each sample draws from its own RNG stream seeded by (seed, prompt, sample), so
 * batched generation equals one-at-a-time generation, sampled or greedy.
 * Log-probs are log_softmax(logits / T) of the chosen token (T = 1 when greedy),
 * after the repetition penalty and before top-k/top-p/min-p filtering.
 * Context policy: prompt + max_new_tokens beyond max_position_embeddings is an
 * error (TN_ERR_LIMIT), never a silent truncation.
 * Non-finite logits (a NaN or +Inf anywhere in the row, e.g. from NaN/Inf weights) are an error
 * (TN_ERR_NUMERIC naming the prompt, sample and token), never a token picked around them;
 * sampling options outside their ranges (NaN temperature, top_p outside (0, 1], ...) are TN_ERR_ARG. */
#ifndef TN_GENERATE_H
#define TN_GENERATE_H
#include "model/model.h"
#include "tunic/generate.h"

/* tn_gen_opts, tn_gen_result, tn_generate: the public API (tunic/generate.h) */


/* One sampling decision on a row of logits (modified in place); exposed for tests.
 * seen: the sequence so far (may be NULL), whose last n_gen tokens are the generated ones:
 * the repetition penalty looks at all of seen, the frequency/presence penalties at the generated
 * tokens only (OpenAI's definition). Returns the token and its log-prob in *lp (after the
 * penalties); -1 (and *lp NaN) when the row has a NaN or +Inf logit or is all -Inf. */
int tn_sample_token(float *logits, int V, const tn_gen_opts *o, const int *seen, int n_seen, int n_gen, tn_rng *rng,
                    float *lp);
/* The penalties alone (repetition, then frequency/presence), in place: what tn_sample_token
 * applies before the temperature (for log-probs computed elsewhere, e.g. top_logprobs). */
void tn_sample_penalize(float *logits, int V, const tn_gen_opts *o, const int *seen, int n_seen, int n_gen);
/* The sampling options' ranges (TN_ERR_ARG naming who and the values). */
tn_status tn_gen_opts_check(const tn_gen_opts *o, const char *who);
/* Free the calling thread's sampling buffers (before a thread that sampled exits). */
void tn_sample_thread_release(void);
/* ---- loading for inference (load.c): one path for the CLI's inference commands and the judge ---- */
struct tn_lora_set;
typedef struct {
  const char *model;          /* model directory (required) */
  const char *adapter;        /* NULL, "DIR" or "NAME=DIR,NAME=DIR" (model/lora.h, tn_lora_load_spec) */
  const char *adapter_name;   /* the active one (NULL: the first); needs adapter */
  const char *tokenizer;      /* NULL: the model directory's */
  const char *chat_template;  /* a .jinja file used instead of the tokenizer's template (NULL: none) */
  const char *base_dtype;     /* f32 | bf16 | nf4 | auto (NULL: auto) */
  const char *head_dtype;     /* f32 | bf16 | auto (NULL: auto) */
} tn_infer_spec;
typedef struct {
  tn_model *model;
  tn_tokenizer *tok;          /* NULL unless asked for (or tried and missing) */
  struct tn_lora_set **loras; /* the adapters, the adapter_name one active */
  int n_loras;
} tn_infer_loaded;
/* TN_INFER_TOKENIZER: the tokenizer is required; TN_INFER_TOKENIZER_TRY: loaded when there is one */
enum { TN_INFER_TOKENIZER = 1 << 0, TN_INFER_TOKENIZER_TRY = 1 << 1 };
/* Load what sp names; errors name the option or file (nothing is kept on error). */
tn_status tn_infer_load(const tn_infer_spec *sp, unsigned how, tn_infer_loaded *out);
void tn_infer_loaded_free(tn_infer_loaded *l);
/* The tokenizer part alone (sp->tokenizer or the model directory, the chat template file); *out NULL
 * when not asked for, or tried and missing. */
tn_status tn_infer_load_tokenizer(const tn_infer_spec *sp, unsigned how, tn_tokenizer **out);
#endif
