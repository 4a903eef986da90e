/* prompts.h - prompt datasets for generation-based jobs (GRPO rollouts, eval):
 * JSONL lines with "prompt" (string) or "messages" (a list, the last turn the
 * user's), plus any reference fields ("answer", "expected_answer", "id",
 * "category", ...) kept as the example's JSON for rewards and scoring.
 * Rendering: with a chat template, [system?, user] messages and the generation
 * prompt (Gemma folds the system prompt into the first user turn, which gives
 * exactly the Tunix GRPO demo's template); without one, a plain template
 * "{system}\n\n{prompt}\n". */
#ifndef TN_PROMPTS_H
#define TN_PROMPTS_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"
#include "tunic/tokenizer.h"
struct cJSON;

typedef struct tn_prompt_s {
  struct cJSON *json;  /* the whole example (owned) */
  char *text;          /* the rendered prompt */
  int32_t *ids;        /* (n) its tokens */
  int n;
} tn_prompt;

typedef struct {
  tn_prompt *p;
  int n;
  int n_truncated;
} tn_prompt_set;

typedef struct {
  const char *system_prompt;  /* NULL or "": none */
  const char *field;          /* prompt field (default "prompt") */
  bool no_chat;               /* plain template even when the tokenizer has a chat template */
  tn_chat_format chat;        /* TN_CHAT_AUTO: detect */
  int max_prompt_len;         /* keep the last N tokens of longer prompts (0 = no limit) */
  const char *field_map;      /* --field-map TARGET=SOURCE,... (NULL: none) */
} tn_prompt_opts;

/* The Tunix GRPO demo's system prompt (reasoning / answer tags). */
extern const char *const TN_DEFAULT_SYSTEM_PROMPT;

tn_status tn_prompts_load(tn_prompt_set *s, const char *path, const tn_tokenizer *tok, const tn_prompt_opts *o);
void tn_prompts_free(tn_prompt_set *s);
/* The reference answer of an example: "answer", else "expected_answer" (string or number),
 * written into buf; false when absent. */
bool tn_prompt_reference(const tn_prompt *p, char *buf, size_t n);
#endif
