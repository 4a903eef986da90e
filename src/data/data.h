/* data.h - training examples as token ids with a loss mask, loaded from the JSONL
 * formats users bring:
 *   {"messages": [{"role","content"}...]}        chat template applied, loss on assistant turns;
 *                                                  with the model's Jinja template also
 *                                                  "tool_calls"/"tool" turns and a "tools" list
 *   {"prompt": "...", "completion": "..."}        loss on the completion (+ EOS); "response" is
 *                                                  accepted for "completion"; prompt/completion
 *                                                  may also be message lists (conversational)
 *   {"text": "..."}                                loss on every token (+ EOS)
 *   {"prompts": "<start_of_turn>user ... <start_of_turn>model\n...<end_of_turn>"}
 *                                                  Tunix RT's tunix_sft export: loss on the
 *                                                  last model turn
 * mask[t] = 1 means token t is a training target (predicted from tokens 0..t-1).
 * Not for: batching and shuffling (the trainers' data iterators), preference pairs. */
#ifndef TN_DATA_H
#define TN_DATA_H
#include <stdint.h>
#include "base/base.h"
#include "tunic/tokenizer.h"

struct cJSON;
/* Read a JSONL file (or a .json file holding one array of objects): fn gets each object (and
 * owns it) with "FILE:LINE" (the line the object starts on) for messages. Stops at the first
 * error (invalid JSON, not an object, or fn's). */
typedef tn_status (*tn_jsonl_fn)(void *ctx, struct cJSON *obj, const char *where);
tn_status tn_jsonl_read(const char *path, tn_jsonl_fn fn, void *ctx);
/* Every row kept (fn = tn_jsonl_rows_add, ctx = a zeroed tn_jsonl_rows): the caller owns rows and
 * frees them with tn_jsonl_rows_free. */
typedef struct { struct cJSON **rows; int64_t n, cap; } tn_jsonl_rows;
tn_status tn_jsonl_rows_add(void *rows, struct cJSON *obj, const char *where);
void tn_jsonl_rows_free(tn_jsonl_rows *r);

/* The one reader of published data sets (schema.c): JSONL or a .json array, --field-map
 * (TARGET=SOURCE,...) applied, each row's schema recognised (one per file, reported once) and
 * rewritten into the native form of the reader USE before fn sees it. */
typedef enum { TN_DATA_SFT, TN_DATA_PREF, TN_DATA_PROMPTS } tn_data_use;
#define TN_DATA_QUIET 0x100 /* or'ed into use: no "schema ..." line (a second pass over a file) */
tn_status tn_data_read(const char *path, int use, const char *field_map, tn_jsonl_fn fn, void *ctx);

typedef struct {
  int32_t *ids;   // (n)
  uint8_t *mask;  // (n)
  int n;
  int n_targets;  /* tokens with mask = 1 */
} tn_example;

typedef struct {
  tn_example *ex;
  int n, cap;
  int n_truncated;     /* examples cut to max_seq_len */
  int n_dropped;       /* examples left without a target after truncation */
} tn_dataset;

typedef struct {
  int max_seq_len;             /* truncate longer examples (right side), 0 = no limit */
  tn_chat_format chat;         /* TN_CHAT_AUTO: from the tokenizer's chat_template */
  const char *field_map;       /* --field-map TARGET=SOURCE,... (NULL: none) */
} tn_sft_data_opts;

/* Load a JSONL file. A malformed line is an error naming FILE:LINE and the problem. */
tn_status tn_sft_load(tn_dataset *d, const char *path, const tn_tokenizer *tok, const tn_sft_data_opts *o);
void tn_dataset_free(tn_dataset *d);
/* Move a seeded random fraction of d's examples into eval (for --eval-split). */
tn_status tn_dataset_split(tn_dataset *d, tn_dataset *eval, float frac, uint64_t seed);
/* A seeded permutation of 0..n-1 (Fisher-Yates with tn_rng), for epoch shuffling. */
void tn_permutation(int *perm, int n, uint64_t seed);
#endif
