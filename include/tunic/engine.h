/* tunic/engine.h - a step-wise generation engine (public API): many sequences ("slots") on
 * one KV cache, driven one step at a time by the caller, for continuous batching (the
 * server) and multi-turn episodes (agentic RL).
 *
 * A slot holds one token sequence. Tokens appended to it (a prompt, or a tool message after
 * the model's turn) are prefilled at the next positions of its cache, never re-prefilled
 * from the start; tn_engine_generate then samples up to max_new tokens, each fed back at the
 * next step. Slots are opened, forked, paused, resumed, cancelled and closed at any time
 * between steps. One tn_engine_step runs, in ONE tn_forward call, one decode row per
 * generating slot plus as many pending prefill rows as fit in rows_per_step (chunked
 * prefill), samples a token for every slot whose last pending row ran, and returns those
 * tokens as events.
 *
 * Sampling: each slot has its own tn_gen_opts (temperature, top-k/p, min-p, repetition
 * penalty over the slot's whole sequence, frequency/presence penalties over the tokens of the
 * current turn, stop ids, stop_fn, max_new_tokens per turn) and its
 * own RNG stream seeded as tn_generate seeds sample `sample` of prompt `prompt`
 * (seed, prompt, sample), so an engine run reproduces tn_generate's tokens for the same seeds.
 * Log-probs are tn_generate's (log_softmax(logits / T) after the penalties, before
 * filtering); top_logprobs (the k most likely tokens of the same distribution) on request.
 *
 *   tn_engine *e; tn_engine_opts eo = {.max_slots = 8, .context = 1024, .rows_per_step = 256};
 *   tn_engine_create(&e, model, &eo);
 *   int s; tn_engine_open(e, &gen_opts, 0, 0, &s);
 *   tn_engine_append(e, s, prompt_ids, n); tn_engine_generate(e, s, 0);
 *   const tn_engine_event *ev; int nev;
 *   while (tn_engine_busy(e)) { tn_engine_step(e, &ev, &nev); ... ev[i].slot, ev[i].token ... }
 *   tn_engine_append(e, s, tool_msg_ids, k); tn_engine_generate(e, s, 0);  // the next turn
 *   tn_engine_close(e, s); tn_engine_free(e);
 *
 * Single-threaded: one thread drives an engine (tn_forward parallelises inside a step).
 * Not for: text (tokenizer, stop strings: the caller's, or stop_fn), scheduling policy beyond
 * "decode rows first, then prefill in slot order". */
#ifndef TUNIC_ENGINE_H
#define TUNIC_ENGINE_H
#include <stdbool.h>
#include "tunic/adapter.h"
#include "tunic/base.h"
#include "tunic/generate.h"
#include "tunic/model.h"

typedef struct tn_engine tn_engine;

typedef struct {
  int max_slots;      /* slots open at once (S of the KV cache) */
  int context;        /* tokens per slot (T); at most the model's max_position_embeddings */
  int rows_per_step;  /* rows of one forward call (default 256; at least max_slots) */
  int top_logprobs;   /* 0..20: the k most likely tokens returned with each event */
} tn_engine_opts;

/* Why a slot's turn ended (TN_FINISH_* of generate.h, plus:) */
#define TN_FINISH_CONTEXT 3   /* the slot's context is full */
#define TN_FINISH_CANCEL 4    /* tn_engine_cancel */

typedef struct {
  int slot;
  int token;                   /* the sampled token (already part of the slot's sequence) */
  float logprob;
  bool done;                   /* this token ended the turn (finish says why) */
  int finish;                  /* TN_FINISH_* when done */
  int n_top;                   /* top_logprobs entries (most likely first) */
  const int *top_ids;          /* valid until the next tn_engine_step */
  const float *top_logprobs;
} tn_engine_event;

TN_API tn_status tn_engine_create(tn_engine **out, const tn_model *m, const tn_engine_opts *o);
TN_API void tn_engine_free(tn_engine *e);

