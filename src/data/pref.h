/* pref.h - preference pairs for DPO / ORPO, loaded from the JSONL forms TRL and
 * the UltraFeedback / distilabel sets use:
 *   {"prompt": "...", "chosen": "...", "rejected": "..."}            standard
 *   {"prompt": [messages], "chosen": [assistant messages], "rejected": [...]}
 *                                                                    conversational
 *   {"chosen": [messages], "rejected": [messages]}                   implicit prompt: the
 *                                                                    common leading messages
 * (a string prompt with message-list responses is read as one user message). Message lists with
 * tool calls or tool turns, or a line with "tools", are rendered by the model's Jinja template.
 * Tokens: with message lists (or opts.chat with strings) the prompt is rendered by
 * the chat template with the generation prompt, and each response is the text the
 * template adds after it, through the reply's end-of-turn token (TRL's
 * maybe_apply_chat_template: the full conversation minus the prompt's text);
 * otherwise prompt = BOS + text and response = text + EOS, as SFT's prompt/completion.
 * Prompts longer than max_prompt_len keep their END; responses longer than
 * max_response_len keep their START. Errors name FILE:LINE.
 * Not for: batching (the DPO trainer), SFT data (data.h). */
#ifndef TN_PREF_H
#define TN_PREF_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"
#include "tunic/tokenizer.h"

typedef struct {
  int32_t *ids;   // (np + nc + nr): prompt | chosen | rejected
  int np, nc, nr;
} tn_pref_pair;
static inline const int32_t *tn_pref_chosen(const tn_pref_pair *p) { return p->ids + p->np; }
static inline const int32_t *tn_pref_rejected(const tn_pref_pair *p) { return p->ids + p->np + p->nc; }

typedef struct {
  tn_pref_pair *p;
  int n, cap;
  int n_prompt_truncated, n_response_truncated;
  int n_dropped;            /* pairs with an empty chosen or rejected response */
  int max_len;              /* longest prompt + response */
} tn_pref_set;

typedef struct {
  int max_prompt_len;       /* 0 = no limit */
  int max_response_len;     /* 0 = no limit */
  bool chat;                /* string prompts/responses through the chat template too */
  tn_chat_format format;    /* TN_CHAT_AUTO: from the tokenizer's chat_template */
  const char *field_map;    /* --field-map TARGET=SOURCE,... (NULL: none) */
} tn_pref_data_opts;

tn_status tn_pref_load(tn_pref_set *s, const char *path, const tn_tokenizer *tok, const tn_pref_data_opts *o);
void tn_pref_free(tn_pref_set *s);
/* Move a seeded random fraction of the pairs into eval (for --eval-split). */
tn_status tn_pref_split(tn_pref_set *s, tn_pref_set *eval, float frac, uint64_t seed);
#endif
