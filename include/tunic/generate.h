/* tunic/generate.h - sampling continuations from a loaded model (public API).
 * Token level: tn_generate samples n continuations of each of B prompts (token ids) on one
 * batched KV cache; greedy, temperature, top-k, top-p, min-p, repetition penalty, stop ids
 * and a stop callback, a seed that makes sampling reproducible (each sample draws from its
 * own stream seeded by (seed, prompt index, sample index), so a batch gives what one prompt
 * at a time gives), OpenAI's frequency/presence penalties over the generated tokens, per-token log-probs of the chosen tokens (log_softmax(logits / T), after
 * the repetition penalty, before top-k/top-p/min-p), and a callback per token.
 * Text level: tn_generate_text encodes prompts with the model's tokenizer, decodes as it
 * goes, stops at stop strings and hands each new piece of text to a callback.
 * Ownership: results are filled by the call and released with the matching *_free; the
 * caller owns the arrays it passes. */
#ifndef TUNIC_GENERATE_H
#define TUNIC_GENERATE_H
#include <stdbool.h>
#include "tunic/base.h"
#include "tunic/model.h"
#include "tunic/tokenizer.h"

typedef struct {
  int max_new_tokens;        /* default 64 */
  float temperature;         /* 0 = greedy */
  int top_k;                 /* 0 = off */
  float top_p;               /* 1 = off */
  float min_p;               /* 0 = off */
  float repetition_penalty;  /* 1 = off (HF semantics: divide positive, multiply negative) */
  float frequency_penalty;   /* 0 = off; OpenAI's, in [-2, 2]: logit[j] -= count[j] * frequency_penalty */
  float presence_penalty;    /*   + (count[j] > 0) * presence_penalty, counts over this sample's generated tokens */
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

TN_API void tn_gen_opts_default(tn_gen_opts *o);
/* results: B * n entries, result[p * n + j]; free with tn_gen_results_free. */
TN_API tn_status tn_generate(const tn_model *m, const int *const *prompts, const int *plens, int B, const tn_gen_opts *o,
                      tn_gen_result *results);
TN_API void tn_gen_results_free(tn_gen_result *r, int count);

/* ---- text in, text out ---- */
typedef struct {
  const char *const *stop;   /* stop strings: a sample ends when its text contains one; the text
                                returned ends before it */
  int n_stop;
  bool add_special;          /* encode prompts with the tokenizer's special tokens (BOS); default true */
  bool skip_special;         /* leave special tokens out of the text; default true */
  /* optional: each new piece of text of a sample (complete UTF-8 characters), as it is made */
  void (*on_text)(void *user, int prompt, int sample, const char *piece, size_t len);
  void *user;
} tn_text_opts;
typedef struct {
  char *text;                /* the sample's text (NUL-terminated), cut before a stop string */
  int *ids;                  /* its tokens and their log-probs, as tn_gen_result */
  float *logprobs;
  int n;
  tn_finish finish;          /* TN_FINISH_STOP_FN when a stop string ended it */
} tn_text_result;
TN_API void tn_text_opts_default(tn_text_opts *t);
/* out: n_prompts * g->n entries, out[p * g->n + j]; free with tn_text_results_free. g's
 * stop_fn/on_token/ctx are tunic's own here (on_text is the hook). */
TN_API tn_status tn_generate_text(const tn_model *m, const tn_tokenizer *tok, const char *const *prompts,
                                  int n_prompts, const tn_gen_opts *g, const tn_text_opts *t, tn_text_result *out);
/* The same on prompts given as token ids (e.g. a rendered chat, tn_chat_encode), lengths plens. */
TN_API tn_status tn_generate_text_ids(const tn_model *m, const tn_tokenizer *tok, const int *const *prompts,
                                      const int *plens, int n_prompts, const tn_gen_opts *g, const tn_text_opts *t,
                                      tn_text_result *out);
TN_API void tn_text_results_free(tn_text_result *r, int count);
#endif
