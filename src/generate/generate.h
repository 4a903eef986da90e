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

typedef struct {
  int max_new_tokens;        /* default 64 */
  float temperature;         /* 0 = greedy */
  int top_k;                 /* 0 = off */
  float top_p;               /* 1 = off */
  float min_p;               /* 0 = off */
  float repetition_penalty;  /* 1 = off (HF semantics: divide positive, multiply negative) */
  int n;                     /* samples per prompt, default 1 */
  uint64_t seed;
  const int *stop_ids;       /* NULL: the model's eos ids */
  int n_stop_ids;
  int prefill_chunk;         /* max rows per prefill call (default 512) */
  int first_prompt;          /* index of prompts[0] in the caller's list: names the RNG
                                streams and callbacks, so a batch can be split freely */
  /* optional: called after each token; return true to stop this sample (stop strings). */
  bool (*stop_fn)(void *ctx, int prompt, int sample, const int *ids, int n);
  /* optional: streaming, called for each new token */
  void (*on_token)(void *ctx, int prompt, int sample, int token);
  void *ctx;
} tn_gen_opts;

typedef enum { TN_FINISH_LENGTH = 0, TN_FINISH_STOP_ID, TN_FINISH_STOP_FN } tn_finish;

typedef struct {
  int *ids;                  /* new tokens (stop id included when it ended the sample) */
  float *logprobs;           /* (n) */
  int n;
  tn_finish finish;
} tn_gen_result;

void tn_gen_opts_default(tn_gen_opts *o);
/* results: B * n entries, result[p * n + j]; free with tn_gen_results_free. */
tn_status tn_generate(const tn_model *m, const int *const *prompts, const int *plens, int B, const tn_gen_opts *o,
                      tn_gen_result *results);
void tn_gen_results_free(tn_gen_result *r, int count);

/* One sampling decision on a row of logits (modified in place); exposed for tests.
 * seen: token ids for the repetition penalty (may be NULL). Returns the token and
 * its log-prob in *lp; -1 (and *lp NaN) when the row has a NaN or +Inf logit or is all -Inf. */
int tn_sample_token(float *logits, int V, const tn_gen_opts *o, const int *seen, int n_seen, tn_rng *rng, float *lp);
#endif
