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
#endif
