/* mathtools.h - `tunic data math --tools`: arithmetic word problems whose numbers are too large
 * for a small model to work out in its head (3-4 digit products, sums of 4-digit numbers,
 * two-step totals), with worked tool-use trajectories for SFT (user question -> assistant
 * calculator call -> tool result, produced by the calculator itself -> final answer in the
 * <answer> tag src/eval extracts) and plain prompts with answers for agentic GRPO
 * and evaluation. Not for: the word problems without tools (src/data/math_gen.c). */
#ifndef TN_AGENT_MATHTOOLS_H
#define TN_AGENT_MATHTOOLS_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"

typedef struct {
  int64_t n;        /* problems, train + test (1000) */
  uint64_t seed;    /* same seed, same files */
  double test_frac; /* share in test.jsonl (0.1) */
  bool text_calls;  /* the call as Hermes text (<tool_call>{...}</tool_call>) in the assistant's
                       content, for chat templates that do not show tool_calls; default: the
                       structured tool_calls field */
} tn_tool_math_config;

void tn_tool_math_config_default(tn_tool_math_config *c);
/* Write DIR/train_sft.jsonl ({"messages": [...], "tools": [calculator]}), DIR/train_grpo.jsonl
 * and DIR/test.jsonl ({"id", "prompt", "question", "answer", "expected_answer", "category",
 * "expression"}). Question texts are distinct. */
tn_status tn_tool_math_write(const tn_tool_math_config *c, const char *dir, int64_t *n_train, int64_t *n_test);

#endif
