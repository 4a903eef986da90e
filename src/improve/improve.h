/* improve.h - the self-improvement loop (`tunic improve`): each round generates N samples
 * per prompt with the current model, judges them (judge.h), filters them (score threshold,
 * format, length bounds, de-duplication, a per-prompt cap), writes the round's dataset with
 * a manifest (source round, counts kept and dropped by reason, sha256), fine-tunes on it
 * (tn_sft_run: full, or LoRA merged into the next round's model), evaluates on held-out data
 * (tn_eval_run) and writes a report per round and one for the whole loop. Stops early when a
 * round gains nothing. Every stage's output is written atomically and a stage whose output
 * exists is not redone, so a killed run continues where it was with the same result.
 * Not for: the judges (judge.h), trainers (src/train), the eval loop (src/eval). */
#ifndef TN_IMPROVE_H
#define TN_IMPROVE_H
#include <stdbool.h>
#include <stdio.h>
#include "base/base.h"
#include "improve/judge.h"
#include "tunic/train.h"

typedef struct {
  const char *model;          /* the start model (HF layout directory) */
  const char *prompts;        /* training prompts JSONL (prompt | messages, + reference fields) */
  const char *eval_data;      /* held-out eval JSONL (with references) */
  const char *out;            /* run directory */
  int rounds;                 /* K (3) */
  /* generation */
  int samples;                /* N per prompt (4) */
  int prompts_per_round;      /* 0: every prompt each round; else a rotating slice of that many */
  float temperature, top_p;   /* 0.8, 1 */
  int max_new_tokens;         /* 64 */
  int max_prompt_len;         /* 0: no limit */
  int gen_batch;              /* prompts per generation call (16) */
  const char *system_prompt;  /* NULL: none (the demo's convention) */
  bool no_chat;
  const char *chat_format;
  /* judge (spec default "answer:1", or a judge model) */
  tn_judge_opts judge;
  /* filters */
  double threshold;           /* keep score >= threshold (1) */
  bool require_format;        /* keep only format-valid completions (true) */
  int min_tokens, max_tokens; /* length bounds in tokens (1, 0: no upper bound); truncated samples are dropped */
  bool keep_truncated;        /* keep samples that hit max_new_tokens (false) */
  bool dedup;                 /* drop a completion already kept for the same prompt (true) */
  int max_per_prompt;         /* 0: no cap */
  bool skip_solved;           /* drop prompts whose N samples were all kept (nothing to learn) (false) */
  bool accumulate;            /* train on every round's dataset so far, not just this round's (false) */
  /* SFT of each round: sft.model/data/out are set per round; the rest is used as given */
  tn_sft_opts sft;
  const char *adapters;       /* LoRA rounds (sft.lora_rank > 0): "merge" (each round's adapter merged
                                 into a full model, the next round's start) or "stack" (--model stays the
                                 base; round K's model is --model + the concatenation of rounds 1..K's
                                 adapters, one PEFT adapter in RUN/round_K/adapter) */
  /* eval */
  int eval_max_new_tokens;    /* 64 */
  int eval_limit;             /* 0: all */
  int eval_batch;             /* 32 */
  /* early stop: a round whose accuracy is not above the best so far by more than min_gain ends the loop */
  bool early_stop;            /* true */
  double min_gain;            /* 0 */
  uint64_t seed;
  const char *config_json;    /* the resolved configuration (for the run's config check and manifest) */
  FILE *log;                  /* progress lines (NULL: none) */
} tn_improve_opts;

void tn_improve_opts_default(tn_improve_opts *o);

typedef struct {
  int rounds_done;            /* rounds evaluated */
  int best_round;             /* 0 = the start model */
  double acc_start, acc_best;
  double mcnemar_p;           /* best round vs start */
  bool stopped_early;
  char best_model[1024];
} tn_improve_result;

tn_status tn_improve_run(const tn_improve_opts *o, tn_improve_result *res);

#endif
