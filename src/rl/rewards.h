/* rewards.h - internal side of the reward library (public API: include/tunic/rl.h):
 * the single built-in reward functions on one completion (used by the weighted set and by
 * tests), the rubric checker, and the external reward process.
 * Not for: advantages or losses (src/train), answer extraction itself (src/eval). */
#ifndef TN_REWARDS_H
#define TN_REWARDS_H
#include "base/base.h"
#include "eval/eval.h"
#include "tunic/rl.h"

/* Tunix GRPO demo values (docs/rewards.md). */
#define TN_FORMAT_APPROX_GOOD 0.5f /* per tag seen exactly once */
#define TN_FORMAT_APPROX_BAD (-0.5f) /* per tag missing or duplicated */

/* Extraction config carrying the reward config's tags. */
void tn_reward_extract_config(const tn_reward_config *c, tn_extract_config *e);

/* Single rewards on one completion. REF is the reference answer text. */
float tn_reward_format_exact(const char *completion, const tn_reward_config *c);
float tn_reward_format_approx(const char *completion, const tn_reward_config *c);
float tn_reward_answer(const char *completion, const char *ref, const tn_reward_config *c);
float tn_reward_numeric(const char *completion, const char *ref, const tn_reward_config *c);
float tn_reward_length(const char *completion, const tn_reward_config *c);
/* Whitespace-separated words. */
int tn_count_words(const char *s);

/* Rubric: a list of weighted checks parsed from YAML. */
typedef struct tn_rubric tn_rubric;
/* NAME is used in messages (the file path or "rubric"). */
tn_status tn_rubric_parse(const char *yaml_text, const char *name, tn_rubric **out);
tn_status tn_rubric_load(const char *path, tn_rubric **out);
/* sum(w_i * pass_i) / sum(|w_i|), in [-1, 1] ([0, 1] with positive weights). */
float tn_rubric_score(const tn_rubric *r, const char *completion);
int tn_rubric_count(const tn_rubric *r);
void tn_rubric_free(tn_rubric *r);

/* External reward process: one JSON object per line in, one number per line out. CMD runs
 * through `/bin/sh -c` (a run config can therefore run any command). */
typedef struct tn_reward_proc tn_reward_proc;
#define TN_REWARD_LINE_MAX 4096 /* longest answer line (bytes): a longer one is an error, not a bigger buffer */
tn_status tn_reward_proc_start(const char *cmd, double timeout_s, tn_reward_proc **out);
/* Send N request lines (each a JSON object text without newline) and read N numbers. Each answer
 * line must come within timeout_s of the previous one (or of the call): partial output does not
 * restart the clock, so a batch waits at most N x timeout_s. After the N-th answer, output the
 * process was not asked for (more lines than requests) is an error before any answer is used:
 * requests still unread, or output within a short grace period (twice the longest wait for one
 * answer of the batch, 50 ms at least, 1 s or the timeout at most). */
tn_status tn_reward_proc_run(tn_reward_proc *p, int n, char *const *lines, float *out);
void tn_reward_proc_stop(tn_reward_proc *p);

#endif