/* Open an empty slot (the lowest free one) sampling with g (copied, stop_ids too; g->n and
 * g->on_token are ignored); prompt/sample name its RNG stream (as tn_generate's p + first_prompt, j)
 * and are passed to g->stop_fn. TN_ERR_LIMIT when every slot is open. */
TN_API tn_status tn_engine_open(tn_engine *e, const tn_gen_opts *g, int prompt, int sample, int *slot);
/* Queue n tokens at the end of the slot's sequence (not while it generates: TN_ERR_ARG). They
 * are prefilled by the next steps once the slot generates. TN_ERR_LIMIT past the context. */
TN_API tn_status tn_engine_append(tn_engine *e, int slot, const int *ids, int n);
/* Start a turn: after its pending tokens, sample up to max_new tokens (<= 0: g->max_new_tokens)
 * until a stop id, stop_fn or the context end. The slot must hold at least one token. */
TN_API tn_status tn_engine_generate(tn_engine *e, int slot, int max_new);
/* A new slot holding src's sequence, reading src's cached keys/values in place
 * (tn_state_share_prefix) with its own sampling stream (prompt, sample) and options g (NULL: src's).
 * Forked before src's pending tokens ran (open, append the prompt, fork G-1 times), the fork waits
 * for src's prefill and samples from the same logits, as tn_generate's n samples do. */
TN_API tn_status tn_engine_fork(tn_engine *e, int src, const tn_gen_opts *g, int prompt, int sample, int *slot);
/* A paused slot runs no rows (waiting on a tool); the others keep decoding. */
TN_API tn_status tn_engine_pause(tn_engine *e, int slot, bool paused);
/* End the slot's turn now (no event; finish TN_FINISH_CANCEL). Its sequence is kept. */
TN_API tn_status tn_engine_cancel(tn_engine *e, int slot);
/* Free the slot (its cache is handed to any fork still reading it). */
TN_API void tn_engine_close(tn_engine *e, int slot);

/* One step (see the top). *ev: the events of this step (valid until the next step), in slot
 * order. A slot whose logits are not finite fails the step with TN_ERR_NUMERIC naming it. */
TN_API tn_status tn_engine_step(tn_engine *e, const tn_engine_event **ev, int *n_ev);
/* Some slot is generating and not paused (a step would do work). */
TN_API bool tn_engine_busy(const tn_engine *e);

/* The slot's whole sequence (appended and sampled tokens), valid until the slot changes. */
TN_API const int *tn_engine_tokens(const tn_engine *e, int slot, int *n);
/* Tokens of the slot already in the KV cache. */
TN_API int tn_engine_cached(const tn_engine *e, int slot);
/* The slot is generating (a turn started and not finished). */
TN_API bool tn_engine_generating(const tn_engine *e, int slot);
/* The finish reason of the slot's last turn (TN_FINISH_*), -1 while none ended. */
TN_API int tn_engine_finish(const tn_engine *e, int slot);
/* The raw logits (V) the slot's last token was sampled from (before the repetition penalty and
 * temperature), valid until the next step; NULL when it sampled nothing this step. */
TN_API const float *tn_engine_logits(const tn_engine *e, int slot);
/* The LoRA adapter the slot's rows run with (NULL: none; tunic/adapter.h), added to whatever adapter
 * is activated on the model. Slots of different adapters share one forward call per step: the base
 * projections run once for all rows and each row adds its own adapter's delta (model/lora.h). A
 * fork inherits its source's adapter; tn_engine_open starts with none. The adapter must outlive
 * its use; a slot sharing a prefix (fork, tn_engine_share_prefix) must run the same adapter. */
TN_API tn_status tn_engine_set_adapter(tn_engine *e, int slot, tn_adapter *adapter);
/* (tunic serve) A slot just opened and appended, not generating, nothing cached: its first n
 * tokens are read in place from slot src's cache (src holds at least n cached tokens, the same
 * ones; n < the slot's length, so its last token still runs). TN_ERR_ARG otherwise. */
TN_API tn_status tn_engine_share_prefix(tn_engine *e, int dst, int src, int n);
#endif
