/* tunic/rl.h - rewards for RL fine-tuning (GRPO): built-in reward functions combined in a
 * weighted sum, user rewards as a C callback or as an external process (--reward-cmd).
 * Rewards are computed for a batch of completions at once. Formulas: docs/rewards.md. */
#ifndef TUNIC_RL_H
#define TUNIC_RL_H
#include <stdbool.h>
#include "tunic/base.h"

struct cJSON;

/* A user reward over a batch of N completions: write out[i] for every i. prompts[i] is the
 * prompt text, completions[i] the generated text, examples[i] the dataset example (a JSON
 * object with its reference fields such as "answer"; may be NULL). Return TN_OK, or an
 * error status (with a message set through tn_error when the library is linked). Called
 * from the trainer's thread; must not keep the pointers. */
typedef tn_status (*tn_reward_callback)(void *user, int n, const char *const *prompts,
                                        const char *const *completions,
                                        const struct cJSON *const *examples, float *out);

typedef struct {
  /* tags of the reasoning/answer format (defaults <reasoning> </reasoning> <answer> </answer>) */
  const char *reasoning_open, *reasoning_close, *answer_open, *answer_close;
  bool format_strict;        /* format_exact anchored to the whole completion (default: Tunix regex) */
  bool answer_tags_only;     /* answer/numeric read the answer tags only (default: full extraction chain) */
  const char *answer_field;  /* example field with the reference ("answer"; "expected_answer" as fallback) */
  double numeric_wrong;      /* numeric reward of a number more than 20% off (0) */
  double numeric_none;       /* numeric reward when no number is found (0) */
  int length_min_words;      /* length reward: 1 inside [min, max] words (0, 200) */
  int length_max_words;
  const char *rubric_path;   /* rubric reward: YAML list of checks, from a file ... */
  const char *rubric_yaml;   /* ... or given as text */
  const char *reward_cmd;    /* external reward process, run with /bin/sh -c */
  double reward_cmd_timeout; /* seconds to wait for each answer of the process (30) */
} tn_reward_config;

TN_API void tn_reward_config_default(tn_reward_config *c);

typedef struct tn_rewards tn_rewards;

/* Parse a weighted-sum spec "format_exact:1,format_approx:0.5,answer:2,numeric:1" (weight
 * defaults to 1). Names: format_exact, format_approx, answer, numeric, length, rubric, cmd.
 * When cfg->reward_cmd is set and the spec does not name "cmd", cmd:1 is added. The spec
 * may be NULL or "" (then add callbacks before computing). Starts the reward process. */
TN_API tn_status tn_rewards_create(tn_rewards **out, const char *spec, const tn_reward_config *cfg);
/* Add a C callback as one more weighted term named NAME. */
TN_API tn_status tn_rewards_add_callback(tn_rewards *r, const char *name, float weight, tn_reward_callback fn, void *user);
TN_API int tn_rewards_count(const tn_rewards *r);
TN_API const char *tn_rewards_name(const tn_rewards *r, int i);
TN_API float tn_rewards_weight(const tn_rewards *r, int i);
/* Score N completions. per_fn (F, N) gets each function's unweighted value (may be NULL),
 * total (N) the weighted sum. Any failure (missing reference field, reward process that
 * died, hung or printed garbage, non-finite value) is an error, never a silent zero. */
TN_API tn_status tn_rewards_compute(tn_rewards *r, int n, const char *const *prompts, const char *const *completions,
                             const struct cJSON *const *examples, float *per_fn, float *total);
/* Stops the reward process (closes its stdin, waits briefly, then kills it). */
TN_API void tn_rewards_free(tn_rewards *r);

#endif
